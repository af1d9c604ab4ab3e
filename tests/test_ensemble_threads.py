"""The ensemble's networks on several threads (models.bank.batch_threads): the same bits as
on one, every variant still equal to its own run, and no thread left behind.

A batch larger than one block (models.bank._BLOCK samples) is shared among the threads
block by block; the blocks do not depend on the number of threads, so neither do the
results. The reactor starts the networks before its physics and takes their result after
(models.bank.PendingBatch), so a failure in between must not leave a thread running.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from co2twin.ensemble import apply_variant, batch_thread_count, run_ensemble
from co2twin.scenario import parse_scenario, run
from models import bank as bank_module
from models.bank import batch_threads
from models.selection import model_set

#: the hybrid plant (all four networks in one bank) for a few steps
SCENARIO: dict[str, Any] = {
    "name": "ensemble-threads",
    "duration": 6,
    "step": 1.0,
    "inputs": {"current": 5.0, "recycle_fraction": 0.5},
    "models": {"default": "hybrid"},
}
#: more variants than two blocks hold, so that every thread gets some
N = 2 * bank_module._BLOCK + 7


def _variants() -> list[dict[str, Any]]:
    rng = np.random.default_rng(4)
    return [{"inputs.current": float(c), "plant.reactor.area_cm2": float(a)}
            for c, a in zip(rng.uniform(3.0, 7.0, N), rng.uniform(20.0, 30.0, N), strict=True)]


def _bank_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("co2twin-bank")]


@pytest.fixture(scope="module")
def bank() -> Any:
    found = model_set(default="hybrid")._bank
    assert found is not None
    return found


def _signals(bank: Any, n: int) -> dict[str, Any]:
    rng = np.random.default_rng(n)
    signals: dict[str, Any] = {name: rng.uniform(0.5, 2.0, n) * 50 for name in bank.inputs}
    signals[bank.inputs[0]] = 60.0  # a float: the same for every sample
    return signals


@pytest.mark.parametrize("n", [1, bank_module._BLOCK, bank_module._BLOCK + 1, N])
def test_any_number_of_threads_gives_the_same_bits(bank, n):
    """The batch on 2, 3 or 5 threads equals the batch on one, bit for bit, and each column
    what one sample at a time gives (to 1e-12)."""
    signals = _signals(bank, n)
    one = bank.run_batch(signals, n).copy()
    for count in (2, 3, 5):
        with threadpool_limits(1), batch_threads(count):
            np.testing.assert_array_equal(bank.run_batch(signals, n), one)
            started = bank.start_batch(signals, n)  # begun, then taken later
            np.testing.assert_array_equal(started.result(), one)
    for j in (0, n // 2, n - 1):
        sample = bank.run({k: float(np.broadcast_to(v, (n,))[j]) for k, v in signals.items()})
        for row, variable in enumerate(bank.variables):
            assert one[row, j] == pytest.approx(sample[variable], rel=1e-12, abs=1e-12)


def test_the_pool_is_closed_on_leaving(bank):
    """batch_threads makes its threads once and none is left after the block."""
    before = len(_bank_threads())
    with threadpool_limits(1), batch_threads(3):
        for _ in range(3):
            bank.run_batch(_signals(bank, N), N)
        assert len(_bank_threads()) > before
    assert len(_bank_threads()) == before


def test_a_failing_block_raises_and_a_given_up_batch_stops(bank, monkeypatch):
    """What a thread raises comes out of result(); close() hands out no more blocks and
    waits for those begun, so the next batch has the buffers to itself."""
    signals = _signals(bank, N)
    expected = bank.run_batch(signals, N).copy()
    block = bank_module._BatchPlan._block
    failed = threading.Event()

    def failing(self: Any, inputs: Any, start: int, stop: int, part: int, out: Any) -> None:
        if part == 1:  # the pool's thread
            failed.set()
            raise FloatingPointError("block failed")
        block(self, inputs, start, stop, part, out)

    with threadpool_limits(1), batch_threads(2):
        monkeypatch.setattr(bank_module._BatchPlan, "_block", failing)
        started = bank.start_batch(signals, N)
        assert failed.wait(30.0)  # the thread has taken a block (and failed) before result()
        with pytest.raises(FloatingPointError, match="block failed"):
            started.result()
        monkeypatch.setattr(bank_module._BatchPlan, "_block", block)
        started = bank.start_batch(signals, N)
        started.close()
        np.testing.assert_array_equal(bank.run_batch(signals, N), expected)


def test_batch_thread_count_follows_the_blas_limit():
    """By default an ensemble uses as many threads as BLAS may (one in a Dask worker, whose
    nanny sets OPENBLAS_NUM_THREADS=1)."""
    with threadpool_limits(1):
        assert batch_thread_count() == 1
    assert batch_thread_count() >= 1


@pytest.fixture(scope="module")
def ensembles() -> tuple[Any, Any, list[dict[str, Any]]]:
    scenario = parse_scenario(SCENARIO)
    variants = _variants()
    return (run_ensemble(scenario, variants, threads=1), run_ensemble(scenario, variants, threads=2),
            variants)


def test_an_ensemble_on_two_threads_equals_one_on_one(ensembles):
    """run_ensemble's results do not depend on its threads, bit for bit, and it leaves none."""
    one, two, _ = ensembles
    np.testing.assert_array_equal(one.data, two.data)
    assert not _bank_threads()


@pytest.mark.parametrize("threads", [0, -2, 1.5, True, "2"])
def test_a_bad_thread_count_is_named(threads):
    """run_ensemble refuses a thread count that is no whole number >= 1, saying what it found."""
    from cosim.errors import ScenarioError

    with pytest.raises(ScenarioError, match=r"threads: expected a whole number >= 1, found"):
        run_ensemble(parse_scenario(SCENARIO), [{}], threads=threads)


def test_variants_in_every_block_equal_their_own_runs(ensembles):
    """A variant from the first, a middle and the last block of the threaded ensemble equals
    the scenario run alone with its overrides, every recorded signal to 1e-12."""
    _, two, variants = ensembles
    scenario = parse_scenario(SCENARIO)
    for i in (0, N // 2, N - 1):
        single = run(apply_variant(scenario, variants[i]), progress=False)
        member = two.frame(i)
        for column in member.columns:
            a, b = single[column].to_numpy(), member[column].to_numpy()
            scale = max(float(np.max(np.abs(a))), 1.0 if column.endswith("_correction") else 1e-300)
            assert float(np.max(np.abs(a - b))) / scale <= 1e-12, f"variant {i}: {column}"
