"""The writers' lock, chosen for the filesystem the store lives on.

``flock`` (default): filelock.FileLock, an ``flock(2)`` on ``.lock``. The kernel
drops it when the holder dies, so a crash never leaves a stale lock. On Linux
NFS clients flock is carried to the server as a POSIX lock (NFSv4, NFSv3 with
NLM), so it excludes writers on other pods on NFS, EFS and CephFS (kernel
client), unless the volume is mounted ``nolock`` or ``local_lock=flock|all``.

``soft``: filelock.SoftFileLease, an exclusively created marker file
(``.softlock``) whose holder refreshes it from a heartbeat thread; for
filesystems where flock is local to one machine (SMB/Azure Files, NFS mounted
``nolock``). A holder that crashes on another host stops refreshing, and a
waiter takes the marker once it has seen no refresh for ``stale_after``
seconds of its own monotonic clock (host clock skew cannot expire a live
holder). A waiter therefore waits at least ``stale_after`` before giving up.
All writers of one store must use the same kind and the same ``stale_after``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import filelock

from modelswap.core.errors import InvalidInput, StoreBusy

LOCK_KINDS = ("flock", "soft")
SOFT_LOCK_FILE = ".softlock"


@dataclass(frozen=True)
class LockPolicy:
    kind: str = "flock"
    timeout: float = 30.0
    stale_after: float = 60.0

    def __post_init__(self) -> None:
        if self.kind not in LOCK_KINDS:
            raise InvalidInput(f"MODELSWAP_LOCK={self.kind!r}: expected one of {', '.join(LOCK_KINDS)}")


@contextmanager
def hold(lock_file: Path, policy: LockPolicy) -> Iterator[None]:
    """Hold the lock named by ``lock_file`` (its directory must exist); StoreBusy on timeout."""
    lock: filelock.BaseFileLock
    if policy.kind == "soft":
        target = lock_file.with_name(SOFT_LOCK_FILE if lock_file.name == ".lock" else lock_file.name + ".soft")
        # wait long enough to see a dead holder's lease expire
        timeout = max(policy.timeout, policy.stale_after * 1.5)
        lock = filelock.SoftFileLease(target, lease_duration=policy.stale_after, timeout=timeout)
    else:
        target, timeout = lock_file, policy.timeout
        lock = filelock.FileLock(target, timeout=timeout, preserve_lock_file=True)
    try:
        lock.acquire()
    except filelock.Timeout as exc:
        held = f"another writer holds the {lock_file.parent.name} lock"
        raise StoreBusy(f"{held} (waited {timeout:g}s); try again") from exc
    except filelock.LeaseSettingsMismatch as exc:  # another writer runs with other lease settings
        raise InvalidInput(
            f"the {lock_file.parent.name} lock is held with other MODELSWAP_LOCK_STALE_SECONDS than this process's "
            f"({policy.stale_after:g}s): every writer of a store must use the same soft-lock settings ({exc})"
        ) from exc
    try:
        yield
    finally:
        lock.release()
