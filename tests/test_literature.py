"""The published figures of merit beside the reference plant, the physics and the committed models.

The reference plant the models learn from is a plausible cell: fresh at the nominal point it
lands within 5 % of each figure of process.md with a current density, its best FE passes the
physics' 0.90; the committed hybrid stays near it.
"""
from __future__ import annotations

import pytest

from models.literature import FIGURES, compare
from models.surrogate import TRAINED_DIR


@pytest.fixture(scope="module")
def entries() -> list[dict]:
    return compare(TRAINED_DIR)


def test_every_figure_has_the_reference_the_physics_and_each_kind(entries):
    """One entry per published figure, with the reference plant, physics, nn and hybrid values."""
    assert [(e["source"], e["current_density"]) for e in entries] == [
        (f.source, f.current_density) for f in FIGURES]
    for e in entries:
        assert {"published", "reference", "physics", "nn", "hybrid"} <= set(e), e


def test_reference_plant_is_near_the_published_figures_and_the_hybrid_near_it(entries):
    """The reference plant within 5 % of each figure at its current density; the hybrid, which
    learnt it through sensors (FE reads 0.01 low), within 4 % of the reference plant."""
    for e in (e for e in entries if e["current_density"] is not None):
        assert e["reference"] == pytest.approx(e["published"], rel=0.05), e
        assert e["hybrid"] == pytest.approx(e["reference"], rel=0.04), e


def test_fe_is_not_held_under_the_physics_fe_max(entries):
    """The reference plant's best FE passes the physics' fe_max of 0.90, and the hybrid follows it."""
    (best,) = [e for e in entries if e["current_density"] is None]
    assert best["reference"] > 0.92 and best["physics"] < 0.90
    assert best["hybrid"] == pytest.approx(best["reference"], rel=0.04)
