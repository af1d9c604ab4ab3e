"""Shared fixtures: tiny traced components for engine tests, and the standard plant.

The tiny components exchange dimensionless numbers and append ``(label, t, dt)``
to one shared trace on every step, so a test can assert the execution order the
engine produced as well as the values it recorded.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from collections.abc import Callable, Mapping

import pytest

from components.plant import build_plant
from cosim import Component, Parameter, Port, Simulation
from models.valco2t import default_dir


class Traced(Component):
    """A component that logs every step it takes into a shared trace."""

    def __init__(self, label: str = "", trace: list | None = None, **params: float) -> None:
        super().__init__(**params)
        self.label = label
        self.trace = [] if trace is None else trace

    def _log(self, t: float, dt: float) -> None:
        self.trace.append((self.label, t, dt))


class Clock(Traced):
    """No inputs; outputs the time at the end of its step (a measured signal)."""

    outputs = (Port("y", "1", description="time at the end of the step", measured=True),)

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        self._log(t, dt)
        return {"y": t + dt}


class Follower(Traced):
    """``y = gain * u + offset``; ``offset`` is tunable, ``gain`` is not."""

    inputs = (Port("u", "1", description="input"),)
    outputs = (Port("y", "1", description="output", measured=True),)
    parameters = (
        Parameter("offset", 0.0, "1", "added to the input", -1e9, 1e9, tunable=True),
        Parameter("gain", 1.0, "1", "multiplies the input", -1e9, 1e9),
    )

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        self._log(t, dt)
        return {"y": self.p.gain * inputs["u"] + self.p.offset}


class Integrator(Traced):
    """``y`` integrates ``u`` over time (state ``_total``); ``steps`` counts its steps."""

    inputs = (Port("u", "1", description="rate", start=1.0),)
    outputs = (
        Port("y", "1", description="integral of u", measured=True),
        Port("steps", "1", description="steps taken with dt > 0"),
    )
    state_names = ("_total", "_steps")

    def initialize(self, t0: float) -> None:
        self._total = 0.0
        self._steps = 0

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        self._log(t, dt)
        self._total += inputs["u"] * dt
        self._steps += dt > 0
        return {"y": self._total, "steps": float(self._steps)}


class Faulty(Traced):
    """Returns ``y = u`` until ``t >= fail_at``, then misbehaves as ``how`` says."""

    inputs = (Port("u", "1", description="input"),)
    outputs = (Port("y", "1", description="output"), Port("z", "1", description="second output"))

    def __init__(self, label: str = "", trace: list | None = None, *, fail_at: float = math.inf,
                 how: str = "nan") -> None:
        super().__init__(label, trace)
        self.fail_at = fail_at
        self.how = how

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        self._log(t, dt)
        if t < self.fail_at:
            return {"y": inputs["u"], "z": 0.0}
        if self.how == "nan":
            return {"y": math.nan, "z": 0.0}
        if self.how == "inf":
            return {"y": math.inf, "z": 0.0}
        if self.how == "missing":
            return {"y": inputs["u"]}
        return None  # type: ignore[return-value]


class Tiny:
    """Factory of tiny components sharing one trace."""

    def __init__(self) -> None:
        self.trace: list[tuple[str, float, float]] = []

    def clock(self, label: str) -> Clock:
        return Clock(label, self.trace)

    def follower(self, label: str, **params: float) -> Follower:
        return Follower(label, self.trace, **params)

    def integrator(self, label: str) -> Integrator:
        return Integrator(label, self.trace)

    def faulty(self, label: str, **kwargs: Any) -> Faulty:
        return Faulty(label, self.trace, **kwargs)

    def order(self, t: float | None = None, *, stepping: bool = True) -> list[str]:
        """Labels in the order they stepped (at time ``t``; only dt > 0 steps by default)."""
        return [
            label for label, time, dt in self.trace
            if (t is None or time == t) and (dt > 0 or not stepping)
        ]


@pytest.fixture
def tiny() -> Tiny:
    """Tiny traced components sharing one trace."""
    return Tiny()


@pytest.fixture
def fixed_controller(tmp_path: Path) -> Path:
    """A folder holding ``mine.py``: ``Fixed``, a Python controller class that asks 5 A each
    step (``python: mine:Fixed``; a scenario there imports it). Returns the folder."""
    (tmp_path / "mine.py").write_text(
        "class Fixed:\n"
        "    def initialise(self, t0):\n"
        "        pass\n"
        "    def step(self, t, measurements):\n"
        "        return {'current': 5.0}\n", encoding="utf-8")
    return tmp_path


@pytest.fixture
def plant() -> Callable[..., Simulation]:
    """Factory of simulations of the standard plant (``step`` 1 s unless told)."""

    def make(step: float = 1.0, seed: int = 0, **kwargs: Any) -> Simulation:
        components, connections = build_plant(kwargs.pop("parameters", None))
        return Simulation(components, connections, step=step, seed=seed, **kwargs)

    return make


@pytest.fixture(scope="session")
def shipped_run() -> Callable[[Path], tuple[Any, Any]]:
    """``shipped_run(path)``: the scenario file loaded and run, once per session (``(scenario, frame)``).

    The 24 h scenario is checked by two tests (balances, and accumulation over the day); this
    runs it once for both. Each call returns its own copy of the frame.
    """
    from co2twin import load_scenario, run

    done: dict[Path, tuple[Any, Any]] = {}

    def get(path: Path) -> tuple[Any, Any]:
        key = Path(path).resolve()
        if key not in done:
            scenario = load_scenario(key)
            done[key] = scenario, run(scenario, progress=False)
        scenario, frame = done[key]
        return scenario, frame.copy()

    return get


#: the VALCO2T twin's four Keras models; CI has them beside the repository, never inside it
#: (found as the twin finds them: CO2TWIN_VALCO2T_DIR, else shared/valco2t/models above)
VALCO2T_MODELS = default_dir() or Path(__file__).resolve().parents[2] / "shared" / "valco2t" / "models"


@pytest.fixture(scope="session")
def valco2t_models() -> Path:
    """The folder of the four VALCO2T models; fails (never skips) when they are missing."""
    missing = [n for n in ("DNN_V_model", "DNN_CH2_model", "DNN_CCO2_model", "DNN_pH_model")
               if not (VALCO2T_MODELS / f"{n}.keras").is_file()]
    assert not missing, (f"VALCO2T models {', '.join(missing)} not found in {VALCO2T_MODELS}; "
                         "tests need ../shared/valco2t beside the repository, or "
                         "CO2TWIN_VALCO2T_DIR naming its models folder")
    return VALCO2T_MODELS


@pytest.fixture(scope="session")
def scenario_schema() -> dict[str, Any]:
    """The JSON Schema of scenario files, as ``co2twin.json_schema()`` gives it."""
    import co2twin

    return co2twin.json_schema()


@pytest.fixture(scope="session")
def keras() -> Any:
    """Keras, with TensorFlow's C++ logging quietened (the tests that compare with it)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    return keras


@pytest.fixture(scope="session")
def model_card() -> Callable[..., Any]:
    """Factory of valid model cards (validated by ModelCard) for hand-built test models."""
    from models.cards import InputRange, ModelCard, Splits
    from models.variables import FEATURES, VARIABLES

    def make(variable: str, kind: str, envelope: Mapping[str, tuple[float, float]]) -> ModelCard:
        output: dict[str, Any] = {"name": variable, "unit": VARIABLES[variable].unit}
        if kind == "hybrid":
            output.update(residual_of="physics", baseline={"function": "models.baseline.predict"})
        split = {"truth": {"mae": 0.01, "rmse": 0.02, "r2": 0.9}}
        return ModelCard(
            variable=variable, kind=kind,
            inputs=[InputRange(n, FEATURES[n].unit, lo, hi) for n, (lo, hi) in envelope.items()],
            output=output, metrics={"test": split, "extrapolation": split},
            data={"hash": "ab" * 32, "rows": 10, "source": "<test>",
                  "splits": Splits(0, 0.85, 240.0, (1,), (2,)).to_dict()},
            training={"epochs_run": 1, "early_stopping": {}, "seed": 0, "time_s": 0.1,
                      "architecture": {"hidden": [4]}, "optimizer": {"name": "none"}},
            versions={"keras": "3"}, created="2026-01-01T00:00:00+00:00",
        )

    return make


@pytest.fixture(scope="session")
def trained_dir(keras: Any, model_card: Callable[..., Any],
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<variable>.<kind>.keras`` + cards for the four variables, nn and hybrid, on their
    features, enveloped by :data:`kit.WIDE` (tests/kit.py)."""
    from kit import TYPICAL, WIDE, network
    from models.cards import card_beside
    from models.variables import VARIABLES

    folder = tmp_path_factory.mktemp("trained")
    for i, (variable, spec) in enumerate(VARIABLES.items()):
        for kind in ("nn", "hybrid"):
            path = folder / f"{variable}.{kind}.keras"
            network(keras, spec.features, bias=TYPICAL[variable] if kind == "nn" else 0.0,
                    seed=10 + i).save(path)
            model_card(variable, kind, {f: WIDE[f] for f in spec.features}).write(card_beside(path))
    return folder


# -- the exported FMU (tests/test_fmu_*.py) ---------------------------------------------------
#: the scenario the FMU tests export
FMU_SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "baseline.yaml"


@pytest.fixture(scope="session")
def fmu_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The baseline scenario's FMU (``co2twin fmu build``), built once per session."""
    from fmu.build import build_fmu

    return build_fmu(FMU_SCENARIO, tmp_path_factory.mktemp("fmu") / "co2twin.fmu")


@pytest.fixture(scope="session")
def fmu_model(fmu_path: Path) -> Any:
    """The FMU's model description (FMPy)."""
    import fmpy

    return fmpy.read_model_description(str(fmu_path))


@pytest.fixture(scope="session")
def fmu_dir(fmu_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The FMU unpacked once per session, for hosts that leave the folder alone."""
    import zipfile

    folder = tmp_path_factory.mktemp("fmu_unpacked")
    with zipfile.ZipFile(fmu_path) as z:
        z.extractall(folder)
    return folder


@pytest.fixture
def fmu_unzip(fmu_path: Path, tmp_path: Path) -> Callable[[str], Path]:
    """``unzip(name)``: a fresh unpack folder of the FMU in this test's ``tmp_path``."""
    import zipfile

    def unzip(name: str = "unzipped") -> Path:
        folder = tmp_path / name
        with zipfile.ZipFile(fmu_path) as z:
            z.extractall(folder)
        return folder

    return unzip


@pytest.fixture(scope="session")
def fmi_host(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/fmi_host.c compiled with the system compiler (a C host, as the FMI Library loads)."""
    import shutil
    import subprocess

    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("the C host tests need gcc (`.ci/run` installs it)")
    host = tmp_path_factory.mktemp("host") / "fmi_host"
    subprocess.run([gcc, "-O1", "-Wall", "-o", str(host), str(Path(__file__).parent / "fmi_host.c"),
                    "-ldl"], check=True)
    return host
