"""Wiring: every bad connection is rejected before anything runs, with a useful message.

Diagrams use ``->`` for a plain connection and ``-(delayed)->`` for a delayed one.
"""
from __future__ import annotations

import pytest

from cosim import Component, Connection, Graph, Port, Simulation, WiringError


class VoltSource(Component):
    outputs = (Port("v", "V", description="a voltage"), Port("i", "A", description="a current"))


class AmpSink(Component):
    inputs = (Port("i", "A", description="a current"), Port("j", "A", description="another"))
    outputs = (Port("i_out", "A", description="the current passed on"),)


def test_unit_mismatch_names_both_ports_and_units():
    """`src.v (V) -> snk.i (A)` is rejected naming both ports and both units."""
    with pytest.raises(WiringError) as err:
        Graph({"src": VoltSource(), "snk": AmpSink()}, [Connection("src.v", "snk.i")])
    text = str(err.value)
    assert "src.v" in text and "snk.i" in text
    assert "'V'" in text and "'A'" in text and "unit mismatch" in text


def test_matching_units_connect():
    """`src.i (A) -> snk.i (A)` is accepted and fed."""
    graph = Graph({"src": VoltSource(), "snk": AmpSink()}, [Connection("src.i", "snk.i")])
    assert set(graph.fed_inputs) == {"snk.i"}
    assert graph.order == ["src", "snk"]


@pytest.mark.parametrize(
    "connection, expected",
    [
        (Connection("nosuch.i", "snk.i"), "unknown component 'nosuch'"),
        (Connection("src.i", "ghost.i"), "unknown component 'ghost'"),
        (Connection("src.w", "snk.i"), "src has no output port 'w'; its outputs: v, i"),
        (Connection("src.i", "snk.k"), "snk has no input port 'k'; its inputs: i, j"),
        (Connection("snk.i", "snk.j"), "snk has no output port 'i'"),
        (Connection("srci", "snk.i"), "'srci' is not of the form 'component.port'"),
    ],
)
def test_unknown_component_or_port_is_rejected(connection, expected):
    """An unknown component, port or a malformed name is named, with what exists."""
    with pytest.raises(WiringError, match="wiring rejected") as err:
        Graph({"src": VoltSource(), "snk": AmpSink()}, [connection])
    assert expected in str(err.value)


def test_an_input_fed_twice_is_rejected():
    """`a.i -> snk.i <- b.i`: an input has one source; both sources are named."""
    with pytest.raises(WiringError) as err:
        Graph(
            {"a": VoltSource(), "b": VoltSource(), "snk": AmpSink()},
            [Connection("a.i", "snk.i"), Connection("b.i", "snk.i")],
        )
    assert "input snk.i is fed twice: by a.i and by b.i" in str(err.value)


def test_undelayed_cycle_is_rejected_naming_the_cycle():
    """`a -> b -> a` without a delay has no order: the cycle is spelled out and delayed suggested."""
    with pytest.raises(WiringError) as err:
        Graph(
            {"a": AmpSink(), "b": AmpSink()},
            [Connection("a.i_out", "b.i"), Connection("b.i_out", "a.i")],
        )
    text = str(err.value)
    assert "a -> b -> a" in text
    assert "a.i_out -> b.i" in text and "b.i_out -> a.i" in text
    assert "delayed" in text


def test_cycle_with_a_dangling_downstream_component_is_still_named():
    """`c` listed first and fed by the cycle `a -> b -> a`: the message names the cycle, not `c`."""
    with pytest.raises(WiringError) as err:
        Graph(
            {"c": AmpSink(), "a": AmpSink(), "b": AmpSink()},
            [Connection("a.i_out", "b.i"), Connection("b.i_out", "a.i"),
             Connection("b.i_out", "c.i")],
        )
    assert "a -> b -> a" in str(err.value)


def test_self_loop_is_a_cycle():
    """`a -> a` is rejected as the cycle a -> a."""
    with pytest.raises(WiringError, match="a -> a"):
        Graph({"a": AmpSink()}, [Connection("a.i_out", "a.i")])


def test_the_same_cycle_is_accepted_with_one_edge_delayed():
    """`a -> b -(delayed)-> a` is ordered a, b and runs."""
    components = {"b": AmpSink(), "a": AmpSink()}
    connections = [Connection("a.i_out", "b.i"), Connection("b.i_out", "a.i", delayed=True)]
    graph = Graph(components, connections)
    assert graph.order == ["a", "b"]


def test_all_problems_are_reported_together():
    """A unit mismatch, an unknown port, a doubly fed input and a cycle come in one error."""
    components = {"src": VoltSource(), "a": AmpSink(), "b": AmpSink()}
    connections = [
        Connection("src.v", "a.j"),          # V into A
        Connection("src.nope", "b.j"),       # unknown port
        Connection("src.i", "a.i"),
        Connection("b.i_out", "a.i"),        # a.i fed twice
        Connection("a.i_out", "b.i"),        # with the line above: cycle a -> b -> a
    ]
    with pytest.raises(WiringError) as err:
        Graph(components, connections)
    text = str(err.value)
    assert "unit mismatch" in text
    assert "src has no output port 'nope'" in text
    assert "a.i is fed twice" in text
    assert "a -> b -> a" in text
    assert text.count("\n  - ") == 4


def test_simulation_rejects_bad_wiring_before_running():
    """`Simulation(...)` raises the wiring error at construction, so nothing runs."""
    with pytest.raises(WiringError, match="unit mismatch"):
        Simulation({"src": VoltSource(), "snk": AmpSink()}, [Connection("src.v", "snk.i")],
                   step=1.0)
