"""Background work paced so that the event loop's thread keeps its turns.

Counting and logging run on background threads, in pure Python, holding the GIL: a
second's requests at once kept the event loop's thread waiting in 5 ms turns (the
interpreter's switch interval) at each of its system calls, which put 40 ms into the
p99 of the requests served meanwhile. They work in slices, so the loop's thread never
waits behind more than one slice (~0.1 ms), and they are paced (:class:`Pacer`): while a
slice runs, every system call of the loop's thread may wait for it, so back-to-back
slices still halve the loop's speed for as long as the work lasts, and the requests
served then (a second's counting and logging, ~100 ms at 6,000 requests/s) made the
p99. After each slice the thread sleeps PACE times what the slice took: the same work,
spread over five times the span at a fifth of the loop's time.
"""

from __future__ import annotations

import time

PAUSE_S = 0.0002  # the shortest pause between two slices
PACE = 4.0  # a pause lasts this many times the slice before it ...
MAX_PAUSE_S = 0.002  # ... and at most this long: a slow slice still leaves the thread a third of the time


class Pacer:
    """The pauses of one background job between its slices (see PACE)."""

    def __init__(self) -> None:
        self.began = time.perf_counter()

    def __call__(self) -> None:
        """Pause after the slice that began at the last call (or when the job began)."""
        took = time.perf_counter() - self.began
        time.sleep(min(MAX_PAUSE_S, max(PAUSE_S, PACE * took)))
        self.began = time.perf_counter()
