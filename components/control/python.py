"""A user's Python class as a controller: one documented signature, wrapped as a component.

The class (``module:Class`` in a scenario) is constructed with the scenario's
``parameters`` as keyword arguments and must provide::

    initialise(t0: float) -> None
        reset for a run starting at t0 (seconds)
    step(t: float, measurements: Mapping[str, float]) -> Mapping[str, float]
        at each sample instant t: the measurements it asked for (sensor readings, faults
        included), keyed by signal name (``reactor.cell_voltage``), and the set point of
        each as ``<signal>.setpoint`` where the scenario or test case gives one; returns
        one action per actuator, keyed as the scenario names it (``current``)
    get_state() -> Any ; set_state(state) -> None
        a snapshot of its state and the way back (checkpoints, rollback, MPC); without
        them the adapter keeps a deep copy of the whole object instead

and may provide ``set_forecasts(forecasts)``: called once before ``initialise`` with
``{name: f}``, ``f(t) -> value`` for each known profile of a test case (the price,
the planned set points), for controllers that plan ahead.
"""
from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from cosim import Component, Parameter, Port, SimulationError, WiringError

from .base import Controller

__all__ = ["PythonController", "load_class", "port_name", "REQUIRED_METHODS"]

#: the methods a controller class must have
REQUIRED_METHODS = ("initialise", "step")


def port_name(signal: str) -> str:
    """The port name of a signal or actuator name: ``reactor.cell_voltage`` -> ``reactor_cell_voltage``."""
    return signal.replace(".", "_")


class PythonController(Controller):
    """Adapter of a Python object following the controller signature (module docstring).

    Ports come from :meth:`for_signals`: one measured input per measurement, one input per
    set point (``<port>_setpoint``), one output per actuator. ``sample_time`` spaces the
    calls to the object's ``step``; its actions hold in between.
    """

    parameters = (
        Parameter("sample_time", 0.0, "s", "time between calls of step (0: every step)", 0.0, 1e9),
    )
    #: the user's object steps one run: an ensemble refuses it
    supports_arrays: ClassVar[bool] = False
    #: port name -> the name the user's object sees (a signal, ``<signal>.setpoint``, an actuator)
    names: ClassVar[Mapping[str, str]] = {}
    state_names = Controller.state_names

    @classmethod
    def for_signals(
        cls,
        measurements: Sequence[tuple[str, Port]],
        actuators: Sequence[tuple[str, Port]],
        setpoints: Sequence[tuple[str, Port]] = (),
    ) -> type[PythonController]:
        """The adapter class for these (name, port of the signal) measurements, set points
        and actuators; ports take each signal's unit and bounds, outputs the actuator's start."""
        key = (tuple(measurements), tuple(actuators), tuple(setpoints))
        if (cls, key) not in _ADAPTERS:  # the same signals give the same class
            _ADAPTERS[cls, key] = _adapter(cls, key)
        return _ADAPTERS[cls, key]

    @classmethod
    def port_for(cls, name: str) -> str:
        """The port of a measurement, set point (``<signal>.setpoint``) or actuator name."""
        for port, shown in cls.names.items():
            if shown == name:
                return port
        raise WiringError(f"{cls.__name__} has no port for {name!r}; it has: "
                          f"{', '.join(cls.names.values()) or 'none'}")

    def __init__(self, controller: Any, *, forecasts: Mapping[str, Callable[[float], float]] | None = None,
                 **params: float) -> None:
        super().__init__(**params)
        missing = [m for m in REQUIRED_METHODS if not callable(getattr(controller, m, None))]
        if missing:
            raise WiringError(f"{_label(controller)} has no {', '.join(missing)}(); expected a "
                              "controller with initialise(t0) and step(t, measurements) -> actions")
        self.controller = controller
        if forecasts and callable(getattr(controller, "set_forecasts", None)):
            controller.set_forecasts(dict(forecasts))
        self._inputs = [(p.name, self.names[p.name]) for p in self.inputs]
        self._outputs = [(p.name, self.names[p.name], p) for p in self.outputs]

    def reset(self) -> None:
        self.controller.initialise(self._next)

    def sample(self, t: float, period: float, since: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        seen = {name: float(inputs[port]) for port, name in self._inputs}
        actions = self.controller.step(t, seen)
        if not isinstance(actions, Mapping):
            raise SimulationError(f"{_label(self.controller)}.step() at t={t:g} s returned "
                                  f"{_shown(actions)}; expected a mapping of actuator -> value "
                                  f"({', '.join(n for _, n, _ in self._outputs)})")
        out: dict[str, Any] = {}
        for port, name, spec in self._outputs:
            if name not in actions:
                raise SimulationError(f"{_label(self.controller)}.step() at t={t:g} s gave no action "
                                      f"for {name!r}; expected {', '.join(n for _, n, _ in self._outputs)}")
            value = actions[name]
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if not spec.contains(number):
                raise SimulationError(f"{_label(self.controller)}.step() at t={t:g} s: {name} = "
                                      f"{_shown(value)}; expected a finite value in {spec.bounds_text()}")
            out[port] = number
        extra = sorted(set(actions) - {n for _, n, _ in self._outputs})
        if extra:
            raise SimulationError(f"{_label(self.controller)}.step() at t={t:g} s: unknown actuator(s) "
                                  f"{', '.join(map(repr, extra))}; expected "
                                  f"{', '.join(n for _, n, _ in self._outputs)}")
        return out

    def get_state(self) -> dict[str, Any]:
        """The adapter's state and the controller's (its get_state(), else a deep copy of it)."""
        state = super().get_state()
        getter = getattr(self.controller, "get_state", None)
        state["__controller__"] = copy.deepcopy(getter()) if callable(getter) \
            else copy.deepcopy(self.controller)
        return state

    def set_state(self, state: Mapping[str, Any]) -> None:
        super().set_state(state)
        setter = getattr(self.controller, "set_state", None)
        if callable(setter) and callable(getattr(self.controller, "get_state", None)):
            setter(copy.deepcopy(state["__controller__"]))
        else:
            self.controller = copy.deepcopy(state["__controller__"])


#: adapter classes made so far, by base class and signals (classes never change)
_ADAPTERS: dict[tuple[type, tuple[tuple[tuple[str, Port], ...], ...]], type[PythonController]] = {}


def _adapter(cls: type[PythonController],
             key: tuple[tuple[tuple[str, Port], ...], ...]) -> type[PythonController]:
    measurements, actuators, setpoints = key
    inputs: list[Port] = []
    outputs: list[Port] = []
    names: dict[str, str] = {}

    def add(ports: list[Port], name: str, shown: str, source: Port, **changes: Any) -> None:
        port = port_name(name)
        if not port.isidentifier():
            raise WiringError(f"{shown!r} cannot name a port (it gives {port!r}); expected "
                              "component.port or a name of letters, digits and underscores")
        if port in names:
            raise WiringError(f"{shown!r} and {names[port]!r} give the same port name {port!r}")
        names[port] = shown
        ports.append(Port(port, source.unit, source.lower, source.upper,
                          changes.get("description", source.description),
                          start=changes.get("start", min(max(0.0, source.lower), source.upper)),
                          measured=changes.get("measured", False)))

    for name, source in measurements:
        add(inputs, name, name, source, measured=True, description=f"reads {name}")
    for name, source in setpoints:
        add(inputs, f"{name}_setpoint", f"{name}.setpoint", source, description=f"set point of {name}")
    for name, source in actuators:
        add(outputs, name, name, source, start=source.start, description=f"action on {name}")
    return type(cls.__name__, (cls,), {
        "inputs": tuple(inputs), "outputs": tuple(outputs), "names": names,
        "__module__": cls.__module__, "__qualname__": cls.__qualname__,
    })


def load_class(target: str, search: Iterable[Path] = ()) -> type:
    """The class that ``module:Class`` names.

    ``module`` is looked for first as a file ``module.py`` (dots are folders) in each
    folder of ``search`` (a scenario's own folder), then on the Python path. Every
    failure raises :class:`WiringError` saying what was expected and what was found.
    """
    module_name, colon, attr = target.partition(":")
    if not colon or not module_name or not attr:
        raise WiringError(f"expected 'module:Class', found {target!r}")
    module = _module(module_name, [Path(s) for s in search])
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            defined = sorted(n for n, v in vars(module).items()
                             if isinstance(v, type) and not n.startswith("_"))
            raise WiringError(f"{module_name} has no {attr!r}; it defines: "
                              f"{', '.join(defined) or 'no class'}")
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise WiringError(f"{target} is a {type(obj).__name__}, expected a class")
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(obj, m, None))]
    if missing:
        raise WiringError(f"{target} has no {', '.join(missing)}(); expected a controller class with "
                          "initialise(t0) and step(t, measurements) -> actions")
    if issubclass(obj, Component):
        raise WiringError(f"{target} is a component; wire it with components: and connections:, "
                          "or give a class with initialise(t0) and step(t, measurements)")
    return obj


def _module(name: str, search: list[Path]) -> Any:
    for folder in search:
        file = folder.joinpath(*name.split(".")).with_suffix(".py")
        if file.is_file():
            return _module_from_file(file.resolve(), name)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        where = ", ".join(str(s) for s in search)
        raise WiringError(f"cannot import {name!r} (looked in {where + ' and ' if where else ''}"
                          f"the Python path): {exc}") from None
    except Exception as exc:  # the user's module failed while it ran
        raise WiringError(f"importing {name!r} failed: {type(exc).__name__}: {exc}") from None


def _module_from_file(file: Path, name: str) -> Any:
    # a private module name per file: two scenarios' "controller.py" never collide, and the
    # module is in sys.modules while it runs (dataclasses and pickling look it up there)
    digest = hashlib.sha1(str(file).encode()).hexdigest()[:12]
    private = f"_co2twin_controller_{digest}_{name.replace('.', '_')}"
    spec = importlib.util.spec_from_file_location(private, file)
    if spec is None or spec.loader is None:
        raise WiringError(f"{file}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[private] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's module failed while it ran
        del sys.modules[private]
        raise WiringError(f"{file}: importing it failed: {type(exc).__name__}: {exc}") from None
    return module


def _label(controller: Any) -> str:
    return type(controller).__name__


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
