"""Sensor faults: what a faulty sensor reads, kept apart from the true value behind it.

A fault of the sensor behind a measured output (:class:`~cosim.events.SensorFault`:
``drift``, ``bias``, ``freeze``, ``noise``; ``clear`` ends them) changes what is seen,
never the physics. So an output that may be faulted gets a second slot in the
simulation's flat list of values, for its true value: the output's own slot carries the
reading (recorded as ``signal``, seen by inputs declared ``measured``: a supply's voltage
sense, a controller), and every other consumer is rewired to the true value (recorded as
``signal:true``). After each step of the component owning such an output, the true value
is kept and the reading corrupted by the faults acting on it.

:class:`SensorFaults` does this for one :class:`~cosim.simulation.Simulation`, which
keeps its public face (``sensor_fault``, ``get_true``) and hands over the structures the
two share. What is changed here (the values, a consumer's input slots, the delayed pairs)
is changed in place, never replaced, so the engine's references stay good. ``wiring``
counts the rewirings: when it changes, the engine makes its step plan again and a host's
reader looks its slots up again.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .errors import SimulationError
from .graph import Connection, split_signal

if TYPE_CHECKING:
    import numpy as np

    from .component import Component

__all__ = ["Member", "SensorFaults"]


class Member(Protocol):
    """What sensor faults use of the engine's bookkeeping of one component."""

    #: (input port, slot it reads), rewired here to a true value
    gather: list[tuple[str, int]]
    #: reading slot -> the faults acting on it, in the order they came
    faults: dict[int, list[dict[str, Any]]]
    #: (reading slot, true-value slot) of each of its outputs that has a true value
    truth: list[tuple[int, int]]


class SensorFaults:
    """The sensor faults of one simulation and the true values behind their readings.

    Parameters
    ----------
    values: the simulation's flat list of values, addressed by slot; a true-value slot
        is appended to it for each output that gets one.
    slots: signal name -> slot of its value (for a faulted output, the reading).
    ports: signal name -> declared port, for outputs and unconnected inputs.
    external_inputs: the unconnected inputs, which have no sensor to fault.
    members: component name -> the engine's bookkeeping of it (:class:`Member`).
    components: component name -> component, which says which inputs are ``measured``.
    connections: all connections; ``held``: the slot holding each delayed one's value.
    delayed: (source slot, held slot) per delayed connection, copied at each commit.
    """

    def __init__(
        self,
        values: list[Any],
        slots: Mapping[str, int],
        ports: Mapping[str, Any],
        external_inputs: Sequence[str],
        members: Mapping[str, Member],
        components: Mapping[str, Component],
        connections: Sequence[Connection],
        held: Mapping[Connection, int],
        delayed: list[tuple[int, int]],
    ) -> None:
        self._values = values
        self._slots = slots
        self._ports = ports
        self._external = external_inputs
        self._members = members
        self._components = components
        self._connections = connections
        self._held = held
        self._delayed = delayed
        #: reading slot -> true-value slot, in the order they were made
        self.true_slots: dict[int, int] = {}
        #: counts changes of who reads which slot (a consumer rewired to a true value)
        self.wiring = 0

    def require_measured(self, signal: str) -> int:
        """The slot of ``signal``, which must be a measured component output."""
        port = self._ports.get(signal)
        if port is None or signal in self._external:
            raise SimulationError(f"sensor fault: {signal!r} is not a component output")
        if not port.measured:
            measured = [s for s, p in self._ports.items() if p.measured and s not in self._external]
            raise SimulationError(
                f"sensor fault: {signal} is not a measured signal; measured: {', '.join(measured)}"
            )
        return self._slots[signal]

    def fault(self, signal: str, mode: str, now: float, *, rate: float = 0.0,
              offset: float = 0.0, std: float = 0.0) -> None:
        """Corrupt the reading of measured output ``signal`` from ``now`` on (``clear`` ends it)."""
        slot = self.require_measured(signal)
        member = self._members[signal.split(".", maxsplit=1)[0]]
        true_slot = self.true_slot(signal)
        faults = member.faults.setdefault(slot, [])
        if mode == "clear":
            member.faults.pop(slot, None)
            self._values[slot] = self._values[true_slot]
            return
        faults.append({"mode": mode, "since": now, "rate": rate, "offset": offset,
                       "std": std, "frozen": self._values[slot]})

    def true_slot(self, signal: str) -> int:
        """Give a faultable signal a slot for its true value and wire physics to it.

        The signal's own slot carries the sensor reading (recorded as ``signal``,
        seen by inputs declared ``measured``: a supply's voltage sense, a
        controller); every other consumer is rewired to the true value, because
        a faulty sensor changes what is seen, never the physics.
        """
        slot = self._slots[signal]
        if slot in self.true_slots:
            return self.true_slots[slot]
        values = self._values
        tslot = self.true_slots[slot] = len(values)
        self.wiring += 1
        values.append(values[slot])
        self._members[split_signal(signal)[0]].truth.append((slot, tslot))
        for conn in self._connections:
            if self._slots[conn.source] != slot:
                continue
            cname, pname = split_signal(conn.target)
            if self._components[cname].input_port(pname).measured:
                continue
            if conn.delayed:
                hslot = self._held[conn]
                self._delayed[:] = [(tslot if d == hslot else s, d) for s, d in self._delayed]
            else:
                gather = self._members[cname].gather
                gather[:] = [(n, tslot if n == pname else i) for n, i in gather]
        return tslot

    def true_columns(self, names: Sequence[str]) -> list[tuple[str, int]]:
        """``(name:true, true-value slot)`` of each of ``names`` that has a true value, in
        the order the true values were made: the recorder's columns beside the readings."""
        true_names = {v: k for k, v in self._slots.items()}
        return [(true_names[slot] + ":true", tslot) for slot, tslot in self.true_slots.items()
                if true_names[slot] in names]

    def read(self, member: Member, t_end: float, rng: np.random.Generator) -> None:
        """After ``member`` stepped to ``t_end``: keep its outputs' true values, then corrupt
        their readings by the faults acting on them (noise drawn from ``rng``)."""
        values = self._values
        for slot, tslot in member.truth:
            values[tslot] = values[slot]
        for slot, faults in member.faults.items():
            reading = values[slot]
            for f in faults:
                if f["mode"] == "freeze":
                    reading = f["frozen"]
                elif f["mode"] == "drift":
                    reading = reading + f["rate"] * (t_end - f["since"])
                elif f["mode"] == "noise":
                    reading = reading + rng.normal(0.0, f["std"])
                else:
                    reading = reading + f["offset"]
            values[slot] = reading

    def true_values(self) -> dict[str, Any]:
        """Signal -> its true value, for each signal with a true-value slot (a checkpoint's)."""
        names = {v: k for k, v in self._slots.items()}
        return {names[slot]: self._values[tslot] for slot, tslot in self.true_slots.items()}

    def restore_true_values(self, true_values: Mapping[str, Any]) -> None:
        """After a checkpoint's readings are back: its true values into their slots, each made
        (and physics rewired to it) where this simulation has none yet (a fresh build given
        another's checkpoint); a true slot made after the checkpoint gets the reading, which
        was the true value then (no fault acted on it)."""
        for signal, value in true_values.items():
            self._values[self.true_slot(signal)] = value
        names = {v: k for k, v in self._slots.items()}
        for slot, tslot in self.true_slots.items():
            if names[slot] not in true_values:
                self._values[tslot] = self._values[slot]

    def get_state(self) -> dict[str, Any]:
        """The faults of every component, for a checkpoint (component name -> its faults)."""
        return {n: copy.deepcopy(m.faults) for n, m in self._members.items()}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Return to the faults of a checkpoint taken by :meth:`get_state`."""
        for n, m in self._members.items():
            m.faults = copy.deepcopy(state[n])
