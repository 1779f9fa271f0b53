"""What a thread's wall-clock time holds that is not the code it ran: the machine's pauses
and the garbage collector's.

A call timed by the wall clock also counts the time its thread was ready but waiting for
a CPU (other processes on a busy node, a container's CPU quota: tens of ms) and the
collections the garbage collector made meanwhile (it runs in whichever thread allocates,
holding everyone up: a full collection takes milliseconds). Neither is the cost of the
call, nor changes with where it runs. ``seconds()`` counts both for the calling thread;
the difference of two readings in one thread is what they took of the time between.
A call timed by its thread's CPU time (``time.thread_time()``) counts no wait, but still
the collections that ran in that thread: ``collected()`` counts them.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any

# CPU seconds the collector ran, in this process; the collecting thread's CPU time when the
# current collection began (CPU time: its own pauses are cpu_wait's)
_collector = [0.0, 0.0]
_threads = threading.local()  # per thread: its schedstat file, the collections it ran


def _on_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _collector[1] = time.thread_time()
    else:
        took = time.thread_time() - _collector[1]
        _collector[0] += took
        _threads.collected = getattr(_threads, "collected", 0.0) + took


gc.callbacks.append(_on_collection)  # counted from this module's import on


class _Schedstat:
    """A thread's ``/proc/thread-self/schedstat``, open while the thread lives: held only by
    that thread's slot of ``_threads``, which goes (and closes it) when the thread ends."""

    def __init__(self) -> None:
        try:
            self.fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        except OSError:  # not Linux: no figure, the wall clock stands
            self.fd = -1

    def __del__(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def seconds() -> float:
    """Seconds the calling thread was held by the machine (waiting for a CPU) plus those the
    garbage collector ran in this process."""
    return cpu_wait() + _collector[0]


def collected() -> float:
    """CPU seconds the garbage collector ran in the calling thread (the share of its own
    CPU time, ``time.thread_time()``, that was not its code's)."""
    return getattr(_threads, "collected", 0.0)


def cpu_wait() -> float:
    """Seconds the calling thread has spent ready to run but waiting for a CPU, from Linux's
    ``/proc/thread-self/schedstat``; 0.0 where the system does not say."""
    schedstat = getattr(_threads, "schedstat", None)
    if schedstat is None:
        schedstat = _threads.schedstat = _Schedstat()
    fd = schedstat.fd
    if fd < 0:
        return 0.0
    try:
        return int(os.pread(fd, 64, 0).split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0
