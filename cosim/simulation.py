"""The master algorithm: SimPy processes stepping components on a fixed grid.

Time in the SimPy environment is an integer count of base steps (no drift);
``t = start + k * step`` seconds at the edges (:mod:`cosim.time_grid` converts, exact to
the decimals of start and step). At each step ``k`` the
processes run in an order fixed by explicit priorities, never by creation
order:

1. scheduled events for time ``t_k`` (in the order they were scheduled);
2. input sources whose profile changes at ``t_k`` (constant inputs never wake);
3. components, in the Gauss–Seidel order of :class:`~cosim.graph.Graph`, each
   stepping ``[t_k, t_k + every*step]`` with its inputs held (a component with
   ``every = m`` steps at ``k = 0, m, 2m, ...``; its outputs hold in between);
4. the commit: delayed (feedback) connections take their new values, outputs
   are checked to be finite and a row for ``t_{k+1}`` is recorded.

``advance_to(t)`` stops before anything at ``t`` happens, so after it the
outputs are those at ``t`` and inputs may be set for the next step: this is
what an FMU master or a control loop drives. This module is the only one that
imports SimPy.

Sensor faults (a reading that drifts, sticks or is noisy while the physics goes on with
the true value) are :mod:`cosim.sensor_faults`'s: this module hands it the values and
wiring they share, and calls it after stepping a component that has a sensor with a
true value; its ``wiring`` count tells the step loop when to make its plan again.
"""
from __future__ import annotations

import math
import sys
from math import isfinite
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import simpy
from simpy.core import StopSimulation
from simpy.events import URGENT, EventPriority
from simpy.events import Event as _SimpyEvent

from .component import Component
from .errors import SimulationError, WiringError
from .events import Event, SensorFault, SetParameter
from .graph import Connection, Graph, match_signals, split_signal
from .profiles import CONTINUOUS, Constant, Profile
from .recorder import CHUNK_BYTES, Recorder, RowSink
from .sensor_faults import SensorFaults
from .time_grid import TimeGrid
from .values import bad_text, checked_array, finite, getter, picker, writer

__all__ = ["Simulation"]

_PRIO_EVENT = EventPriority(1)
_PRIO_SOURCE = EventPriority(2)
_PRIO_COMPONENT = 10  # + Gauss–Seidel rank


class _Tick(_SimpyEvent):
    """A timeout with an explicit priority (SimPy's Timeout always uses NORMAL)."""

    def __init__(self, env: simpy.Environment, delay: int, priority: EventPriority) -> None:
        self.env = env
        self.callbacks = []
        self._value = None
        self._ok = True
        env.schedule(self, priority, delay)


@dataclass
class _Member:
    """Bookkeeping of one component inside a simulation."""

    name: str
    component: Component
    every: int
    priority: EventPriority
    gather: list[tuple[str, int]] = field(default_factory=list)
    scatter: list[tuple[str, int]] = field(default_factory=list)
    #: sensor faults (:class:`~cosim.sensor_faults.SensorFaults`): reading slot -> its
    #: faults, and (reading, true value) slots of its outputs that have a true value
    faults: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    truth: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True)
class _Scheduled:
    k: int
    seq: int
    event: Event


class Simulation:
    """A co-simulation of named components wired by connections.

    Parameters
    ----------
    components: name -> component; the names prefix every signal (``name.port``).
    connections: output -> input links; see :class:`~cosim.graph.Connection`.
    step: base communication step in seconds.
    start: time of the first step in seconds.
    rates: component name -> ``every`` (step every that many base steps).
    seed: seeds the generator behind random effects (sensor noise); same seed,
        same results, bit for bit.
    """

    def __init__(
        self,
        components: Mapping[str, Component],
        connections: Sequence[Connection] = (),
        *,
        step: float,
        start: float = 0.0,
        rates: Mapping[str, int] | None = None,
        seed: int = 0,
    ) -> None:
        if not (math.isfinite(step) and step > 0):
            raise SimulationError(f"step must be a positive number of seconds, found {step!r}")
        if not math.isfinite(start):
            raise SimulationError(f"start must be a finite number of seconds, found {start!r}")
        graph = Graph(components, list(connections))
        self.components: dict[str, Component] = graph.components
        self.connections = graph.connections
        self.order = graph.order
        self.step_size = float(step)
        self.start = float(start)
        self._grid = TimeGrid(self.start, self.step_size)
        #: step index -> seconds, exact to the decimals of start and step (no 59.980000000000004)
        self._at = self._grid.at
        rates = self._checked_rates(rates)

        # one flat list of values, addressed by slot: outputs and unconnected inputs
        # first (the signals), then the held values of delayed connections
        self._slots: dict[str, int] = {}
        self._units: list[str] = []
        self._values: list[Any] = []
        self._ports: dict[str, Any] = {}
        self._fed = graph.fed_inputs
        self.external_inputs: list[str] = self._add_signal_slots()
        self._n_signals = len(self._values)
        self._held: dict[Connection, int] = self._add_held_slots()
        self._delayed: list[tuple[int, int]] = [
            (self._slots[conn.source], slot) for conn, slot in self._held.items()
        ]
        self._members: dict[str, _Member] = {
            cname: self._make_member(cname, rank, rates.get(cname, 1))
            for rank, cname in enumerate(self.order)
        }

        self._profiles: dict[str, Profile] = {
            name: Constant(self._ports[name].start) for name in self.external_inputs
        }
        self._generation: dict[str, int] = dict.fromkeys(self.external_inputs, 0)
        self._schedule: list[_Scheduled] = []
        self._applied: set[int] = set()
        self.event_log: list[tuple[float, str]] = []
        #: the sensor faults and the true values behind their readings; its ``wiring``
        #: counts rewirings to a true value, so that the step process makes its plan again
        self._sensor_faults = SensorFaults(
            self._values, self._slots, self._ports, self.external_inputs, self._members,
            self.components, self.connections, self._held, self._delayed,
        )
        self._record_signals: list[str] | None = None
        self._record_every = 1
        self._recorder: Recorder | None = None
        self._sink: RowSink | None = None
        self._chunk_bytes = CHUNK_BYTES
        #: makes the recorder at the start (:meth:`record_with`)
        self._recorder_factory: Callable[..., Any] = Recorder
        # a stop request (request_stop) and the SimPy event that carries it out
        self._stop_requested = False
        self._halt: _Tick | None = None
        #: True when the last advance ended early, at a stop request
        self.stopped = False
        self._env: simpy.Environment | None = None
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    # -- building ---------------------------------------------------------------------
    def _checked_rates(self, rates: Mapping[str, int] | None) -> dict[str, int]:
        """``rates`` as a dict, after checking every name and value."""
        checked = dict(rates or {})
        unknown = sorted(set(checked) - set(self.components))
        if unknown:
            raise WiringError(f"rates given for unknown component(s): {', '.join(unknown)}")
        for name, every in checked.items():
            if not (isinstance(every, int) and every >= 1):
                raise WiringError(f"rate of {name} must be a whole number >= 1, found {every!r}")
        return checked

    def _add_signal_slots(self) -> list[str]:
        """A slot for every output, then for every unconnected input; returns the latter."""
        for cname, comp in self.components.items():
            for port in comp.outputs:
                self._add_slot(f"{cname}.{port.name}", port)
        external: list[str] = []
        for cname, comp in self.components.items():
            for port in comp.inputs:
                name = f"{cname}.{port.name}"
                if name not in self._fed:
                    self._add_slot(name, port)
                    external.append(name)
        return external

    def _add_held_slots(self) -> dict[Connection, int]:
        """A slot per delayed connection, holding its source's value from the previous step."""
        held: dict[Connection, int] = {}
        for conn in self.connections:
            if conn.delayed:
                held[conn] = len(self._values)
                self._values.append(self._values[self._slots[conn.source]])
        return held

    def _make_member(self, cname: str, rank: int, every: int) -> _Member:
        """The bookkeeping of component ``cname``: where it reads and writes its ports."""
        comp = self.components[cname]
        member = _Member(cname, comp, every, EventPriority(_PRIO_COMPONENT + rank))
        for port in comp.inputs:
            name = f"{cname}.{port.name}"
            feed = self._fed.get(name)
            if feed is None:
                member.gather.append((port.name, self._slots[name]))
            elif feed.delayed:
                member.gather.append((port.name, self._held[feed]))
            else:
                member.gather.append((port.name, self._slots[feed.source]))
        member.scatter = [(p.name, self._slots[f"{cname}.{p.name}"]) for p in comp.outputs]
        return member

    def _add_slot(self, name: str, port: Any) -> None:
        self._slots[name] = len(self._values)
        self._values.append(float(port.start))
        self._units.append(port.unit)
        self._ports[name] = port

    @property
    def signals(self) -> list[str]:
        """Names of all signals: component outputs, then unconnected inputs."""
        return list(self._slots)

    def unit(self, signal: str) -> str:
        return self.port(signal).unit

    def port(self, signal: str) -> Any:
        """The declared :class:`Port` of a signal (a connected input answers with its source's)."""
        if signal in self._ports:
            return self._ports[signal]
        if signal in self._fed:
            return self._ports[self._fed[signal].source]
        raise SimulationError(
            f"unknown signal {signal!r}; known: {', '.join(self._slots)}"
        )

    def record(self, signals: Iterable[str] | None = None, *, every: int = 1) -> None:
        """Choose what to record (names or glob patterns; ``None`` for all) and how often."""
        self._require_not_started("record()")
        if not (isinstance(every, int) and every >= 1):
            raise SimulationError(f"record every must be a whole number >= 1, found {every!r}")
        if signals is not None:
            known = list(self._slots)
            self._record_signals = match_signals(known, signals, lambda pattern: SimulationError(
                f"record: {pattern!r} matches no signal; known: {', '.join(known)}"))
        self._record_every = every

    def stream(self, sink: RowSink, *, chunk_bytes: int = CHUNK_BYTES) -> None:
        """Hand the recorded rows to ``sink`` in chunks of ``chunk_bytes`` instead of keeping
        them: memory then stays one chunk whatever the duration (see :class:`Recorder`)."""
        self._require_not_started("stream()")
        self._sink = sink
        self._chunk_bytes = chunk_bytes

    def record_with(self, factory: Callable[..., Any]) -> None:
        """Record with ``factory(columns, units, every=, sink=, chunk_bytes=)`` instead of
        :class:`Recorder`: an object with the recorder's ``append``, ``truncate`` and ``frame``
        (an ensemble's recorder keeps one value per variant)."""
        self._require_not_started("record_with()")
        self._recorder_factory = factory

    def schedule(self, event: Event) -> None:
        """Add an event; its time must lie on the step grid and not in the past."""
        k = self._grid.index(event.at, "event time")
        if self.started and k < self._k:
            raise SimulationError(f"event at {event.at:g} s is in the past (now {self.time:g} s)")
        if isinstance(event, SensorFault):
            self._sensor_faults.require_measured(event.target)
        if isinstance(event, SetParameter):
            self._tunable(event.target, event.value, running=True)
        item = _Scheduled(k, len(self._schedule), event)
        self._schedule.append(item)
        if self.started:
            self._arm(item)

    # -- running ----------------------------------------------------------------------
    @property
    def time(self) -> float:
        """The time up to which the simulation has advanced (seconds)."""
        now = self._k if self.started else 0
        return self._at(now)

    @property
    def started(self) -> bool:
        """True once :meth:`initialize` (or the first advance) has run."""
        return self._env is not None

    @property
    def env(self) -> simpy.Environment:
        """The SimPy environment of the run, which exists only once the simulation started."""
        if self._env is None:
            raise SimulationError(
                "the simulation has not been initialised: call initialize(), advance_to() or run()"
            )
        return self._env

    @property
    def recorder(self) -> Recorder:
        """The recorder of the run, which exists only once the simulation started."""
        if self._recorder is None:
            raise SimulationError("nothing recorded yet: call initialize(), advance_to() or run()")
        return self._recorder

    @property
    def _k(self) -> int:
        """The current step index: SimPy's clock here counts whole base steps."""
        return int(self.env.now)

    def initialize(self) -> None:
        """Reset components, apply events at the start time, compute and record outputs at t0."""
        self._require_not_started("initialize()")
        names = self._record_signals if self._record_signals is not None else self.signals
        for item in self._schedule:
            if isinstance(item.event, SensorFault):
                self._sensor_faults.true_slot(item.event.target)
        columns = list(names)
        indices = [self._slots[n] for n in names]
        for column, tslot in self._sensor_faults.true_columns(names):
            columns.append(column)
            indices.append(tslot)
        self._record_indices = indices
        units = [self._units[self._slots[c.removesuffix(":true")]] for c in columns]
        recorder = self._recorder = self._recorder_factory(columns, units, every=self._record_every,
                                             sink=self._sink, chunk_bytes=self._chunk_bytes)
        # started from here on: the events applied below at t0 see a running simulation
        self._env = simpy.Environment()
        for comp in self.components.values():
            comp.initialize(self.start)
        for name in self.external_inputs:
            self._values[self._slots[name]] = self._profiles[name].value(self.start)
        for item in sorted(self._schedule, key=lambda s: (s.k, s.seq)):
            if item.k == 0:
                self._apply(item)
        for cname in self.order:
            member = self._members[cname]
            self._step_member(member, self.start, 0.0)
        self._commit_values(self.start)
        recorder.append(self.start, [self._values[i] for i in self._record_indices])
        self._start_processes()

    def _start_processes(self, *, resample: bool = False) -> None:
        env = self.env
        env.process(self._step_process())
        for name in self.external_inputs:
            self._start_source(name, resample=resample)
        for item in self._schedule:
            if item.seq not in self._applied:
                self._arm(item)

    def advance_to(self, t: float, *, progress: bool | None = False) -> None:
        """Run until time ``t`` (on the step grid); outputs are then those at ``t``.

        A :meth:`request_stop` ends it early, at the end of the step in progress:
        ``stopped`` is then True and ``time`` says where it stopped. ``progress``: show
        a progress bar (None: only when stderr is a terminal).
        """
        if not self.started:
            self.initialize()
        k = self._grid.index(t, "advance_to time")
        if k < self._k:
            raise SimulationError(
                f"cannot go back from {self.time:g} s to {t:g} s; use get_state()/set_state()"
            )
        self._advance(k, progress)

    def _advance(self, k: int, progress: bool | None) -> None:
        """:meth:`advance_to` step ``k`` (not before the current one)."""
        self.stopped = False
        now = int(self.env.now)  # read once: a host stepping one step at a time calls this often
        recorder = self.recorder
        reserve = getattr(recorder, "reserve", None)
        if reserve is not None:  # the rows to come (and a stop request's), room made once
            reserve(len(recorder) + (k - now) // self._record_every + 2)
        if progress is None:
            progress = sys.stderr.isatty()
        if progress and k - now >= 2:
            self._run_with_progress(k)
        elif k > now:
            self._run_env(k)

    def request_stop(self) -> None:
        """Ask the advance in progress (or the next one) to stop at the end of its current step.

        It only sets a flag, so a signal handler may call it. The step under way
        finishes and is committed, its row is recorded (even between decimated
        rows, so the recording ends where the run stopped), and ``advance_to`` and
        ``run`` return with ``stopped`` True. A request during the last step of an
        advance lets that advance complete.
        """
        self._stop_requested = True

    def _run_env(self, k: int) -> bool:
        """Advance SimPy's clock to step ``k``; False when a stop request ended it sooner."""
        env = self.env
        # our own "until" event (URGENT at k, as env.run(until=k) would make), so that a
        # halt before it can take back its stop: a stale one would end a later run at k
        until = _Tick(env, k - int(env.now), URGENT)
        env.run(until=until)
        if int(env.now) < k:
            if until.callbacks is not None:
                until.callbacks.clear()
            return False
        # complete: a request made during the last step has nothing left to stop
        self._stop_requested = False
        self._halt = None
        return True

    def _halt_after_commit(self, t1: float, recorded: bool) -> None:
        """Carry out a stop request at the end of the step just committed (outputs at ``t1``)."""
        if not recorded:
            self.recorder.append(t1, [self._values[i] for i in self._record_indices])
        # before anything of the next step happens, as env.run(until=) would stop there
        halt = self._halt = _Tick(self.env, 1, URGENT)
        halt.callbacks.append(self._on_halt)

    def _on_halt(self, event: Any) -> None:
        if event is not self._halt or not self._stop_requested:
            return  # stale: its run completed, or the state was restored since
        self._stop_requested = False
        self._halt = None
        self.stopped = True
        raise StopSimulation(None)

    def step(self) -> None:
        """Advance by one base step: :meth:`advance_to` the next step, counted rather than
        computed back from a time (an FMU master or a Gymnasium environment calls it every
        step)."""
        if self._env is None:
            self.initialize()
        self._advance(int(self.env.now) + 1, False)

    def run(self, until: float, *, progress: bool | None = None) -> Any:
        """Advance to ``until`` and return the recorded results as a DataFrame.

        ``progress``: show a progress bar; by default only when stderr is a terminal.
        """
        if not self.started:
            self.initialize()
        self._grid.index(until, "end time")
        self.advance_to(until, progress=progress)
        return self.results()

    def _run_with_progress(self, k_end: int) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        env = self.env
        k0 = self._k
        chunk = max(1, (k_end - k0) // 200)
        columns = (
            TextColumn("simulating"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} s simulated"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=True) as bar:
            task = bar.add_task("run", total=(k_end - k0) * self.step_size)
            while env.now < k_end:
                if not self._run_env(min(k_end, int(env.now) + chunk)):
                    break
                bar.update(task, completed=(env.now - k0) * self.step_size)

    def results(self) -> Any:
        """Recorded rows as a pandas DataFrame (units in ``attrs['units']``)."""
        return self.recorder.frame(self.event_log)

    # -- processes --------------------------------------------------------------------
    def _step_member(self, member: _Member, t: float, dt: float) -> None:
        values = self._values
        out = member.component.step(t, dt, {n: values[i] for n, i in member.gather})
        try:
            for n, i in member.scatter:
                values[i] = out[n]
        except (KeyError, TypeError):
            raise self._bad_outputs(member, out, t) from None
        # keep its sensors' true values, corrupt their readings (nothing if it has none)
        self._sensor_faults.read(member, t + dt, self.rng)

    @staticmethod
    def _bad_outputs(member: _Member, out: Any, t: float) -> SimulationError:
        expected = [n for n, _ in member.scatter]
        if isinstance(out, Mapping):
            got = [n for n in expected if n in out]
            missing = [n for n in expected if n not in out]
            return SimulationError(
                f"{member.name}.step() at t={t:g} s returned outputs {', '.join(got) or 'none'} "
                f"but not {', '.join(missing)}; expected a dict with outputs {', '.join(expected)}"
            )
        shown = repr(out)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return SimulationError(
            f"{member.name}.step() at t={t:g} s returned {shown}; "
            f"expected a dict with outputs {', '.join(expected)}"
        )

    @staticmethod
    def _bad_values(member: _Member, out: Any, t: float) -> SimulationError:
        expected = [n for n, _ in member.scatter]
        shown = repr(out)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return SimulationError(
            f"{member.name}.step_values() at t={t:g} s returned {shown}; expected a sequence of "
            f"{len(expected)} values, the outputs {', '.join(expected)} in this order"
        )

    def _step_process(self):
        """Every base step: the components due, in Gauss–Seidel order, then the commit.

        One SimPy process per step, where there was one per component and one for the
        commit, each at its own priority: those priorities were consecutive and nothing else
        is ever scheduled between them (events and input changes come before, a stop
        request's halt at the next step), so one process at the first of them runs the same
        steps in the same order with one SimPy event a step (the plant's four components
        and the commit took five).

        Written out inline, not split into calls, because this loop is the engine's whole
        per-step cost: a component offering ``step_values`` gets its inputs as one tuple
        (an ``itemgetter`` over the slots) and its outputs go in by one slice; the others
        get and return dicts. The commit's finiteness check sums the signals of the row it
        records. The plan (slots, who takes which path) is made again whenever the wiring
        changes during the run (a sensor fault rewires consumers to its true value).
        """
        env, values, at, every = self.env, self._values, self._at, self._record_every
        append, pick = self.recorder.append, picker(self._record_indices)
        n_signals = self._n_signals
        # every signal recorded, in slot order (the default): the committed row is the slice
        # the finiteness check sums, taken once for both
        whole_row = self._record_indices == list(range(n_signals))
        check, prio = self._check_finite, EventPriority(_PRIO_COMPONENT)
        faults = self._sensor_faults  # its wiring counts rewirings to a true value
        wiring, plan, delayed = -1, [], []  # the plan is made on the first step
        # even the first step waits for its priority: a process starts URGENT, which would
        # put it before the events and input changes due at the same time
        yield _Tick(env, 0, prio)
        k = int(env.now)
        t = at(k)
        while True:
            if wiring != faults.wiring:
                wiring, plan, delayed = faults.wiring, self._step_plan(), self._delayed
            for member, m_every, dt, fast, args, first, end, step, gather, put in plan:
                if m_every != 1 and k % m_every:
                    continue  # a component with every = m steps at k = 0, m, 2m, ...
                if fast is not None:
                    out = fast(t, dt, args(values))
                    try:
                        if len(out) != end - first:  # a slice of another length shifts slots
                            raise ValueError
                        values[first:end] = out
                    except (TypeError, ValueError):
                        raise self._bad_values(member, out, t) from None
                elif member.truth:  # its sensors' true values and faults
                    self._step_member(member, t, dt)
                else:
                    out = step(t, dt, {n: values[i] for n, i in gather})
                    try:
                        put(out)
                    except (KeyError, TypeError):
                        raise self._bad_outputs(member, out, t) from None
            # the commit: outputs at t_{k+1}; delayed connections take their new values
            k += 1
            t1 = at(k)
            for src, dst in delayed:
                values[dst] = values[src]
            row = values[:n_signals]
            try:
                total = sum(row)
            except TypeError:  # not a number: the full check says which
                total = None
            if not (isinstance(total, float) and isfinite(total)):
                check(t1, total)
            recorded = k % every == 0
            if recorded:
                append(t1, row if whole_row else pick(values))
            if self._stop_requested:
                self._halt_after_commit(t1, recorded)
            yield _Tick(env, 1, prio)
            t = t1

    def _step_plan(self) -> list[tuple[Any, ...]]:
        """Per member, in Gauss–Seidel order, what :meth:`_step_process` needs to step it:
        ``(member, every, dt, step_values or None, inputs getter, first and end output
        slot, step, gather, output writer)``. ``step_values`` is taken where the class
        offers it (:meth:`Component.has_step_values`), its outputs lie in consecutive slots
        (as they are laid out) and no sensor of it has a true value to keep (those go
        through :meth:`_step_member`)."""
        values, base = self._values, self.step_size
        plan: list[tuple[Any, ...]] = []
        for m in self._members.values():
            comp = m.component
            slots = [i for _, i in m.scatter]
            first = slots[0] if slots else 0
            consecutive = slots == list(range(first, first + len(slots)))
            # an instance whose step was replaced (a spy, a wrapper) is stepped through it
            fast = (comp.step_values if consecutive and not m.truth and "step" not in vars(comp)
                    and isinstance(comp, Component) and type(comp).has_step_values() else None)
            plan.append((m, m.every, m.every * base, fast, getter([i for _, i in m.gather]),
                         first, first + len(slots), comp.step, m.gather, writer(values, m.scatter)))
        return plan

    def _commit_values(self, t: float) -> None:
        """Delayed connections take their new values; the outputs at ``t`` must be finite."""
        values = self._values
        for src, dst in self._delayed:
            values[dst] = values[src]
        try:
            total = sum(values[: self._n_signals])
        except TypeError:
            total = None
        if not (isinstance(total, float) and isfinite(total)):
            self._check_finite(t, total)

    def _check_finite(self, t: float, total: Any) -> None:
        """Raise, naming them, if signals at ``t`` are not finite; ``total`` is their sum
        (None if it failed), which is enough to pass arrays of variants (an ensemble) that
        add up to finite values. Finite floats whose sum overflowed pass after the look at
        each value."""
        if isinstance(total, np.ndarray) and bool(np.isfinite(total).all()):
            return
        if total is not None and not isinstance(total, np.ndarray):
            try:
                if math.isfinite(total):
                    return
            except TypeError:
                pass
        values = self._values
        bad = [
            bad_text(name, values[i])
            for name, i in self._slots.items()
            if not finite(values[i])
        ]
        if bad:
            raise SimulationError(
                f"non-finite signal(s) at t={t:g} s: "
                + ", ".join(bad)
            )

    def _start_source(self, name: str, *, resample: bool = False, now: float | None = None) -> None:
        """Follow the profile of ``name``; ``resample`` also applies its value now (``now``:
        the present time, when the caller has it)."""
        self._generation[name] += 1
        profile = self._profiles[name]
        if resample or profile.next_change(self.time if now is None else now) != math.inf:
            self.env.process(
                self._source_process(name, profile, self._generation[name], resample)
            )

    def _source_process(self, name: str, profile: Profile, generation: int, resample: bool):
        env, slot, values = self.env, self._slots[name], self._values
        base, t0, at = self.step_size, self.start, self._at
        contains, checked = self._ports[name].contains, self._checked_input
        if resample:  # a restored state: the change due now has not been applied yet
            yield _Tick(env, 0, _PRIO_SOURCE)
            if self._generation[name] != generation:
                return
            values[slot] = checked(name, profile.value(at(env.now)))
        t = at(env.now)
        while True:
            nxt = profile.next_change(t)
            if nxt == math.inf:
                return
            # a continuous change is sampled every step, a discrete one at its grid point
            delay = 1 if nxt == CONTINUOUS else max(1, math.ceil((nxt - t0) / base - 1e-9) - int(env.now))
            yield _Tick(env, delay, _PRIO_SOURCE)
            if self._generation[name] != generation:
                return
            t = at(env.now)
            value = profile.value(t)
            # a float inside the port's bounds is what _checked_input would return; anything
            # else goes through it (arrays, other numbers, and the error naming what was found)
            values[slot] = value if type(value) is float and contains(value) else checked(name, value)

    def _arm(self, item: _Scheduled) -> None:
        tick = _Tick(self.env, item.k - self._k, _PRIO_EVENT)
        tick.callbacks.append(lambda _: self._apply(item))

    def _apply(self, item: _Scheduled) -> None:
        if item.seq in self._applied:
            return
        text = item.event.apply(self)
        self._applied.add(item.seq)
        self.event_log.append((self._at(item.k), text))

    # -- signals from outside ---------------------------------------------------------
    def get(self, signal: str) -> Any:
        """Present value of an output (as its sensor reads it), an unconnected input,
        or a connected input (as its component sees it: delayed, true or read)."""
        slot = self._slots.get(signal)
        return self._values[self._slot_of(signal) if slot is None else slot]

    def _slot_of(self, signal: str) -> int:
        """The slot :meth:`get` reads for ``signal``."""
        if signal in self._slots:
            return self._slots[signal]
        if signal in self._fed:
            cname, pname = split_signal(signal)
            return dict(self._members[cname].gather)[pname]
        raise SimulationError(f"unknown signal {signal!r}; known: {', '.join(self._slots)}")

    def reader(self, signals: Sequence[str], *, true: bool = False) -> Callable[[], tuple[Any, ...]]:
        """What reads ``signals`` in one call, each as :meth:`get` reads it (with ``true``, as
        :meth:`get_true`): for a host reading the same signals every step (a Gymnasium
        environment), where finding each by name every step costs more than reading it.
        Unknown signals raise now; a sensor fault that gives a signal its true value later
        is followed (the slots are looked up again)."""
        def getter_now() -> Callable[[list[Any]], tuple[Any, ...]]:
            slots = [self._slot_of(s) for s in signals]
            if true:  # an output's true value; an input's as get() reads it (get_true does)
                true_slots = self._sensor_faults.true_slots
                slots = [true_slots.get(i, i) if s in self._slots else i
                         for s, i in zip(signals, slots, strict=True)]
            return getter(slots)

        values, faults = self._values, self._sensor_faults  # filled in place, never replaced
        wiring, get = faults.wiring, getter_now()

        def read() -> tuple[Any, ...]:
            nonlocal wiring, get
            if wiring != faults.wiring:
                wiring, get = faults.wiring, getter_now()
            return get(values)
        return read

    def get_true(self, signal: str) -> Any:
        """Present true value of ``signal``: what the plant did, whatever its sensor reads
        (the same as :meth:`get` unless a sensor fault acts on it)."""
        slot = self._slots.get(signal)
        if slot is None:
            return self.get(signal)
        return self._values[self._sensor_faults.true_slots.get(slot, slot)]

    def set(self, signal: str, value: float) -> None:
        """Hold unconnected input ``signal`` at ``value`` from now on."""
        self.drive(signal, Constant(value))

    def profile(self, signal: str) -> Profile:
        """The profile driving unconnected input ``signal`` now (see :meth:`drive`)."""
        if signal not in self._profiles:
            raise SimulationError(
                f"unknown input {signal!r}; settable inputs: {', '.join(self.external_inputs)}"
            )
        return self._profiles[signal]

    def drive(self, signal: str, profile: Profile) -> None:
        """Drive unconnected input ``signal`` by ``profile`` (absolute time) from now on."""
        if signal not in self._profiles:
            if signal in self._fed:
                raise SimulationError(
                    f"{signal} is fed by {self._fed[signal].source}; only unconnected inputs "
                    f"can be set: {', '.join(self.external_inputs)}"
                )
            raise SimulationError(
                f"unknown input {signal!r}; settable inputs: {', '.join(self.external_inputs)}"
            )
        now = self.time
        value = self._checked_input(signal, profile.value(now))
        self._profiles[signal] = profile
        if self.started:
            self._values[self._slots[signal]] = value
            self._start_source(signal, now=now)

    def _checked_input(self, signal: str, value: float) -> float:
        port = self._ports[signal]
        if isinstance(value, np.ndarray):  # one value per variant (an ensemble)
            return checked_array(signal, port, value, self.time)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise SimulationError(f"{signal}: expected a number, found {value!r}") from None
        if not port.contains(number):
            raise SimulationError(
                f"{signal} at t={self.time:g} s: expected a finite value in "
                f"{port.bounds_text()}, found {value!r}"
            )
        return number

    def set_parameter(self, target: str, value: float) -> float:
        """Change tunable parameter ``component.parameter``; returns the old value.

        Before the start any parameter may change; during a run only tunable ones.
        """
        comp, pname = self._tunable(target, value, running=self.started)
        old = getattr(comp.p, pname)
        comp.set_parameter(pname, value, running=self.started)
        return old

    def _tunable(self, target: str, value: float, *, running: bool) -> tuple[Component, str]:
        """The component and parameter name of ``target``, if it may take ``value``."""
        cname, _, pname = target.partition(".")
        comp = self.components.get(cname)
        if comp is None:
            raise SimulationError(
                f"unknown component {cname!r} in {target!r}; known: {', '.join(self.components)}"
            )
        try:
            comp.check_parameter(pname, value, running=running)
        except WiringError as exc:
            raise SimulationError(f"{target}: {exc}") from None
        return comp, pname

    def sensor_fault(
        self, signal: str, mode: str, *, rate: float = 0.0, offset: float = 0.0, std: float = 0.0
    ) -> None:
        """Corrupt the reading of measured output ``signal`` from now on (``clear`` ends it)."""
        self._sensor_faults.fault(signal, mode, self.time, rate=rate, offset=offset, std=std)

    # -- checkpoints ------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """A snapshot to return to with :meth:`set_state` (model-predictive control, rollback)."""
        if not self.started:
            raise SimulationError("get_state(): the simulation has not been initialised")
        import copy

        return {
            "k": self._k,
            "values": list(self._values),
            "components": {n: c.get_state() for n, c in self.components.items()},
            "profiles": dict(self._profiles),
            "faults": self._sensor_faults.get_state(),
            "true_values": self._sensor_faults.true_values(),
            "applied": set(self._applied),
            "events": len(self.event_log),
            "schedule": len(self._schedule),
            "rng": copy.deepcopy(self.rng.bit_generator.state),
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Return to a snapshot taken by :meth:`get_state` of this simulation."""
        if not self.started:
            raise SimulationError("set_state(): the simulation has not been initialised")
        import copy

        # the slots every build of the simulation has, then the true values by signal: a
        # checkpoint from before a sensor fault made a true-value slot, or from a simulation
        # that made them in another order, has its own (the list never shrinks: the slots
        # and the rewiring to them stay)
        base = len(self._values) - len(self._sensor_faults.true_slots)
        self._values[:base] = state["values"][:base]
        self._sensor_faults.restore_true_values(state["true_values"])
        for n, c in self.components.items():
            c.set_state(state["components"][n])
        self._profiles = dict(state["profiles"])
        self._sensor_faults.set_state(state["faults"])
        self._applied = set(state["applied"])
        self.rng.bit_generator.state = copy.deepcopy(state["rng"])
        del self.event_log[state["events"]:]
        del self._schedule[state["schedule"]:]
        self._env = simpy.Environment(initial_time=state["k"])
        self._halt = None
        # the row of the restored time is the snapshot's, also in a simulation that never
        # recorded it (a fresh build restored from another's checkpoint) or recorded another
        k = state["k"]
        recorder = self.recorder
        recorder.truncate(self._at(k - 1) if k > 0 else -math.inf)
        if k % self._record_every == 0:
            recorder.append(self.time, [self._values[i] for i in self._record_indices])
        self._start_processes(resample=True)

    def _require_not_started(self, what: str) -> None:
        if self.started:
            raise SimulationError(f"{what} must be called before the simulation starts")
