"""Micro-batching on a real event loop: rows go back to their own request, in order."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from modelswap.core.batching import Batcher, BatchPool
from tests.models_for_tests import RowSum


class Recording:
    def __init__(self) -> None:
        self.model = RowSum()
        self.batches: list[int] = []

    def __call__(self, X: np.ndarray) -> Any:
        self.batches.append(len(X))
        return self.model.predict(X)


def rows(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 10, size=(n, 4))


async def submit_all(batcher: Batcher, inputs: list[np.ndarray]) -> list[Any]:
    return await asyncio.gather(*(batcher.submit(x) for x in inputs), return_exceptions=True)


def test_concurrent_requests_share_calls_and_get_their_own_rows_in_order() -> None:
    fn = Recording()
    batcher = Batcher(fn, max_rows=1000)
    inputs = [rows(i, 1 + i % 5) for i in range(40)]  # mixed batch sizes
    results = asyncio.run(submit_all(batcher, inputs))
    for x, got in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(got, x.sum(axis=1))
    assert len(fn.batches) < len(inputs) and sum(fn.batches) == sum(len(x) for x in inputs)


def test_a_lone_request_is_one_call_of_its_own_rows() -> None:
    fn = Recording()
    x = rows(1, 3)
    result = asyncio.run(Batcher(fn).submit(x))
    np.testing.assert_array_equal(result, x.sum(axis=1))
    assert fn.batches == [3]


def test_max_rows_caps_a_batch() -> None:
    fn = Recording()
    asyncio.run(submit_all(Batcher(fn, max_rows=10), [rows(i, 4) for i in range(10)]))
    assert max(fn.batches) <= 10 and sum(fn.batches) == 40


def test_one_request_that_makes_the_model_raise_fails_alone() -> None:
    fn = Recording()
    inputs = [rows(i, 2) for i in range(8)]
    inputs[3][0, 0] = -1.0
    results = asyncio.run(submit_all(Batcher(fn), inputs))
    assert isinstance(results[3], RuntimeError)
    for i, (x, got) in enumerate(zip(inputs, results, strict=True)):
        if i != 3:
            np.testing.assert_array_equal(got, x.sum(axis=1))


def test_big_batches_run_off_the_event_loop_with_the_same_answer() -> None:
    fn = Recording()
    x = rows(9, 600)
    result = asyncio.run(Batcher(fn, inline_rows=100, max_rows=1000).submit(x))
    np.testing.assert_array_equal(result, x.sum(axis=1))


def test_the_pool_keeps_snapshots_and_methods_apart() -> None:
    pool = BatchPool(max_rows=100, wait_s=0)
    stable, canary = object(), object()
    a = pool.batcher(stable, "predict", Recording())
    assert pool.batcher(stable, "predict", Recording()) is a
    assert pool.batcher(canary, "predict", Recording()) is not a
    assert pool.batcher(stable, "predict_proba", Recording()) is not a


@pytest.mark.parametrize("wait_ms", [0.0, 2.0])
def test_a_wait_window_still_answers_every_request(wait_ms: float) -> None:
    fn = Recording()
    inputs = [rows(i, 1) for i in range(5)]
    results = asyncio.run(submit_all(Batcher(fn, wait_s=wait_ms / 1000), inputs))
    assert [float(r[0]) for r in results] == [float(x.sum()) for x in inputs]
