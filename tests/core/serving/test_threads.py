"""A model's worker threads: the hand-off of one call, answered blocked or through the loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from modelswap.core.serving.threads import ModelThreads, compute


@pytest.fixture
def threads() -> Iterator[ModelThreads]:
    pool = ModelThreads(2, "predict-test")
    yield pool
    pool.close()


def test_a_fast_call_comes_back_during_the_hand_off_on_a_model_thread(threads: ModelThreads) -> None:
    async def main() -> tuple[str, list[str]]:
        ran: list[str] = []
        asyncio.get_running_loop().call_soon(ran.append, "other work")
        name = await compute(threads, lambda: threading.current_thread().name, hand_off_s=1.0)
        return name, list(ran)

    name, ran = asyncio.run(main())
    assert name.startswith("predict-test") and ran == []  # answered before the loop ran anything else


def test_a_call_slower_than_the_hand_off_is_awaited_and_the_loop_runs_meanwhile(threads: ModelThreads) -> None:
    def slow() -> str:
        time.sleep(0.3)
        return "late"

    async def main() -> tuple[str, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        answer = await compute(threads, slow, hand_off_s=0.002)
        task.cancel()
        return answer, ticks

    answer, ticks = asyncio.run(main())
    assert answer == "late" and ticks >= 5


@pytest.mark.parametrize("hand_off_s", [0.0, 1.0])
def test_what_the_call_raises_is_raised_to_the_caller(threads: ModelThreads, hand_off_s: float) -> None:
    def fails() -> None:
        raise ValueError("bad rows")

    with pytest.raises(ValueError, match="bad rows"):
        asyncio.run(compute(threads, fails, hand_off_s=hand_off_s))


def test_closing_cancels_what_is_queued_waits_for_what_runs_and_refuses_more() -> None:
    pool = ModelThreads(1, "predict-test")
    started = threading.Event()
    running = pool.submit(lambda: (started.set(), time.sleep(0.2), "ran")[-1])
    queued = pool.submit(lambda: "queued")
    started.wait(5)
    pool.close()
    assert running.answer() == "ran"
    with pytest.raises(asyncio.CancelledError):
        queued.answer()
    assert not any(t.name.startswith("predict-test") for t in threading.enumerate())
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(lambda: None)


def test_a_call_that_raises_stop_iteration_after_the_hand_off_fails_instead_of_hanging(
    threads: ModelThreads,
) -> None:
    def stops() -> None:
        time.sleep(0.05)
        next(iter([]))

    async def main() -> None:
        await asyncio.wait_for(compute(threads, stops, hand_off_s=0.001), 5)

    with pytest.raises(RuntimeError, match="StopIteration"):
        asyncio.run(main())


def test_an_answer_for_a_loop_that_has_closed_is_dropped_quietly(threads: ModelThreads) -> None:
    release = threading.Event()

    async def main() -> None:
        job = threads.submit(release.wait, 5)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(job.wait(0.0), 0.05)

    asyncio.run(main())  # the loop closes with the job still running
    release.set()
    time.sleep(0.1)  # the thread settles it: no exception escapes (pytest fails on a thread's exception)


def test_one_call_at_a_time_goes_to_the_same_warm_thread_and_calls_at_once_get_one_each() -> None:
    pool = ModelThreads(3, "predict-test")
    try:
        alone = []
        for _ in range(20):
            job = pool.submit(lambda: threading.current_thread().name)
            alone.append(asyncio.run(job.wait(5.0)))
            time.sleep(0.002)  # the thread goes idle again before the next call
        assert len(set(alone)) == 1, alone  # the thread that went idle last, every time

        barrier = threading.Barrier(3, timeout=5)  # three calls that can only finish together
        jobs = [pool.submit(lambda: (barrier.wait(), threading.current_thread().name)[1]) for _ in range(3)]
        names = [asyncio.run(job.wait(5.0)) for job in jobs]
        assert sorted(names) == [f"predict-test-{i}" for i in range(3)]

        blocked = threading.Event()
        first = [pool.submit(blocked.wait, 5) for _ in range(3)]  # every thread busy
        later = [pool.submit(lambda i=i: i) for i in range(5)]  # the backlog, run in order once they free up
        blocked.set()
        assert all(asyncio.run(job.wait(5.0)) for job in first)
        assert [asyncio.run(job.wait(5.0)) for job in later] == list(range(5))
    finally:
        pool.close()
    assert not any(t.name.startswith("predict-test") for t in threading.enumerate())
