import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelswap.core.errors import InvalidInput, StoreBusy
from modelswap.core.locking import SOFT_LOCK_FILE, LockPolicy, hold
from tests.conftest import ROOT


def test_flock_excludes_a_second_holder_and_is_released(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    with hold(lock, LockPolicy("flock", timeout=5)):
        with pytest.raises(StoreBusy, match="another writer holds"):
            with hold(lock, LockPolicy("flock", timeout=0.1)):
                pass
    with hold(lock, LockPolicy("flock", timeout=0.1)):
        assert lock.exists()  # the lock file stays: deleting it would race other waiters


HOLD_AND_WAIT = """
import sys, time
from pathlib import Path
from modelswap.core.locking import LockPolicy, hold
with hold(Path(sys.argv[1]), LockPolicy("soft", timeout=5, stale_after=1.0)):
    print("held", flush=True)
    time.sleep(60)
"""


def test_soft_lock_excludes_and_is_taken_over_after_its_holder_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / SOFT_LOCK_FILE
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_WAIT, str(tmp_path / ".lock")], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert marker.exists()
        start = time.monotonic()
        with pytest.raises(StoreBusy):  # a live holder keeps its lease: the waiter gives up
            with hold(tmp_path / ".lock", LockPolicy("soft", timeout=0.1, stale_after=1.0)):
                pass
        assert time.monotonic() - start >= 1.0
        os.kill(holder.pid, signal.SIGKILL)  # the holder dies without releasing
        holder.wait()
        with hold(tmp_path / ".lock", LockPolicy("soft", timeout=0.1, stale_after=1.0)):
            assert marker.exists()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert not marker.exists()


def test_an_unknown_lock_kind_is_refused() -> None:
    with pytest.raises(InvalidInput):
        LockPolicy("nfs-magic")
