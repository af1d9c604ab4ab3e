"""The component contract: declared ports and parameters, own state, ``step``.

A component knows nothing of SimPy, files or FMUs. The engine calls

* ``initialize(t0)`` once, to reset the state;
* ``step(t, dt, inputs)`` for every communication step: advance the state from
  ``t`` to ``t + dt`` with ``inputs`` held constant and return the outputs at
  ``t + dt``. ``dt == 0`` only evaluates the outputs at the current state; the
  engine uses it to obtain consistent outputs at the start time.

Inputs and outputs are dicts keyed by port name. The maths of the plant
components also accepts NumPy arrays (one element per scenario variant).

A component may also offer ``step_values(t, dt, values)``, the same step with the
inputs as a tuple in the order of ``inputs`` and the outputs as a sequence in the
order of ``outputs`` (see :meth:`Component.step_values`). The engine then calls it
instead of ``step`` on its per-step path: building and reading two dicts a step
costs more than some components' whole physics. ``step`` stays the contract; a
component that overrides ``step_values`` must return exactly what ``step`` returns,
value for value (the plant's components are tested so, bit for bit).
"""
from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any, ClassVar
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .errors import WiringError
from .values import getter
from .ports import Parameter, Port

__all__ = ["Component"]


class Component:
    """Base class of every co-simulation component.

    Subclasses declare ``inputs``, ``outputs`` and ``parameters`` as class
    attributes and list the attributes holding their dynamic state in
    ``state_names`` (used by :meth:`get_state` / :meth:`set_state`).
    Parameter values are read as ``self.p.<name>``.
    """

    inputs: ClassVar[tuple[Port, ...]] = ()
    outputs: ClassVar[tuple[Port, ...]] = ()
    parameters: ClassVar[tuple[Parameter, ...]] = ()
    state_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params: float) -> None:
        declared = {p.name: p for p in self.parameters}
        unknown = sorted(set(params) - set(declared))
        if unknown:
            raise WiringError(
                f"{type(self).__name__}: unknown parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(declared)) or 'none'}"
            )
        values = {name: p.default for name, p in declared.items()}
        for name, value in params.items():
            values[name] = _checked_value(self, declared[name], value)
        self.p = SimpleNamespace(**values)

    # -- contract -----------------------------------------------------------------
    def initialize(self, t0: float) -> None:
        """Reset the dynamic state for a run starting at ``t0`` (seconds)."""

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Advance from ``t`` to ``t + dt`` with ``inputs`` held; return outputs at ``t + dt``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement step()")

    def step_values(self, t: float, dt: float, values: tuple[Any, ...]) -> Sequence[Any]:
        """:meth:`step` with positional inputs and outputs (an optional fast path).

        ``values`` holds the inputs in the order of :attr:`inputs`; the result holds the
        outputs in the order of :attr:`outputs`, the same values :meth:`step` returns for
        the same inputs and state. This default goes through :meth:`step`; the engine
        calls a component's ``step_values`` only where its class overrides it (skipping
        both dicts), and a faster override must still agree with :meth:`step` exactly.
        """
        out = self.step(t, dt, dict(zip((p.name for p in self.inputs), values, strict=True)))
        return [out[p.name] for p in self.outputs]

    @classmethod
    def positional(cls, inputs: Sequence[str], outputs: Sequence[str],
                   ) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
        """For a :meth:`step_values` written with its inputs and outputs in the order
        ``inputs`` and ``outputs``: check that those are the class's ports in their order
        (``ImportError`` naming the class otherwise: a port added or moved must fail at import,
        not shift every value after it) and return what takes the inputs out of a mapping in
        that order (for :meth:`step` to call the same code)."""
        if (tuple(p.name for p in cls.inputs), tuple(p.name for p in cls.outputs)) != (
                tuple(inputs), tuple(outputs)):
            raise ImportError(f"{cls.__module__}.{cls.__name__}: its positional step takes and "
                              "returns the ports in an order they no longer have; the ports "
                              "changed")
        return getter(tuple(inputs))

    @classmethod
    def has_step_values(cls) -> bool:
        """Whether the engine calls :meth:`step_values` for this class: it is overridden, by
        the class that defines :meth:`step` or a subclass of it (a subclass that overrides
        ``step`` alone is stepped through its ``step``)."""
        def owner(name: str) -> type:
            return next(k for k in cls.__mro__ if name in vars(k))

        values, step = owner("step_values"), owner("step")
        return values is not Component and issubclass(values, step)

    # -- parameters -----------------------------------------------------------------
    @classmethod
    def parameter(cls, name: str) -> Parameter:
        for p in cls.parameters:
            if p.name == name:
                return p
        raise KeyError(
            f"{cls.__name__} has no parameter {name!r}; "
            f"known: {', '.join(p.name for p in cls.parameters) or 'none'}"
        )

    def check_parameter(self, name: str, value: Any, *, running: bool = True) -> float:
        """``value`` as the float parameter ``name`` would take; raise if it may not.

        During a run (``running``) only ``tunable`` parameters may change.
        """
        try:
            spec = self.parameter(name)
        except KeyError as exc:
            raise WiringError(exc.args[0]) from None
        if running and not spec.tunable:
            tunable = [p.name for p in self.parameters if p.tunable]
            raise WiringError(
                f"{type(self).__name__}.{name} is fixed during a run; "
                f"tunable parameters: {', '.join(tunable) or 'none'}"
            )
        return _checked_value(self, spec, value)

    def set_parameter(self, name: str, value: float | np.ndarray, *, running: bool = True) -> None:
        """Change a parameter after :meth:`check_parameter` accepts it (an array: one value per
        variant of an ensemble, each checked)."""
        setattr(self.p, name, self.check_parameter(name, value, running=running))

    # -- ports ----------------------------------------------------------------------
    @classmethod
    def input_port(cls, name: str) -> Port:
        return _find_port(cls, cls.inputs, name, "input")

    @classmethod
    def output_port(cls, name: str) -> Port:
        return _find_port(cls, cls.outputs, name, "output")

    # -- checkpointing ----------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """A deep copy of the dynamic state and the current parameter values."""
        state = {name: copy.deepcopy(getattr(self, name)) for name in self.state_names}
        state["__parameters__"] = dict(vars(self.p))
        return state

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`get_state` returned."""
        for name in self.state_names:
            setattr(self, name, copy.deepcopy(state[name]))
        self.p = SimpleNamespace(**state["__parameters__"])


def _checked_value(component: Component, spec: Parameter, value: Any) -> Any:
    if isinstance(value, np.ndarray):  # one value per variant (an ensemble)
        return _checked_array(component, spec, value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise WiringError(
            f"{type(component).__name__}.{spec.name}: expected a number in "
            f"{spec.bounds_text()}, found {value!r}"
        ) from None
    if not spec.contains(number):
        raise WiringError(
            f"{type(component).__name__}.{spec.name}: expected a finite number in "
            f"{spec.bounds_text()}, found {value!r}"
        )
    return number


def _checked_array(component: Component, spec: Parameter, value: np.ndarray) -> np.ndarray:
    """A parameter's values, one per variant: numbers, finite and within its bounds."""
    try:
        number = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise WiringError(
            f"{type(component).__name__}.{spec.name}: expected numbers in "
            f"{spec.bounds_text()}, found {value!r}"
        ) from None
    bad = np.flatnonzero(~(np.isfinite(number) & (number >= spec.lower) & (number <= spec.upper)))
    if bad.size:
        raise WiringError(
            f"{type(component).__name__}.{spec.name}: expected a finite number in "
            f"{spec.bounds_text()}, found {float(number[bad[0]])!r} in variant {bad[0]}"
            + (f" (and {bad.size - 1} more variant(s))" if bad.size > 1 else "")
        )
    return number


def _find_port(cls: type, ports: tuple[Port, ...], name: str, kind: str) -> Port:
    for port in ports:
        if port.name == name:
            return port
    raise WiringError(
        f"{cls.__name__} has no {kind} port {name!r}; "
        f"known: {', '.join(p.name for p in ports) or 'none'}"
    )
