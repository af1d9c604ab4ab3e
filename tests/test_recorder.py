"""Results files: Parquet and CSV round trips with units, the CSV sidecar, atomic writes."""
from __future__ import annotations

import json
import os
import stat

import numpy as np
import pandas as pd
import pytest

from cosim import Recorder, SensorFault, Simulation, SimulationError, read_results, write_results
from cosim import atomic as atomic_module


@pytest.fixture
def frame(tiny) -> pd.DataFrame:
    """A short run with a noisy sensor (so a `:true` column and events) and awkward floats."""
    sim = Simulation({"i": tiny.integrator("i"), "c": tiny.clock("c")}, step=0.1, seed=7)
    sim.set("i.u", 1.0 / 3.0)
    sim.schedule(SensorFault(0.3, "c.y", "noise", std=1e-3))
    result = sim.run(2.0)
    result.attrs["scenario"] = {"name": "unit test", "step_s": 0.1}
    return result


def _assert_same(back: pd.DataFrame, frame: pd.DataFrame) -> None:
    assert list(back.columns) == list(frame.columns)
    assert back.index.name == "time_s"
    assert np.array_equal(back.index.to_numpy(), frame.index.to_numpy())
    assert np.array_equal(back.to_numpy(), frame.to_numpy())
    assert back.attrs["units"] == frame.attrs["units"]
    assert back.attrs["events"] == frame.attrs["events"]
    assert back.attrs["scenario"] == frame.attrs["scenario"]


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_round_trip_keeps_values_units_and_events(frame, tmp_path, suffix):
    """write_results then read_results gives back every value bit for bit, units, events, scenario."""
    path = write_results(frame, tmp_path / f"run.{suffix}")
    assert path == tmp_path / f"run.{suffix}"
    back = read_results(path)
    _assert_same(back, frame)
    assert back.attrs["units"]["c.y:true"] == "1"
    assert back.attrs["events"] == [[frame.index[3], "sensor c.y: noise with std 0.001"]]


def test_format_argument_overrides_the_suffix(frame, tmp_path):
    """`fmt="csv"` writes CSV whatever the name; an unknown format is refused naming the choices."""
    path = write_results(frame, tmp_path / "run.out", fmt="csv")
    assert path.read_text().startswith("time_s,")
    with pytest.raises(SimulationError, match="unknown output format 'xlsx'; expected one of parquet, csv"):
        write_results(frame, tmp_path / "run.xlsx")
    assert not (tmp_path / "run.xlsx").exists()


def test_csv_sidecar_holds_units_events_and_scenario(frame, tmp_path):
    """A CSV gets `<file>.meta.json` with units (time_s in s), events and the scenario."""
    path = write_results(frame, tmp_path / "sub" / "run.csv")
    meta = json.loads((tmp_path / "sub" / "run.csv.meta.json").read_text())
    assert meta["units"] == {"time_s": "s", **frame.attrs["units"]}
    assert meta["events"] == frame.attrs["events"]
    assert meta["scenario"] == {"name": "unit test", "step_s": 0.1}
    header = path.read_text().splitlines()[0]
    assert header == "time_s,i.y,i.steps,c.y,i.u,c.y:true"


def test_parquet_needs_no_sidecar(frame, tmp_path):
    """A Parquet file carries its metadata inside: no sidecar is written."""
    write_results(frame, tmp_path / "run.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.parquet"]


def _leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_failed_write_leaves_no_file_and_no_temporary(frame, tmp_path, monkeypatch, suffix):
    """A writer failing half-way leaves neither the result, nor a sidecar, nor a temporary file."""
    def broken(*args, **kwargs):
        with open(args[1], "w") as handle:
            handle.write("half a file")
        raise OSError("disk full")

    if suffix == "parquet":
        import pyarrow.parquet as pq

        monkeypatch.setattr(pq, "write_table", broken)
    else:
        monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        write_results(frame, tmp_path / f"run.{suffix}")
    assert _leftovers(tmp_path) == []


def test_failed_sidecar_leaves_no_csv(frame, tmp_path, monkeypatch):
    """If the sidecar cannot be written, the CSV is not left behind either."""
    def broken(self, *args, **kwargs):
        raise OSError("no space for the sidecar")

    monkeypatch.setattr(type(tmp_path), "write_text", broken)
    with pytest.raises(OSError, match="sidecar"):
        write_results(frame, tmp_path / "run.csv")
    assert _leftovers(tmp_path) == []


def test_failed_rename_of_the_sidecar_leaves_no_csv(frame, tmp_path, monkeypatch):
    """If the CSV is in place but renaming the sidecar fails, neither is left."""
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("rename failed")
        real(src, dst)

    monkeypatch.setattr(atomic_module.os, "replace", flaky)
    with pytest.raises(OSError, match="rename failed"):
        write_results(frame, tmp_path / "run.csv")
    assert _leftovers(tmp_path) == []


def test_results_file_permissions_follow_the_umask(frame, tmp_path):
    """The file is as readable as any file the user creates (temporaries are not 0600)."""
    mask = os.umask(0o022)
    try:
        path = write_results(frame, tmp_path / "run.parquet")
        csv = write_results(frame, tmp_path / "run.csv")
    finally:
        os.umask(mask)
    for p in (path, csv, tmp_path / "run.csv.meta.json"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_recorder_grows_and_truncates():
    """Rows beyond the initial capacity are kept; truncate(t) forgets rows after t."""
    rec = Recorder(["a", "b"], ["1", "V"], capacity=2)
    for k in range(5):
        rec.append(float(k), [k, -k])
    assert len(rec) == 5
    rec.truncate(2.0)
    frame = rec.frame([(1.0, "something")])
    assert list(frame.index) == [0.0, 1.0, 2.0]
    assert frame["b"].tolist() == [0, -1, -2]
    assert frame.attrs == {"units": {"a": "1", "b": "V"}, "events": [[1.0, "something"]]}
