"""Connections between components and the order in which they step.

The master algorithm is Gauss–Seidel: components step one after another in a
topological order of the undelayed connections, so a component sees the outputs
its upstream neighbours computed for the same step. A connection marked
``delayed`` (a recycle or feedback) carries the value from the end of the
previous step instead, and is ignored when ordering. An undelayed cycle has no
valid order and is rejected with the cycle spelled out.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
import fnmatch
from typing import Any, Generic, TypeVar
from collections.abc import Callable, Iterable, Mapping, Sequence

from .component import Component
from .errors import WiringError
from .units import UnitError, converter

__all__ = ["Connection", "Graph", "check_connection", "match_signals", "split_signal"]

#: what a graph wires: component instances (a simulation) or classes (checking a scenario),
#: both of which declare their ports as class attributes
C = TypeVar("C", Component, type[Component])


@dataclass(frozen=True)
class Connection:
    """``source`` output ``component.port`` feeds ``target`` input ``component.port``."""

    source: str
    target: str
    delayed: bool = False

    def __str__(self) -> str:
        arrow = " -(delayed)-> " if self.delayed else " -> "
        return f"{self.source}{arrow}{self.target}"


def split_signal(name: str) -> tuple[str, str]:
    """``"reactor.cell_voltage"`` -> ``("reactor", "cell_voltage")``."""
    component, dot, port = name.partition(".")
    if not dot or not component or not port or "." in port:
        raise WiringError(f"signal {name!r} is not of the form 'component.port'")
    return component, port


def match_signals(names: Sequence[str], patterns: Iterable[str],
                  missing: Callable[[str], Exception]) -> list[str]:
    """The ``names`` the glob ``patterns`` match, in the patterns' order and then the names',
    each once; ``missing(pattern)`` is raised for a pattern that matches none (the caller
    words it: a recording, an ensemble's kept signals, a plot)."""
    chosen: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise missing(pattern)
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def check_connection(components: Mapping[str, Any], conn: Connection) -> list[str]:
    """Problems of one connection: unknown component or port, unit mismatch.

    ``components`` maps names to components or component classes (ports are class attributes).
    """
    problems = []
    ends = []
    for signal, direction in (
        (conn.source, "outputs"),
        (conn.target, "inputs"),
    ):
        try:
            comp_name, port_name = split_signal(signal)
        except WiringError as exc:
            problems.append(f"{conn}: {exc}")
            continue
        comp = components.get(comp_name)
        if comp is None:
            problems.append(
                f"{conn}: unknown component {comp_name!r}; "
                f"known: {', '.join(components)}"
            )
            continue
        ports = {p.name: p for p in getattr(comp, direction)}
        if port_name not in ports:
            problems.append(
                f"{conn}: {comp_name} has no {direction[:-1]} port {port_name!r}; "
                f"its {direction}: {', '.join(ports) or 'none'}"
            )
            continue
        ends.append(ports[port_name])
    if len(ends) == 2 and ends[0].unit != ends[1].unit:
        problems.append(
            f"{conn}: unit mismatch, {conn.source} is in {ends[0].unit!r} "
            f"but {conn.target} expects {ends[1].unit!r}{_conversion_hint(*ends)}"
        )
    return problems


def _conversion_hint(source: Any, target: Any) -> str:
    """Why compatible units are still refused: a connection passes values as they are."""
    try:
        converter(source.unit, target.unit)
    except UnitError:
        return ""
    return (" (the units are compatible, but a connection passes values unconverted: "
            "declare both ports in the same unit)")


class Graph(Generic[C]):
    """Validated wiring of named components (or component classes); computes the
    Gauss–Seidel order.

    Every problem (unknown component or port, unit mismatch, an input fed twice,
    an undelayed cycle) is gathered and raised as one :class:`WiringError`.
    """

    def __init__(self, components: Mapping[str, C], connections: list[Connection]) -> None:
        self.components: dict[str, C] = dict(components)
        self.connections = list(connections)
        problems: list[str] = []
        fed: dict[str, Connection] = {}
        valid: list[Connection] = []
        for conn in self.connections:
            found = self._check(conn)
            problems.extend(found)
            if not found:
                valid.append(conn)
            if conn.target in fed:
                problems.append(
                    f"input {conn.target} is fed twice: by {fed[conn.target].source} "
                    f"and by {conn.source}"
                )
            fed[conn.target] = conn
        # order on the connections that make sense, so a cycle is reported with the rest
        order, cycle = self._topological_order(valid)
        if cycle:
            problems.append(cycle)
        if problems:
            raise WiringError("wiring rejected:\n" + "\n".join(f"  - {p}" for p in problems))
        self.fed_inputs = fed
        self.order = order

    def _check(self, conn: Connection) -> list[str]:
        return check_connection(self.components, conn)

    def _topological_order(self, connections: list[Connection]) -> tuple[list[str], str]:
        """Kahn's algorithm; ties keep the order in which components were given.

        Returns the order and, if an undelayed cycle prevents one, its description.
        """
        names = list(self.components)
        downstream: dict[str, list[str]] = {n: [] for n in names}
        indegree = dict.fromkeys(names, 0)
        for conn in connections:
            if conn.delayed:
                continue
            src, dst = split_signal(conn.source)[0], split_signal(conn.target)[0]
            if dst not in downstream[src]:
                downstream[src].append(dst)
                indegree[dst] += 1
        order: list[str] = []
        ready = [n for n in names if indegree[n] == 0]
        while ready:
            node = ready.pop(0)
            order.append(node)
            for nxt in downstream[node]:
                indegree[nxt] -= 1
                if indegree[nxt] == 0:
                    ready.append(nxt)
            ready.sort(key=names.index)
        if len(order) < len(names):
            stuck = set(names) - set(order)
            return order, self._describe_cycle(connections, downstream, stuck)
        return order, ""

    def _describe_cycle(
        self, connections: list[Connection], downstream: dict[str, list[str]], stuck: set[str]
    ) -> str:
        # Every component Kahn's algorithm could not order has an unordered upstream
        # neighbour (a component merely downstream of a cycle may have no unordered
        # downstream one), so walking upstream always closes a cycle.
        names = list(self.components)
        upstream = {n: [m for m in names if n in downstream[m] and m in stuck] for n in stuck}
        path = [min(stuck, key=names.index)]
        while True:
            prev = upstream[path[-1]][0]
            if prev in path:
                cycle = path[path.index(prev):] + [prev]
                break
            path.append(prev)
        cycle = cycle[::-1][:-1]
        first = cycle.index(min(cycle, key=names.index))
        cycle = cycle[first:] + cycle[:first + 1]  # start at the first declared component
        links = []
        for a, b in pairwise(cycle):
            conn = next(
                c for c in connections
                if not c.delayed
                and split_signal(c.source)[0] == a
                and split_signal(c.target)[0] == b
            )
            links.append(str(conn))
        return (
            "undelayed cycle " + " -> ".join(cycle) + " (" + "; ".join(links) + "); "
            "mark one of these connections delayed to break it (in a scenario file a third "
            "list element: [from, to, delayed]; in Python Connection(from, to, delayed=True))"
        )
