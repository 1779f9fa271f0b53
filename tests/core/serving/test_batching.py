"""Micro-batching on a real event loop with real worker threads: rows go back to their own
request, in order; the model never runs on the loop; a miscounting model fails alone."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from modelswap.core.errors import PredictTimeout
from modelswap.core.schema.signature import Signature
from modelswap.core.serving.batching import Batcher, WrongAnswerCount
from modelswap.core.serving.pool import BatchPool
from modelswap.core.serving.threads import ModelThreads, compute
from tests.models_for_tests import RowSum


class Recording:
    def __init__(self) -> None:
        self.model = RowSum()
        self.batches: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, X: np.ndarray) -> Any:
        self.batches.append(len(X))
        self.threads.add(threading.current_thread().name)
        return self.model.predict(X)


@pytest.fixture
def executor() -> Iterator[ModelThreads]:
    pool = ModelThreads(2, "predict-test")
    yield pool
    pool.close()


def rows(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 10, size=(n, 4))


async def submit_all(batcher: Batcher, inputs: list[np.ndarray]) -> list[Any]:
    return await asyncio.gather(*(batcher.submit(x) for x in inputs), return_exceptions=True)


def test_concurrent_requests_share_calls_and_get_their_own_rows_in_order(executor: ModelThreads) -> None:
    fn = Recording()
    batcher = Batcher(fn, executor, max_rows=1000)
    inputs = [rows(i, 1 + i % 5) for i in range(40)]  # mixed batch sizes
    results = asyncio.run(submit_all(batcher, inputs))
    for x, got in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(got, x.sum(axis=1))
    assert len(fn.batches) < len(inputs) and sum(fn.batches) == sum(len(x) for x in inputs)


def test_the_model_never_runs_on_the_event_loop_thread(executor: ModelThreads) -> None:
    fn = Recording()
    asyncio.run(submit_all(Batcher(fn, executor), [rows(i, 1) for i in range(5)]))
    assert fn.threads and all(name.startswith("predict-test") for name in fn.threads)


def test_max_rows_caps_a_batch(executor: ModelThreads) -> None:
    fn = Recording()
    asyncio.run(submit_all(Batcher(fn, executor, max_rows=10), [rows(i, 4) for i in range(10)]))
    assert max(fn.batches) <= 10 and sum(fn.batches) == 40


def test_one_request_that_makes_the_model_raise_fails_alone(executor: ModelThreads) -> None:
    fn = Recording()
    inputs = [rows(i, 2) for i in range(8)]
    inputs[3][0, 0] = -1.0
    results = asyncio.run(submit_all(Batcher(fn, executor), inputs))
    assert isinstance(results[3], RuntimeError)
    for i, (x, got) in enumerate(zip(inputs, results, strict=True)):
        if i != 3:
            np.testing.assert_array_equal(got, x.sum(axis=1))


class OneTooMany:
    """Answers one row more than asked when any row's first value is negative."""

    def __call__(self, X: np.ndarray) -> Any:
        time.sleep(0.005)  # let the queue fill, so calls batch
        extra = 1 if (X[:, 0] < 0).any() else 0
        return np.concatenate([X.sum(axis=1), np.zeros(extra)])


def test_a_model_that_answers_more_rows_than_it_was_given_never_hands_out_another_requests_answer(
    executor: ModelThreads,
) -> None:
    inputs = [rows(i, 1) for i in range(40)]
    inputs[7][0, 0] = -5.0
    results = asyncio.run(submit_all(Batcher(OneTooMany(), executor), inputs))
    assert isinstance(results[7], WrongAnswerCount)
    for i, (x, got) in enumerate(zip(inputs, results, strict=True)):
        if i != 7:
            np.testing.assert_array_equal(got, x.sum(axis=1))


def test_a_request_that_waits_past_the_timeout_gets_predict_timeout(executor: ModelThreads) -> None:
    def slow(X: np.ndarray) -> Any:
        time.sleep(0.5)
        return X.sum(axis=1)

    with pytest.raises(PredictTimeout, match="0.05s"):
        asyncio.run(Batcher(slow, executor, timeout_s=0.05).submit(rows(1, 1)))


def test_each_waiting_request_times_out_at_its_own_deadline(executor: ModelThreads) -> None:
    release = threading.Event()

    def stuck(X: np.ndarray) -> Any:
        release.wait(5)
        return X.sum(axis=1)

    async def main() -> list[float]:
        batcher = Batcher(stuck, executor, timeout_s=0.2)
        loop = asyncio.get_running_loop()

        async def waited(delay: float) -> float:
            await asyncio.sleep(delay)
            start = loop.time()
            with pytest.raises(PredictTimeout):
                await batcher.submit(rows(1, 1))
            return loop.time() - start

        try:  # the first is computing, the others wait behind it; each has its own clock
            return list(await asyncio.gather(waited(0), waited(0.1), waited(0.25)))
        finally:
            release.set()

    assert all(0.19 <= waited < 0.4 for waited in asyncio.run(main()))


def test_answered_requests_leave_no_deadlines_behind(executor: ModelThreads) -> None:
    async def main(batcher: Batcher) -> None:
        for i in range(300):
            np.testing.assert_array_equal(await batcher.submit(rows(i, 1)), rows(i, 1).sum(axis=1))

    batcher = Batcher(Recording(), executor, timeout_s=60)
    asyncio.run(main(batcher))
    assert len(batcher._deadlines) <= 1  # answers are not held until their deadline


def test_the_pool_keeps_snapshots_and_methods_apart_and_joins_its_threads() -> None:
    class Snap:
        model, version, signature = "m", "v1", Signature(columns=())

    pool = BatchPool(max_rows=100, wait_s=0)
    stable, canary = Snap(), Snap()
    a = pool.batcher(stable, "predict", Recording())
    assert pool.batcher(stable, "predict", Recording()) is a
    assert pool.batcher(canary, "predict", Recording()) is not a
    assert pool.batcher(stable, "predict_proba", Recording()) is not a
    assert asyncio.run(pool.call("m", lambda X: X.sum(axis=1), rows(2, 3))).shape == (3,)
    pool.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("predict-m")]


@pytest.mark.parametrize("wait_ms", [0.0, 2.0])
def test_a_wait_window_still_answers_every_request(wait_ms: float, executor: ModelThreads) -> None:
    fn = Recording()
    inputs = [rows(i, 1) for i in range(5)]
    results = asyncio.run(submit_all(Batcher(fn, executor, wait_s=wait_ms / 1000), inputs))
    assert [float(r[0]) for r in results] == [float(x.sum()) for x in inputs]


@pytest.mark.parametrize("hand_off_s", [0.0, 1.0])
def test_the_loop_waits_blocked_for_a_fast_answer_only_during_the_hand_off(
    hand_off_s: float, executor: ModelThreads
) -> None:
    fn = Recording()

    async def main() -> list[str]:
        ran: list[str] = []
        asyncio.get_running_loop().call_soon(ran.append, "other work")
        result = await compute(executor, fn, rows(1, 3), hand_off_s=hand_off_s)
        assert result.shape == (3,)
        return list(ran)  # what had run by the time the answer was back

    # Waiting: the answer is back before the loop runs anything else. Not waiting: the
    # loop serves other work while the model computes.
    assert asyncio.run(main()) == ([] if hand_off_s else ["other work"])
    assert fn.threads and all(name.startswith("predict-test") for name in fn.threads)


def test_a_model_slower_than_the_hand_off_is_not_waited_for_again(executor: ModelThreads) -> None:
    def slow(X: np.ndarray) -> Any:
        time.sleep(0.6)
        return X.sum(axis=1)

    async def longest_stall(batcher: Batcher) -> float:
        """The longest the loop went without running a 5 ms ticker while one request computed."""
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        await batcher.submit(rows(1, 1))
        done.set()
        await ticking
        return max(gaps)

    async def main() -> tuple[float, float]:
        batcher = Batcher(slow, executor, hand_off_s=0.3)
        return await longest_stall(batcher), await longest_stall(batcher)

    first, second = asyncio.run(main())
    assert 0.25 < first < 0.55  # the hand-off, then the loop went on while the model computed
    assert second < 0.25  # its last call was slow: not waited for at all


def test_calls_go_on_the_loop_once_proven_cheap_back_to_workers_when_slow_and_for_good_after_a_stall(
    executor: ModelThreads, caplog: pytest.LogCaptureFixture
) -> None:
    # inline_s 10 ms, proof 2 calls, a stall past 4 x 10 ms: fast, then over the budget, then past the stall
    # (every margin 20 ms or more: a busy test machine pauses a call for a few)
    delays = [0.0, 0.0, 0.0, 0.02, 0.0, 0.0, 0.0, 0.08, 0.0, 0.0, 0.0, 0.0]
    where: list[str] = []

    def model(X: np.ndarray) -> Any:
        where.append(threading.current_thread().name)
        time.sleep(delays[len(where) - 1])
        return X.sum(axis=1)

    async def main() -> list[Any]:
        batcher = Batcher(model, executor, inline_s=0.01, proof=2, name="m v1 predict")
        return [await batcher.submit(rows(i, 2)) for i in range(len(delays))]

    with caplog.at_level(logging.WARNING, logger="modelswap.core.serving.batching"):
        results = asyncio.run(main())
    for i, got in enumerate(results):
        np.testing.assert_array_equal(got, rows(i, 2).sum(axis=1))
    on_loop = [name == "MainThread" for name in where]
    # two calls on a worker (a new version is measured first), then the loop; a call over
    # the budget there (20 ms for 2 rows) puts the next one's estimate over it: a worker;
    # cheap again, the loop; a call there past the stall keeps them on the workers for good
    assert on_loop == [False, False, True, True, False, True, True, True, False, False, False, False]
    [warning] = [r.getMessage() for r in caplog.records]
    stay = "its calls stay on the worker threads"
    pattern = rf"m v1 predict: a call on the event loop took ([\d.]+) ms \([\d.]+ ms of CPU, 2 rows\); {stay}"
    took = re.fullmatch(pattern, warning)
    assert took is not None and float(took[1]) >= 80  # asleep, but past HOLD_S (50 ms) on the loop


def test_a_call_on_the_loop_that_waited_is_proven_again_and_one_that_ran_ends_calls_there(
    executor: ModelThreads, caplog: pytest.LogCaptureFixture
) -> None:
    # inline_s 5 ms, proof 2: a stall is 20 ms of the thread's CPU, or a hold past 50 ms.
    # A call waiting 30 ms (asleep, as on I/O or on another thread holding the GIL) is not
    # one; a call running 30 ms of CPU is.
    plan = ["", "", "wait", "", "", "", "run", "", "", ""]
    where: list[bool] = []

    def model(X: np.ndarray) -> Any:
        where.append(threading.current_thread() is threading.main_thread())
        step = plan[len(where) - 1]
        if step == "wait":
            time.sleep(0.03)
        elif step == "run":
            start = time.thread_time()
            while time.thread_time() - start < 0.03:
                pass
        return X.sum(axis=1)

    async def main() -> Batcher:
        batcher = Batcher(model, executor, inline_s=0.005, proof=2, name="m v1 predict")
        for i in range(len(plan)):
            await batcher.submit(rows(i, 1))
        return batcher

    with caplog.at_level(logging.WARNING, logger="modelswap.core.serving.batching"):
        batcher = asyncio.run(main())
    # measured on a worker, the loop; the wait sends it back for two calls, then the loop
    # again; the run there keeps it on the workers for good
    assert where == [False, False, True, False, False, True, True, False, False, False]
    assert batcher.inline_s == 0.0
    [warning] = [r.getMessage() for r in caplog.records]
    cpu = re.search(r"\(([\d.]+) ms of CPU, 1 rows\)", warning)
    assert cpu is not None and float(cpu[1]) >= 30


def test_a_pause_of_the_machine_is_not_the_models_stall(executor: ModelThreads, shared_cpu: int) -> None:
    # the loop's thread shares its CPU with a busy process: a cheap call (0.1 ms of CPU) now
    # and then waits for the CPU while the other runs its slice (some ms), past the stall
    # (4 x 0.5 ms); that wait is not the model's
    calls: list[tuple[bool, float]] = []  # on the loop's thread?, wall seconds

    def model(X: np.ndarray) -> Any:
        start, cpu = time.perf_counter(), time.thread_time()
        while time.thread_time() - cpu < 0.0001:
            pass
        calls.append((threading.current_thread() is loop_thread, time.perf_counter() - start))
        return X.sum(axis=1)

    async def main() -> Batcher:
        batcher = Batcher(model, executor, inline_s=0.0005, proof=2, name="m v1 predict")
        deadline = time.monotonic() + 20
        while sum(wall > 0.003 for on_loop, wall in calls if on_loop) < 3 and time.monotonic() < deadline:
            await batcher.submit(rows(len(calls), 1))
        return batcher

    def on_shared_cpu() -> Batcher:
        os.sched_setaffinity(0, {shared_cpu})
        return asyncio.run(main())

    loop_thread = threading.Thread(target=lambda: out.append(on_shared_cpu()))
    out: list[Batcher] = []
    loop_thread.start()
    loop_thread.join()
    paused = [wall for on_loop, wall in calls if on_loop and wall > 0.003]
    assert len(paused) == 3  # calls on the loop past the stall (2 ms) by the wall clock
    assert [on_loop for on_loop, _ in calls] == [False, False] + [True] * (len(calls) - 2)
    assert out[0].inline_s == 0.0005


def test_a_garbage_collection_during_a_call_on_the_loop_is_not_the_models_stall(executor: ModelThreads) -> None:
    where: list[bool] = []

    def model(X: np.ndarray) -> Any:
        where.append(threading.current_thread().name == "MainThread")
        if (X < 0).any():  # the collector runs in this call, as when its allocations set it off
            gc.collect()
        return X.sum(axis=1)

    async def main() -> Batcher:
        batcher = Batcher(model, executor, inline_s=0.001, proof=2)
        for i in range(3):
            await batcher.submit(rows(i, 1))
        garbage: list[Any] = [[] for _ in range(200_000)]  # a cycle of 200,000 lists: tens of ms to collect
        garbage.append(garbage)
        del garbage
        await batcher.submit(-rows(3, 1))
        await batcher.submit(rows(4, 1))
        return batcher

    gc.disable()  # the garbage waits for the model's call
    try:
        batcher = asyncio.run(main())
    finally:
        gc.enable()
    assert where == [False, False, True, True, True]  # on the loop before, during and after the collection
    assert batcher.inline_s == 0.001


def on_loop(
    executor: ModelThreads, inputs: list[np.ndarray], took: Callable[[np.ndarray], float], **options: Any
) -> tuple[list[tuple[int, bool]], list[int]]:
    """``inputs`` one after the other to a batcher of ``options`` whose model takes
    ``took(X)`` seconds (or raises the ValueError it raises): each call's rows and whether
    it ran on the loop, and which of the inputs got the ValueError."""
    where: list[tuple[int, bool]] = []
    failed: list[int] = []

    def model(X: np.ndarray) -> Any:
        where.append((len(X), threading.current_thread().name == "MainThread"))
        time.sleep(took(X))
        return X.sum(axis=1)

    async def main() -> None:
        batcher = Batcher(model, executor, **options)
        for i, X in enumerate(inputs):
            try:
                await batcher.submit(X)
            except ValueError:
                failed.append(i)

    asyncio.run(main())
    return where, failed


def sized(*sizes: int) -> list[np.ndarray]:
    return [rows(n, n) for n in sizes]


def test_a_model_that_stalled_in_its_last_calls_stays_on_workers_though_its_rows_look_cheap(
    executor: ModelThreads,
) -> None:
    # 500 rows take 60 ms: 0.12 ms a row, a 1-row call looks cheap
    where, _ = on_loop(
        executor, sized(1, 500, 1, 1, 1), lambda X: 0.06 if len(X) > 100 else 0.0, inline_s=0.01, proof=2, max_rows=1000
    )
    # the 500-row call stalled (60 ms > 4 x 10 ms): two cheap calls on a worker before the loop again
    assert where == [(1, False), (500, False), (1, False), (1, False), (1, True)]


def test_a_batch_after_a_lone_request_is_bounded_by_the_last_batch_of_its_size_not_by_the_lone_cost_per_row(
    executor: ModelThreads,
) -> None:
    # 5 ms a call, whatever its rows: all of it the fixed part
    where, _ = on_loop(executor, sized(5, 5, 1, 5, 100), lambda X: 0.005, inline_s=0.02, proof=1, max_rows=1000)
    # 5 rows after 1: 5 x 5 ms per row would be 25 ms, over 20; the last call of 5 rows took 5 ms.
    # 100 rows: no recent call had as many; 5 ms x 100 / 5 = 100 ms, over 20: a worker
    assert where == [(5, False), (5, True), (1, True), (5, True), (100, False)]


def test_a_call_that_raised_at_once_does_not_make_a_big_one_look_cheap(executor: ModelThreads) -> None:
    def took(X: np.ndarray) -> float:  # 5 ms and 0.5 ms a row; a negative value is refused at once
        if (X < 0).any():
            raise ValueError("negative")
        return 0.005 + 0.0005 * len(X)

    bad = rows(3, 40)
    bad[0, 0] = -1.0
    inputs = [rows(1, 1), rows(2, 1), bad, rows(4, 1), rows(5, 40)]
    where, failed = on_loop(executor, inputs, took, inline_s=0.02, proof=1, max_rows=1000)
    assert [inputs[i] is bad for i in failed] == [True]
    # 40 rows after 1 of 5.5 ms: 220 ms, a worker; the 40 that failed in no time bound nothing,
    # so the next 40 go to a worker too (on the loop they would take 25 ms, over 20)
    assert where == [(1, False), (1, True), (40, False), (1, True), (40, False)]


def test_a_stall_keeps_every_batcher_of_that_version_off_the_loop() -> None:
    class Snap:
        def __init__(self, version: str) -> None:
            self.model, self.version, self.signature = "m", version, Signature(columns=())

    def model(X: np.ndarray) -> Any:
        time.sleep(0.1 if (X < 0).any() else 0.0)
        return X.sum(axis=1)

    pool = BatchPool(max_rows=100, wait_s=0, inline_s=0.01)
    v1, v2 = Snap("v1"), Snap("v2")
    try:
        predict = pool.batcher(v1, "predict", model)
        proba = pool.batcher(v1, "predict_proba", model)
        other = pool.batcher(v2, "predict", model)
        predict.proof = 1

        async def main() -> None:
            await predict.submit(rows(0, 1))  # proven on a worker: the next call goes on the loop
            await predict.submit(-rows(1, 1))  # 100 ms there: a stall (over 4 x 10 ms)

        asyncio.run(main())
        assert (predict.inline_s, proba.inline_s, other.inline_s) == (0.0, 0.0, 0.01)
        again = pool.batcher(Snap("v1"), "predict", model)  # v1 reloaded (or its batcher dropped while idle)
        assert again is not predict and again.inline_s == 0.0
    finally:
        pool.close()


def test_a_model_that_raises_on_the_loop_still_fails_alone(executor: ModelThreads) -> None:
    where: list[str] = []

    def model(X: np.ndarray) -> Any:
        where.append(threading.current_thread().name)
        if (X < 0).any():
            raise ValueError("negative")
        return X.sum(axis=1)

    async def main() -> list[Any]:
        batcher = Batcher(model, executor, inline_s=1.0, proof=1)
        await batcher.submit(rows(0, 1))  # measured on a worker: the next calls run on the loop
        return await submit_all(batcher, [rows(1, 1), -rows(2, 1), rows(3, 1)])

    good, bad, also_good = asyncio.run(main())
    assert isinstance(bad, ValueError)
    np.testing.assert_array_equal(good, rows(1, 1).sum(axis=1))
    np.testing.assert_array_equal(also_good, rows(3, 1).sum(axis=1))
    assert where[0] != "MainThread" and where[1:] == ["MainThread"] * 4  # the batch, then each request alone


def test_a_lone_request_to_a_batcher_proven_cheap_is_answered_in_its_own_task(executor: ModelThreads) -> None:
    """With nothing else for the loop to run, a request to an idle batcher whose calls go on
    the loop is answered in the request's own task (no drain task, no trip through the
    loop); requests ready together still share one call, in a drain task."""
    calls: list[tuple[int, asyncio.Task[Any] | None]] = []

    def model(X: np.ndarray) -> Any:
        on_loop = threading.current_thread() is threading.main_thread()
        calls.append((len(X), asyncio.current_task() if on_loop else None))
        return X.sum(axis=1)

    async def main() -> tuple[asyncio.Task[Any] | None, list[Any]]:
        batcher = Batcher(model, executor, inline_s=1.0, proof=1)
        for i in range(4):  # the first measured on a worker, the next on the loop
            np.testing.assert_array_equal(await batcher.submit(rows(i, 1)), rows(i, 1).sum(axis=1))
        return asyncio.current_task(), await submit_all(batcher, [rows(i, 1) for i in range(4)])

    mine, together = asyncio.run(main())
    for i, got in enumerate(together):
        np.testing.assert_array_equal(got, rows(i, 1).sum(axis=1))
    assert mine is not None
    assert calls[:4] == [(1, None), (1, mine), (1, mine), (1, mine)]
    [(size, drain)] = calls[4:]
    assert size == 4 and drain is not None and drain is not mine


def test_a_big_request_after_small_fast_ones_goes_to_a_worker(executor: ModelThreads) -> None:
    # a cost per row: 0.1 ms
    where, _ = on_loop(
        executor, sized(1, 1, 2, 1000, 2, 2), lambda X: 0.0001 * len(X), inline_s=0.01, proof=1, max_rows=10_000
    )
    assert where == [
        # 1000 rows: ~100 ms estimated; it took that, a stall, so the next call proves cheap again first
        (1, False), (1, True), (2, True), (1000, False), (2, False), (2, True)
    ]  # fmt: skip


class SlowFirst(Recording):
    """Takes ``first_s`` over its first call (the loop awaits it), then answers at once."""

    def __init__(self, first_s: float) -> None:
        super().__init__()
        self.first_s = first_s

    def __call__(self, X: np.ndarray) -> Any:
        if not self.batches:
            time.sleep(self.first_s)
        return super().__call__(X)


def ticket(name: str) -> tuple[float, str]:
    return (time.perf_counter(), name)


@pytest.mark.parametrize("regroup_s", [5.0, 0.0])
def test_a_request_that_missed_a_batch_waits_for_that_batch_s_clients_to_come_back(
    executor: ModelThreads, regroup_s: float
) -> None:
    """Four clients and a fifth that arrives while their batch computes: when the four come
    back, all five share the next call instead of two groups alternating."""
    fn = SlowFirst(0.3)
    batcher = Batcher(fn, executor, regroup_s=regroup_s)

    async def go() -> list[Any]:
        first = [asyncio.ensure_future(batcher.submit(rows(i, 1), ticket(f"a{i}"))) for i in range(4)]
        await asyncio.sleep(0.05)  # the first batch computes
        late = asyncio.ensure_future(batcher.submit(rows(9, 2), ticket("b")))
        answers = await asyncio.gather(*first)
        again = [batcher.submit(rows(i, 1), ticket(f"a{i}")) for i in range(4)]  # the four come back
        return [*answers, *await asyncio.gather(late, *again)]

    answers = asyncio.run(go())
    assert [len(a) for a in answers] == [1, 1, 1, 1, 2, 1, 1, 1, 1]  # everyone got their own rows
    assert fn.batches == ([4, 6] if regroup_s else [4, 2, 4])


def test_who_a_batch_waits_for(executor: ModelThreads) -> None:
    batcher = Batcher(Recording(), executor, regroup_s=0.001)
    loop = asyncio.new_event_loop()
    try:
        pending = batcher._pending

        def queue(*starts: float) -> None:
            pending.clear()
            for start in starts:
                pending.append((rows(0, 1), loop.create_future(), (start, "")))
            batcher._pending_rows = len(starts)

        queue(5.0)
        assert batcher.regroup_target(5.0) == 0  # nothing answered yet: nobody to wait for
        batcher._sizes.extend([16, 16, 15])
        batcher._answered_at = 10.0
        queue(9.0)  # waited while the last batch (15) computed: its clients come back
        assert batcher.regroup_target(10.0002) == 16
        queue(10.0001, 10.0001)  # came just after it: as many as the recent batches had
        assert batcher.regroup_target(10.0002) == 16
        assert batcher.regroup_target(10.5) == 0  # long after it: nobody is about to come
        queue(*[10.0001] * 16)
        assert batcher.regroup_target(10.0002) == 0  # a whole group already
        batcher._sizes.clear()
        batcher._sizes.extend([1, 1, 1])
        queue(10.0001)
        assert batcher.regroup_target(10.0002) == 0  # one client, one request at a time: no wait
        batcher._sizes.append(300)
        queue(9.0)
        batcher._pending_rows = 256
        assert batcher.regroup_target(10.0002) == 0  # a full batch goes at once
        queue(0.0)
        assert batcher.regroup_target(10.0002) == 300  # no arrival time (no ticket): by the recent sizes
    finally:
        loop.close()
