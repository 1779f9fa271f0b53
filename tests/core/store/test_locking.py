"""The writers' lock: flock and the soft lease, a stale or recordless marker, and what store_busy names."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelswap.core.errors import InvalidInput, StoreBusy
from modelswap.core.store.locking import SOFT_LOCK_FILE, LockPolicy, hold
from modelswap.core.store.store import Store
from modelswap.core.store.verify import verify_store
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
from modelswap.core.store.locking import LockPolicy, hold
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


def soft_store(store: Store, *, stale: float = 1.0, timeout: float = 5.0) -> Store:
    """Another writer of ``store``'s root, with the soft lock."""
    return Store(store.root, clock=store.clock, lock_kind="soft", lock_stale_after=stale, lock_timeout=timeout)


@pytest.mark.parametrize("content", [b"", b"\xff\xfe not a record"], ids=["empty", "garbage"])
def test_a_soft_lock_marker_without_a_record_is_broken_after_the_stale_time_and_the_writer_proceeds(
    iris_pair: tuple[Store, str, str], caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    store, a, b = iris_pair
    marker = store.paths("iris").dir / SOFT_LOCK_FILE
    marker.write_bytes(content)  # what a writer killed between creating the marker and writing its record leaves
    with caplog.at_level(logging.WARNING, logger="modelswap.core.store.locking"):
        soft_store(store).deploy("iris", b)
    assert store.current("iris") == b
    assert not marker.exists()
    [record] = [r for r in caplog.records if r.name == "modelswap.core.store.locking"]
    assert str(marker) in record.getMessage() and "broke" in record.getMessage()


def test_the_issue_repro_an_empty_marker_no_longer_wedges_deploy(iris_pair: tuple[Store, str, str]) -> None:
    store, a, b = iris_pair
    marker = store.paths("iris").dir / SOFT_LOCK_FILE
    marker.touch()
    env = {"MODELSWAP_LOCK": "soft", "MODELSWAP_LOCK_STALE_SECONDS": "1", "MODELSWAP_LOCK_TIMEOUT": "5"}
    result = subprocess.run(
        [sys.executable, "-m", "modelswap", "--root", str(store.root), "deploy", "iris", b],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    assert str(marker) in result.stderr  # the break is logged, naming the marker
    assert store.current("iris") == b and not marker.exists()


HOLD_FLOCK = """
import sys, time
from pathlib import Path
from modelswap.core.store.locking import LockPolicy, hold
with hold(Path(sys.argv[1]), LockPolicy("flock", timeout=5)):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("kind", ["flock", "soft"])
def test_store_busy_names_the_lock_file_its_holder_and_age(tmp_path: Path, kind: str) -> None:
    lock = tmp_path / ".lock"
    script = HOLD_FLOCK if kind == "flock" else HOLD_AND_WAIT
    holder = subprocess.Popen([sys.executable, "-c", script, str(lock)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreBusy) as busy:
            with hold(lock, LockPolicy(kind, timeout=0.1, stale_after=1.0)):
                pass
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    message = busy.value.message
    target = lock if kind == "flock" else tmp_path / SOFT_LOCK_FILE
    assert str(target) in message, message
    assert f"pid {holder.pid}" in message, message
    if kind == "soft":  # the marker's record names the host; its mtime gives the age of its last refresh
        assert socket.gethostname() in message and re.search(r"refreshed \d+(\.\d+)?s ago", message), message


def test_verify_names_a_stale_soft_lock_marker_and_repair_breaks_it(iris_pair: tuple[Store, str, str]) -> None:
    store, a, b = iris_pair
    marker = store.paths("iris").dir / SOFT_LOCK_FILE
    marker.touch()
    hour_ago = time.time() - 3600
    os.utime(marker, (hour_ago, hour_ago))
    soft = soft_store(store)
    [problem] = verify_store(soft).problems
    assert problem.kind == "leftover" and not problem.repaired
    assert str(marker) in problem.message and "no record" in problem.message, problem.message
    report = verify_store(soft, repair=True)
    assert [(p.kind, p.repaired) for p in report.problems] == [("leftover", True)] and report.ok
    assert not marker.exists()
    assert verify_store(soft).problems == ()


def test_verify_repair_on_the_command_line_clears_a_stale_marker(iris_pair: tuple[Store, str, str]) -> None:
    store, a, b = iris_pair
    marker = store.paths("iris").dir / SOFT_LOCK_FILE
    marker.touch()
    env = {**os.environ, "MODELSWAP_LOCK": "soft", "MODELSWAP_LOCK_STALE_SECONDS": "1", "MODELSWAP_LOCK_TIMEOUT": "5"}
    argv = [sys.executable, "-m", "modelswap", "--root", str(store.root), "verify", "--repair"]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert SOFT_LOCK_FILE in result.stdout and "repaired" in result.stdout, result.stdout
    assert not marker.exists()


def test_verify_does_not_report_a_live_holders_marker(iris_pair: tuple[Store, str, str]) -> None:
    store, a, b = iris_pair
    lock = store.paths("iris").lock
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_WAIT, str(lock)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert verify_store(soft_store(store)).problems == ()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
