"""What a thread's wall-clock time holds that is not the code it ran: the machine's pauses
and the garbage collector's.

A call timed by the wall clock also counts the time its thread was ready but waiting for
a CPU (other processes on a busy node, a container's CPU quota: tens of ms) and the
collections the garbage collector made meanwhile (it runs in whichever thread allocates,
holding everyone up: a full collection takes milliseconds). Neither is the cost of the
call, nor changes with where it runs. ``seconds()`` counts both for the calling thread;
the difference of two readings in one thread is what they took of the time between.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any

_schedstat = threading.local()
# CPU seconds the collector ran, in this process; the collecting thread's CPU time when the
# current collection began (CPU time: its own pauses are cpu_wait's)
_collector = [0.0, 0.0]


def _on_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _collector[1] = time.thread_time()
    else:
        _collector[0] += time.thread_time() - _collector[1]


def seconds() -> float:
    """Seconds the calling thread was held by the machine (waiting for a CPU) plus those the
    garbage collector ran in this process, since this was first asked."""
    return cpu_wait() + _collector[0]


def cpu_wait() -> float:
    """Seconds the calling thread has spent ready to run but waiting for a CPU, from Linux's
    ``/proc/thread-self/schedstat``; 0.0 where the system does not say."""
    fd = getattr(_schedstat, "fd", None)
    if fd is None:
        if _on_collection not in gc.callbacks:
            gc.callbacks.append(_on_collection)
        try:
            fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        except OSError:
            fd = -1
        _schedstat.fd = fd  # one per thread that asks (the event loop's, the models'), kept for the process
    if fd < 0:
        return 0.0
    try:
        return int(os.pread(fd, 64, 0).split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0
