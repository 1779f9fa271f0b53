"""What a thread's wall-clock time holds that is not its code: the machine's and the collector's pauses."""

from __future__ import annotations

import gc
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from modelswap.core.serving import pauses


def in_thread_on(cpu: int, fn: Any) -> Any:
    """``fn()`` in a new thread pinned to ``cpu`` (affinity is per thread on Linux)."""
    out: list[Any] = []

    def run() -> None:
        os.sched_setaffinity(0, {cpu})
        out.append(fn())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return out[0]


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_the_time_a_thread_waited_for_a_cpu_counts_the_time_it_slept_does_not(shared_cpu: int) -> None:
    def waits() -> tuple[float, float]:
        before = pauses.cpu_wait()
        time.sleep(0.2)  # blocked: not waiting for a CPU
        slept = pauses.cpu_wait() - before
        before = pauses.cpu_wait()
        spin(0.3)  # ready all along, on a CPU a busy process holds half the time
        return slept, pauses.cpu_wait() - before

    slept, spun = in_thread_on(shared_cpu, waits)
    assert slept < 0.05
    assert 0.05 < spun < 0.3


def test_the_collectors_runs_count_in_every_thread() -> None:
    garbage = []
    for _ in range(200_000):  # cycles: only the collector frees them
        cycle: list[Any] = []
        cycle.append(cycle)
        garbage.append(cycle)
    with ThreadPoolExecutor(1) as other:  # another thread, asked before and after
        waited_before = pauses.cpu_wait()
        before = pauses.seconds(), other.submit(pauses.seconds).result()
        ran_before = pauses.collected(), other.submit(pauses.collected).result()
        del garbage
        start = time.thread_time()
        gc.collect()
        took = time.thread_time() - start
        after = pauses.seconds(), other.submit(pauses.seconds).result()
        ran_after = pauses.collected(), other.submit(pauses.collected).result()
        waited = pauses.cpu_wait() - waited_before  # a busy machine's share, read around both
    assert took > 0.005
    # this thread's: the collection, and whatever the machine held it meanwhile
    assert took * 0.9 <= after[0] - before[0] <= took + waited + 0.05
    assert after[1] - before[1] >= took * 0.9  # the other's: the collection held it up too
    # in CPU time, only the collecting thread's: it ran there, the other just waited
    assert took * 0.9 <= ran_after[0] - ran_before[0] <= took
    assert ran_after[1] == ran_before[1]


def test_a_thread_that_asked_leaves_no_file_open_when_it_ends() -> None:
    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_files()
    for _ in range(20):
        thread = threading.Thread(target=pauses.seconds)
        thread.start()
        thread.join()
    assert open_files() == before
