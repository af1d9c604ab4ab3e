"""Plots people read: set points and limits drawn, events numbered and listed, cell temperature
in the default set, the signals --signals chooses, and an interactive HTML beside the PNG."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from co2twin import run
from co2twin import plot
from components.plant import KEY_SIGNALS

CLI = [sys.executable, "-m", "co2twin.cli"]
ENV = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "COLUMNS")}
ENV.update(NO_COLOR="1", TERM="dumb")
SCENARIO = """name: steps
duration: 1200
step: 1
models: {default: physics}
inputs:
  current: {steps: [[0, 4], [600, 8]]}
  gas_flow: 800
  co2_fraction: 12
events:
  - {at: 300, type: pump_stop, pump: catholyte}
  - {at: 420, type: pump_restart, pump: catholyte}
limits:
  reactor.cell_voltage: {high: 3.6}
"""


def co2twin(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, encoding="utf-8",
                          errors="replace", timeout=180, env=ENV, check=False)


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    path = tmp_path_factory.mktemp("plot") / "steps.yaml"
    path.write_text(SCENARIO)
    return run(path)


def test_the_default_set_has_the_cell_temperature():
    """The cell temperature (the baseline's whole story) is one of the key signals."""
    assert "reactor.cell_temperature" in dict(KEY_SIGNALS)


def test_panels_carry_the_set_point_and_the_limits(frame):
    """current gets its set point column; cell voltage the scenario's limit; labels get units."""
    shown = {p["column"]: p for p in plot.panels(frame, [*KEY_SIGNALS, ("feed.gas_flow", "feed.gas_flow")])}
    assert shown["power.current"]["setpoint"] == "power.current_setpoint"
    assert shown["feed.gas_flow"]["setpoint"] == "feed.gas_flow_setpoint"
    assert shown["feed.gas_flow"]["label"] == "feed.gas_flow [mL/min]"
    assert (shown["reactor.cell_voltage"]["low"], shown["reactor.cell_voltage"]["high"]) == (None, 3.6)
    assert shown["reactor.anolyte_ph"]["low"] == 12.0


def test_the_figure_draws_set_points_limits_numbered_events_and_flags(frame):
    """Lines labelled set point and high limit, the events numbered above the panels and listed
    with their text under them, and a panel of the flags raised (the N2 controller saturated)."""
    fig = plot.figure(frame, KEY_SIGNALS, title="steps")
    try:
        axes = fig.get_axes()
        titles = [ax.get_title(loc="left") for ax in axes]
        assert titles[0].startswith("events") and titles[-1].startswith("flags raised")
        assert any(t.startswith("cell temperature [degC]") for t in titles)
        by_title = dict(zip(titles, axes, strict=True))
        current = by_title["current [A]"]
        assert "set point" in [line.get_label() for line in current.get_lines()]
        voltage = by_title["cell voltage [V]"]
        limit = [line for line in voltage.get_lines() if line.get_label() == "high limit"]
        assert limit and limit[0].get_ydata()[0] == 3.6
        assert [t.get_text() for t in axes[0].texts] == ["1", "2"]
        footer = " ".join(t.get_text() for t in fig.texts)
        assert "300 s: catholyte pump stops" in footer and "420 s: catholyte pump restarts" in footer
        assert "feed.n2_mfc_saturated" in [t.get_text() for t in axes[-1].texts]
    finally:
        plt.close(fig)


def test_a_limit_far_from_the_data_is_named_not_drawn(frame):
    """The 60 degC cell temperature limit is off the data's scale: named in the title."""
    fig = plot.figure(frame, [("reactor.cell_temperature", "cell temperature [degC]")])
    try:
        ax = next(a for a in fig.get_axes() if a.get_title(loc="left").startswith("cell temperature"))
        assert "high limit 60: off scale" in ax.get_title(loc="left")
        assert "high limit" not in [line.get_label() for line in ax.get_lines()]
    finally:
        plt.close(fig)


def test_png_and_html_are_written_together(frame, tmp_path):
    """html=True writes the interactive plot beside the PNG, with plotly inside (offline)."""
    png = plot.plot_signals(frame, KEY_SIGNALS, tmp_path / "p.png", title="steps", html=True)
    html = (tmp_path / "p.html").read_text(encoding="utf-8")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plotly" in html.lower() and "cell temperature [degC]" in html
    assert "300 s: catholyte pump stops" in html and "high limit 3.6" in html


def test_signals_chooses_what_the_plot_draws_with_glob_patterns(tmp_path):
    """--signals 'feed.*_flow' --signals power.current: those panels only, in PNG and HTML."""
    (tmp_path / "s.yaml").write_text(SCENARIO)
    done = co2twin("run", "s.yaml", "-o", "r.csv", "--plot", "p.png", "--signals", "feed.*_flow",
                   "--signals", "power.current,reactor.cell_voltage", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "interactive plot: p.html" in done.stdout
    html = (tmp_path / "p.html").read_text(encoding="utf-8").replace("\\u002f", "/")  # JSON's "/"
    for name in ("feed.gas_flow [mL/min]", "feed.anolyte_flow [mL/min]", "power.current [A]",
                 "reactor.cell_voltage [V]"):
        assert name in html, name
    assert "tank formate" not in html and "reactor.anolyte_ph" not in html


@pytest.mark.parametrize("args, fragment", [
    (["--signals", "reactor.*"], "--signals chooses what --plot draws; give --plot FILE.png too"),
    (["--plot", "p.png", "--signals", "nope.*"], "--signals: 'nope.*' matches no signal"),
])
def test_bad_signal_choices_are_refused_before_the_run(tmp_path, args, fragment):
    """--signals without --plot, or a pattern that matches nothing: an error, nothing written."""
    (tmp_path / "s.yaml").write_text(SCENARIO)
    done = co2twin("run", "s.yaml", "-o", "r.csv", *args, cwd=tmp_path)
    assert done.returncode == 1 and fragment in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]
