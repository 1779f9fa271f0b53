"""A model's worker threads, and the hand-off of one call to them from the event loop.

Each served model gets its own threads (``ModelThreads``: the stable and the canary
variant can compute at once), fed by one ``queue.SimpleQueue``. A call is a ``Job``: the
event loop's thread puts it on the queue (one C-level put that wakes one thread) and then
waits for it, blocked on the job's own lock, for up to ``hand_off_s``; the thread that
computed it releases that lock. A fast call's answer so comes back with one thread switch
each way and no trip through the event loop, and no part of it takes a Python-level
condition variable (concurrent.futures' Future and ThreadPoolExecutor take several per
call). A call still running when the hand-off ends is awaited: its job then settles an
asyncio future through ``call_soon_threadsafe`` when it finishes.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any


class Job:
    """One call handed to a model's threads; settled once, by the thread that ran it."""

    __slots__ = ("fn", "args", "result", "error", "_done", "_waiter")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn, self.args = fn, args
        self.result: Any = None
        self.error: BaseException | None = None
        self._done = threading.Lock()
        self._done.acquire()  # released when settled
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]] | None = None

    def run(self) -> None:
        try:
            self.result = self.fn(*self.args)
        except StopIteration as exc:  # an asyncio future cannot take it (TypeError): the waiter would hang
            self.error = RuntimeError(f"the call raised StopIteration: {exc}")
        except BaseException as exc:  # handed to whoever waits, as a Future would
            self.error = exc
        self._settle()

    def cancel(self) -> None:
        """Settle a job no thread will run (the threads are closing)."""
        self.error = asyncio.CancelledError("the model's threads are closing")
        self._settle()

    def _settle(self) -> None:
        """1. the answer is set (run); 2. the done lock is released; 3. a waiter registered
        by then is told through its loop. Against :meth:`wait`'s late path (a. register,
        b. try the lock): whatever the interleaving, the waiter gets the answer once."""
        self._done.release()  # 2
        waiter = self._waiter  # 3
        if waiter is not None:
            loop, future = waiter
            try:
                loop.call_soon_threadsafe(_deliver, future, self)
            except RuntimeError:  # the loop closed meanwhile: nobody waits for this answer any more
                pass

    def answer(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result

    async def wait(self, hand_off_s: float) -> Any:
        """The job's answer: waited for blocked up to ``hand_off_s``, then awaited."""
        if hand_off_s > 0 and self._done.acquire(timeout=hand_off_s):
            return self.answer()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiter = (asyncio.get_running_loop(), future)  # a
        if self._done.acquire(blocking=False):  # b: settled already (told or not: a told loop finds it done)
            future.cancel()
            return self.answer()
        return await future


def _deliver(future: asyncio.Future[Any], job: Job) -> None:
    if future.done():
        return  # its awaiting request went away (timed out, cancelled)
    if job.error is not None:
        future.set_exception(job.error)
    else:
        future.set_result(job.result)


class ModelThreads:
    """``count`` threads that run the jobs put on one queue, in order of arrival."""

    def __init__(self, count: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(count)]
        self._closed = False
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Job:
        if self._closed:
            raise RuntimeError("the model's threads are closed")
        job = Job(fn, args)
        self._jobs.put(job)
        return job

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            job.run()

    def close(self) -> None:
        """Take no more jobs, cancel the ones still queued, and join the threads (a call
        still computing is waited for: a thread cannot be interrupted)."""
        self._closed = True
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.cancel()
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()


async def compute(threads: ModelThreads, fn: Callable[..., Any], *args: Any, hand_off_s: float) -> Any:
    """``fn(*args)`` on one of ``threads``; the calling (event loop) thread waits for it,
    blocked, up to ``hand_off_s``, then awaits it."""
    return await threads.submit(fn, *args).wait(hand_off_s)
