"""A CPU the test thread shares with a busy process: the machine's pauses, made on purpose."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest


@pytest.fixture
def shared_cpu() -> Iterator[int]:
    """A CPU with a busy process pinned to it: a thread pinned there too (os.sched_setaffinity(0,
    {cpu}) in that thread) runs in turns with it, waiting for the CPU between its slices."""
    cpu = min(os.sched_getaffinity(0))
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(busy.pid, {cpu})
        time.sleep(0.05)  # it is spinning
        yield cpu
    finally:
        busy.kill()
        busy.wait()
