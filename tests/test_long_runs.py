"""Long runs: estimates before they start, a stop that keeps the results so far, rows
streamed to the file so memory does not grow with the duration.

The command-line tests run ``python -m co2twin`` in a subprocess, as a user does; none
asserts a wall time (that is ``co2twin bench``'s business).
"""
from __future__ import annotations

import json
import math
import os
import re
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import co2twin
from co2twin.cli.models import envelope_summary
from co2twin.kpi import balances, checks, flags, kpis
from co2twin.scenario import load_scenario, operating_limits
from cosim import Component, Port, Simulation
from cosim.errors import SimulationError
from cosim.recorder import Recorder, ResultsWriter, read_results, write_results
from models.surrogate import EnvelopeWarning

CLI = [sys.executable, "-m", "co2twin"]
ENV = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "COLUMNS")}
ENV.update(NO_COLOR="1", TERM="dumb")
ESTIMATE = re.compile(r"estimated run: ~\S+ \S+ for ([\d,]+) steps \(([\d,]+) steps/s measured here\); "
                      r"results ([\d,]+) rows x (\d+) columns = [\d.]+ [kMG]?B as float64, "
                      r"file ~[\d.]+ [kMG]?B \((parquet|csv)\)")


def co2twin_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, encoding="utf-8",
                          errors="replace", timeout=300, env=ENV)


def scenario(folder: Path, duration: str, *, extra: str = "", name: str = "long") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\nduration: {duration}\nstep: 1\ninputs:\n  current: 5\n{extra}")
    return path


# -- the engine: a stop request ------------------------------------------------------------
class _Stopper(Component):
    """Counts its steps; asks the simulation to stop while stepping [t_stop, t_stop + dt]."""

    outputs = (Port("n", "1", description="steps taken"),)

    def __init__(self, t_stop: float) -> None:
        super().__init__()
        self.t_stop = t_stop
        self.sim: Simulation | None = None

    def initialize(self, t0: float) -> None:
        self._n = 0

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if dt > 0:
            self._n += 1
        if dt > 0 and self.sim is not None and t == self.t_stop:
            self.sim.request_stop()  # as a signal handler would, in the middle of a step
        return {"n": float(self._n)}


def _stopping(t_stop: float, every: int = 1) -> Simulation:
    comp = _Stopper(t_stop)
    sim = Simulation({"s": comp}, step=1.0)
    sim.record(every=every)
    comp.sim = sim
    return sim


def test_a_stop_request_ends_the_run_at_the_end_of_the_current_step():
    """The step under way finishes and is recorded; nothing of the next step happens."""
    sim = _stopping(5.0)
    frame = sim.run(20.0)
    assert sim.stopped and sim.time == 6.0
    assert list(frame.index) == [float(k) for k in range(7)]
    assert frame["s.n"].iloc[-1] == 6.0 == sim.get("s.n")


def test_a_stopped_decimated_run_records_the_row_where_it_stopped():
    """Between decimated rows the row at the time reached is recorded, so the results end there."""
    sim = _stopping(5.0, every=4)
    frame = sim.run(20.0)
    assert list(frame.index) == [0.0, 4.0, 6.0]


def test_a_run_continues_after_a_stop_and_stale_stops_do_not_cut_it_short():
    """After a stop the next advance runs to its end (the stopped advance's own end is gone)."""
    sim = _stopping(5.0)
    sim.advance_to(10.0)
    assert sim.stopped and sim.time == 6.0
    sim.advance_to(15.0)
    assert not sim.stopped and sim.time == 15.0
    frame = sim.run(20.0)
    assert not sim.stopped and list(frame.index) == [float(k) for k in range(21)]


def test_a_request_in_the_last_step_lets_the_advance_complete():
    """A stop asked for in the last step of an advance is no stop: the advance completed, and
    the next one is not cut short by it."""
    sim = _stopping(9.0)
    sim.advance_to(10.0)
    assert not sim.stopped and sim.time == 10.0
    sim.advance_to(30.0)
    assert not sim.stopped and sim.time == 30.0


# -- the engine: streaming rows ------------------------------------------------------------
class _ListSink:
    def __init__(self) -> None:
        self.names: list[str] = []
        self.chunks: list[tuple[np.ndarray, np.ndarray]] = []

    def open(self, names, units) -> None:
        self.names = list(names)

    def write(self, times, rows) -> None:
        self.chunks.append((times.copy(), rows.copy()))


def test_a_streaming_recorder_hands_on_full_chunks_and_keeps_only_one():
    """Rows go to the sink a chunk at a time; the recorder's own buffer stays that chunk."""
    sink = _ListSink()
    rec = Recorder(["a", "b"], ["1", "V"], sink=sink, chunk_bytes=8 * 3 * 16)  # 16 rows
    for k in range(40):
        rec.append(float(k), [k, -k])
    assert [len(t) for t, _ in sink.chunks] == [16, 16] and len(rec) == 40
    assert rec._data.shape == (16, 3)  # 16 rows of time and two signals
    rec.flush()
    times = np.concatenate([t for t, _ in sink.chunks])
    rows = np.concatenate([r for _, r in sink.chunks])
    assert times.tolist() == list(range(40)) and rows[:, 1].tolist() == [-k for k in range(40)]
    with pytest.raises(SimulationError, match="already streamed"):
        rec.truncate(10.0)
    with pytest.raises(SimulationError, match="streamed to the results file"):
        rec.frame()


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_a_streamed_file_reads_back_as_the_whole_frame_written_at_once(tiny, tmp_path, suffix):
    """ResultsWriter's file, chunk by chunk, reads back like write_results' of the whole frame."""
    sim = Simulation({"i": tiny.integrator("i"), "c": tiny.clock("c")}, step=0.1)
    sim.set("i.u", 1.0 / 3.0)
    frame = sim.run(30.0)
    meta = {"units": {"time_s": "s", **frame.attrs["units"]}, "events": [], "scenario": {"x": 1},
            "run": {"partial": False}}
    writer = ResultsWriter(tmp_path / f"streamed.{suffix}")
    writer.open(list(frame.columns), frame.attrs["units"])
    values, times = frame.to_numpy(), frame.index.to_numpy()
    for start in range(0, len(frame), 64):
        writer.write(times[start:start + 64], values[start:start + 64])
    streamed = read_results(writer.commit(meta))
    frame.attrs.update(scenario={"x": 1}, run={"partial": False})
    whole = read_results(write_results(frame, tmp_path / f"whole.{suffix}"))
    assert list(streamed.columns) == list(whole.columns) and streamed.index.name == "time_s"
    assert np.array_equal(streamed.to_numpy(), whole.to_numpy())
    assert np.array_equal(streamed.index.to_numpy(), whole.index.to_numpy())
    assert streamed.attrs == whole.attrs
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# -- estimates ---------------------------------------------------------------------------
def test_validate_prints_the_estimated_wall_time_and_size(tmp_path):
    """`validate` measures a short calibration run and prints steps, speed, rows x columns and
    the file size; rows x columns are those the run then writes."""
    path = scenario(tmp_path, "1e6 s", extra="record: {every: 1000}\n")
    done = co2twin_cli("validate", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = ESTIMATE.search(done.stdout)
    assert found, done.stdout
    steps, speed, rows, columns, fmt = found.groups()
    assert int(steps.replace(",", "")) == 1_000_000 and int(speed.replace(",", "")) > 0
    assert int(rows.replace(",", "")) == 1001 and fmt == "parquet"
    short = scenario(tmp_path, "60 s", name="short")
    frame = co2twin.run(short)
    assert int(columns) == frame.shape[1] + 1  # time included
    assert list(tmp_path.iterdir()) != [] and not (tmp_path / "results").exists()


def test_run_prints_the_estimate_before_it_runs(tmp_path):
    """`run` prints the estimate on stderr (stdout stays the summary, or JSON)."""
    path = scenario(tmp_path, "120 s")
    done = co2twin_cli("run", str(path), "-o", "r.csv", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = ESTIMATE.search(done.stderr)
    assert found and found.group(5) == "csv", done.stderr
    assert "Ctrl-C stops at the end of the current step" in done.stderr
    assert json.loads(done.stdout)["partial"] is None


# -- Ctrl-C and SIGTERM -------------------------------------------------------------------
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_a_signal_stops_the_run_and_keeps_the_results_so_far(tmp_path, sig, code, suffix):
    """Sent once the run has started (its estimate printed): the run stops at the end of a
    step, writes what it has marked partial with the time reached, says so, exits 128 + n."""
    path = scenario(tmp_path, "30 d")  # about 2.6 million steps: hours, if nothing stops it
    out = tmp_path / f"partial.{suffix}"
    proc = subprocess.Popen([*CLI, "run", str(path), "-o", str(out)], cwd=tmp_path, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8")
    started = threading.Event()
    lines: list[str] = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("estimated run:"):
                started.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert started.wait(120), "".join(lines)
        threading.Event().wait(1.0)  # let it record some rows (not a timing assertion)
        proc.send_signal(sig)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stdout is not None
    stdout = proc.stdout.read()  # the summary: small, it did not fill the pipe
    reader.join(10)
    stderr = "".join(lines)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    name = signal.Signals(sig).name
    assert re.search(rf"stopped by {name} at t = [\d.e+]+ s of 2\.592e\+06 s: the results so far "
                     rf"are in {re.escape(str(out))}, marked partial", stderr), stderr
    assert f"partial results: stopped by {name} at t = " in stdout
    frame = read_results(out)
    run = frame.attrs["run"]
    assert run["partial"] is True and run["stopped_by"] == name
    assert run["end_s"] == 30 * 86400.0
    assert 0 < run["time_reached_s"] < run["end_s"]
    assert frame.index[-1] == run["time_reached_s"] and len(frame) == run["rows"]
    assert np.array_equal(frame.index.to_numpy(), np.arange(len(frame), dtype=float))
    assert frame["reactor.charge_passed"].is_monotonic_increasing
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


# -- memory ------------------------------------------------------------------------------
def _peak_rss_mb(path: Path, cwd: Path) -> float:
    """Peak resident memory of `co2twin run path` in its own process (MiB)."""
    probe = ("import resource, subprocess, sys\n"
             "done = subprocess.run(sys.argv[1:], capture_output=True)\n"
             "assert done.returncode == 0, done.stderr\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    done = subprocess.run([sys.executable, "-c", probe, *CLI, "run", str(path), "-o",
                           str(path.with_suffix(".parquet"))], cwd=cwd, capture_output=True,
                          encoding="utf-8", timeout=600, env=ENV)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip()) / 1024  # ru_maxrss is in KiB on Linux


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss units differ by platform")
def test_memory_does_not_grow_with_the_duration(tmp_path):
    """Peak RSS above a 1-minute run's: a 36 h run needs far less than 6 times a 6 h run's
    (in memory the rows alone grow 6 times: 130,000 rows x ~100 columns is ~100 MB)."""
    base = _peak_rss_mb(scenario(tmp_path, "60 s", name="base"), tmp_path)
    short = _peak_rss_mb(scenario(tmp_path, "6 h", name="short"), tmp_path)
    long = _peak_rss_mb(scenario(tmp_path, "36 h", name="long"), tmp_path)
    rows_mb = 129_601 * 100 * 8 / 2**20
    assert long - base < 2.0 * (short - base) + 16, (base, short, long)
    assert long - short < 0.5 * rows_mb, (base, short, long)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0


# -- the summary of a streamed run is the summary of its results ----------------------------
EVENTFUL = """events:
  - {at: 7000, type: set, target: current, value: 10.5}
  - {at: 9000, type: set, target: gas_flow, value: 800}
  - {at: 9000, type: set, target: co2_fraction, value: 12}
  - {at: 12000, type: set, target: current, value: 5}
  - {at: 12500, type: set, target: gas_flow, value: 100}
  - {at: 12500, type: set, target: co2_fraction, value: 100}
"""


@pytest.mark.parametrize("every, duration", [(1, "6 h"), (3, "18 h")])
def test_a_run_of_many_row_groups_is_summarised_as_its_whole_results(tmp_path, every, duration):
    """KPIs, flags, balances, checks and model lines printed for a run streamed in several row
    groups (merged chunk by chunk) are those of its results taken whole."""
    path = scenario(tmp_path, duration, extra=EVENTFUL + f"record: {{every: {every}}}\n",
                    name="eventful")
    done = co2twin_cli("run", str(path), "-o", "r.parquet", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    frame = read_results(tmp_path / "r.parquet")
    limits = operating_limits(load_scenario(path))
    assert len(frame) > 2 * 10_000  # several row groups of ~10,000 rows
    with pytest.warns(EnvelopeWarning):  # 420 mA/cm2 (models to 375): outside, on purpose
        assert np.array_equal(frame.to_numpy(), co2twin.run(path).to_numpy())
    want = json.loads(json.dumps({"kpis": kpis(frame, limits), "flags": flags(frame, limits),
                                  "balances": balances(frame), "checks": checks(frame),
                                  "models": envelope_summary(frame)}))
    assert got["checks"] == want["checks"] and got["models"] == want["models"]
    assert got["kpis"].keys() == want["kpis"].keys()
    for key, value in want["kpis"].items():
        assert got["kpis"][key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert got["balances"].keys() == want["balances"].keys()
    for key, value in want["balances"].items():
        if key == "carbon_plant":  # a whole-run ratio: the worst row group's instead
            assert got["balances"][key] < 1e-9 and value < 1e-9
        else:
            assert got["balances"][key] == pytest.approx(value, rel=1e-6, abs=1e-15), key
    by_signal = {(e["kind"], e["signal"]): e for e in got["flags"]}
    assert len(by_signal) == len(got["flags"]) == len(want["flags"]) >= 6
    for entry in want["flags"]:
        mine = by_signal[entry["kind"], entry["signal"]]
        for key in ("rows", "of_rows", "seconds", "first_s", "last_s", "worst", "what"):
            assert mine[key] == entry[key], (entry["signal"], key)
    assert not any(math.isnan(v) for v in got["kpis"].values() if isinstance(v, float))


def test_the_plot_preview_of_a_long_run_keeps_short_spikes(tmp_path, monkeypatch):
    """The preview a long run keeps for its plot holds every signal's extremes: a 3 s current
    spike in 8 h (rows far apart in the preview) still shows at its full height, and flags
    raised only during it still show; the preview stays within PREVIEW_ROWS."""
    from co2twin import streaming
    from co2twin.outputs import ResultsTarget

    monkeypatch.setattr(streaming, "PREVIEW_ROWS", 500)
    spike = ("events:\n"
             "  - {at: 10001, type: set, target: current, value: 9.0}\n"
             "  - {at: 10004, type: set, target: current, value: 5.0}\n"
             "limits:\n  reactor.cell_voltage: {high: 3.6}\n")
    path = scenario(tmp_path, "8 h", extra=spike, name="spiky")
    target = ResultsTarget(tmp_path / "r.parquet", "parquet")
    streamed = streaming.run_streamed(load_scenario(path), target, progress=False,
                                      chunk_bytes=64 * 1024)
    streamed.commit()
    preview = streamed.summary.preview
    whole = read_results(target.path)
    assert len(preview) <= 500 + 1 < len(whole) // 50
    for name in ("power.current", "reactor.cell_voltage", "reactor.formate_rate"):
        assert preview[name].max() == whole[name].max(), name
        assert preview[name].min() == whole[name].min(), name
    raised = [c for c in whole.columns if c.endswith(":outside_limits") and whole[c].max() == 1.0]
    assert raised  # the spike takes the voltage over 3.6 V for a few seconds only
    for name in raised:
        assert preview[name].max() == 1.0, name
    assert preview.index.is_monotonic_increasing
    assert preview.index[0] == whole.index[0] and preview.index[-1] == whole.index[-1]
