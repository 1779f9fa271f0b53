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
holder); a holder on this host whose process is gone is taken over at once.
A waiter therefore waits at least ``stale_after`` before giving up.
All writers of one store must use the same kind and the same ``stale_after``.

A marker without a record. A writer creates the marker exclusively and writes its
record (pid, host, lease) into it right after; one killed between the two leaves an
empty marker, which filelock never breaks (it takes it for a holder from before
filelock 3.22, which writes none). Here a waiter breaks an empty marker, or one it
cannot open, once it has seen it unchanged (same inode, size, mtime and ctime) for
``stale_after`` seconds of its own monotonic clock: the rule filelock applies to a
lease that stopped being refreshed. The marker's mtime is not used for this: it comes
from the writer's or the file server's clock, and skew between hosts could make a
marker created a moment ago look old, breaking a live writer in the middle of writing
its record. A live writer changes the marker microseconds after creating it; to lose
its lock to this rule it would have to be stopped for ``stale_after`` in between, the
same pause that loses a lease holder its lock. A marker holding something that is not a
record is broken by filelock itself after 2 s unchanged. Every break (of a dead holder's
marker too) is logged as a warning naming the marker, its holder and its age, and passed
to ``hold``'s ``on_break``; ``StoreBusy`` names the same.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import filelock
from filelock._soft import parse_marker  # not re-exported at the top; its record type is

from modelswap.core.errors import InvalidInput, StoreBusy

logger = logging.getLogger(__name__)

LOCK_KINDS = ("flock", "soft")
SOFT_LOCK_FILE = ".softlock"
MAX_RECORD = 1024  # filelock writes and reads at most this many bytes of record

# what a soft-lock marker holds
RECORD = "record"  # filelock's owner record: pid, host, lease
EMPTY = "empty"  # nothing: its writer died between creating it and writing its record
UNREADABLE = "unreadable"  # it cannot be opened or read
GARBAGE = "garbage"  # something that is not a record (filelock breaks it after 2 s unchanged)


@dataclass(frozen=True)
class LockPolicy:
    kind: str = "flock"
    timeout: float = 30.0
    stale_after: float = 60.0

    def __post_init__(self) -> None:
        if self.kind not in LOCK_KINDS:
            raise InvalidInput(f"MODELSWAP_LOCK={self.kind!r}: expected one of {', '.join(LOCK_KINDS)}")


def soft_marker(lock_file: Path) -> Path:
    """The soft lock's marker for the lock named by ``lock_file`` (``.lock`` -> ``.softlock``)."""
    return lock_file.with_name(SOFT_LOCK_FILE if lock_file.name == ".lock" else lock_file.name + ".soft")


@dataclass(frozen=True)
class Marker:
    """A soft-lock marker as one reader saw it."""

    path: Path
    stat: os.stat_result
    state: str  # RECORD, EMPTY, UNREADABLE or GARBAGE
    owner: filelock.OwnerRecord | None = None

    @property
    def age(self) -> float:
        """Seconds since the marker last changed (a holder's refresh changes it), by its mtime
        and this host's clock."""
        return max(0.0, time.time() - self.stat.st_mtime)

    @property
    def recordless(self) -> bool:
        """Empty or unreadable: nothing says who holds it (broken by this module's rule)."""
        return self.state in (EMPTY, UNREADABLE)

    def holder(self) -> str:
        owner = self.owner
        if owner is not None:
            lease = f", lease {owner.lease_duration:g}s" if owner.lease_duration is not None else ""
            return f"pid {owner.pid} on {owner.hostname}{lease}"
        return {
            EMPTY: "no record (empty: its writer died between creating it and writing its record)",
            UNREADABLE: "no record this process can read",
        }.get(self.state, "no owner record (its content is not one)")

    def describe(self) -> str:
        changed = "refreshed" if self.owner is not None else "modified"
        return f"{self.path}: {self.holder()}; {changed} {self.age:.1f}s ago"


@dataclass(frozen=True)
class BrokenLock:
    """A marker a waiter broke to take the lock; ``unchanged``: for how long of this wait
    (its monotonic clock) the marker had not changed (0 for a dead holder on this host)."""

    marker: Marker
    unchanged: float

    def describe(self) -> str:
        return f"{self.marker.describe()}; unchanged for {self.unchanged:.1f}s of the wait"


def read_marker(path: Path) -> Marker | None:
    """The marker at ``path``, or None when there is none (or it cannot even be looked at)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return Marker(path, st, GARBAGE)
    if st.st_size == 0:
        return Marker(path, st, EMPTY)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError:
        return Marker(path, st, UNREADABLE)
    try:
        st = os.fstat(fd)
        data = os.read(fd, MAX_RECORD + 1)
    except OSError:
        return Marker(path, st, UNREADABLE)
    finally:
        os.close(fd)
    if not data:
        return Marker(path, st, EMPTY)
    try:
        owner = parse_marker(data.decode()) if len(data) <= MAX_RECORD else None
    except UnicodeDecodeError:
        owner = None
    return Marker(path, st, RECORD if owner is not None else GARBAGE, owner)


def _identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


@contextmanager
def _pinned(path: Path) -> Iterator[int | None]:
    """The inode number at ``path``, held open (without reading it) so it cannot be reused
    while a break checks it; None where it cannot be pinned (as filelock does)."""
    try:
        fd = os.open(path, getattr(os, "O_PATH", os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)) | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise
    except OSError:
        yield None
        return
    try:
        yield os.fstat(fd).st_ino
    finally:
        os.close(fd)


class _Lease(filelock.SoftFileLease):
    """SoftFileLease that also breaks an empty or unreadable marker (see the module's
    docstring) and remembers each marker it broke."""

    def __init__(self, lock_file: Path, *, lease_duration: float, timeout: float) -> None:
        super().__init__(lock_file, lease_duration=lease_duration, timeout=timeout)
        self.broken: list[BrokenLock] = []
        self._seen: tuple[tuple[int, int, int, int, int], float] | None = None

    def _try_break_stale_lock(self) -> None:
        """Called by filelock on each poll that finds the marker taken."""
        seen = read_marker(Path(self.lock_file))
        unchanged = self._unchanged_for(seen)
        super()._try_break_stale_lock()  # a dead holder's or an expired lease's marker; garbage
        if seen is None:
            return
        if not self.is_locked and seen.recordless and unchanged >= self.lease_duration:
            self._take_over_recordless(seen)
        if self.is_locked:
            self.broken.append(BrokenLock(seen, unchanged))

    def _unchanged_for(self, seen: Marker | None) -> float:
        now = time.monotonic()
        key = _identity(seen.stat) if seen is not None else None
        if key is None or self._seen is None or self._seen[0] != key:
            self._seen = (key, now) if key is not None else None
            return 0.0
        return now - self._seen[1]

    def _take_over_recordless(self, seen: Marker) -> None:
        take_over = getattr(self, "_take_over", None)  # filelock's own exchange of a stale marker for ours
        if take_over is None:  # a filelock without it: the marker stays, StoreBusy names it
            return
        with suppress(OSError), _pinned(seen.path) as pinned:
            if pinned not in (None, seen.stat.st_ino):
                return  # replaced since it was read
            take_over(seen.stat, None)  # re-checks inode and mtime before exchanging


@contextmanager
def hold(
    lock_file: Path, policy: LockPolicy, *, on_break: Callable[[BrokenLock], None] | None = None
) -> Iterator[None]:
    """Hold the lock named by ``lock_file`` (its directory must exist); StoreBusy on timeout.
    A stale soft-lock marker broken on the way is logged and passed to ``on_break``."""
    lock: filelock.BaseFileLock
    if policy.kind == "soft":
        target = soft_marker(lock_file)
        # wait long enough to see a dead holder's lease expire
        timeout = max(policy.timeout, policy.stale_after * 1.5)
        lock = _Lease(target, lease_duration=policy.stale_after, timeout=timeout)
    else:
        target, timeout = lock_file, policy.timeout
        lock = filelock.FileLock(target, timeout=timeout, preserve_lock_file=True)
    try:
        lock.acquire()
    except filelock.Timeout as exc:
        held = f"another writer holds the {lock_file.parent.name} lock ({_holder(target, policy)})"
        raise StoreBusy(f"{held} (waited {timeout:g}s); try again") from exc
    except filelock.LeaseSettingsMismatch as exc:  # another writer runs with other lease settings
        raise InvalidInput(
            f"the {lock_file.parent.name} lock is held with other MODELSWAP_LOCK_STALE_SECONDS than this process's "
            f"({policy.stale_after:g}s): every writer of a store must use the same soft-lock settings ({exc})"
        ) from exc
    try:
        for broken in lock.broken if isinstance(lock, _Lease) else ():
            logger.warning("broke the stale soft-lock marker %s", broken.describe())
            if on_break is not None:
                on_break(broken)
        yield
    finally:
        lock.release()


def _holder(target: Path, policy: LockPolicy) -> str:
    """Who holds the lock at ``target``, as far as this process can tell."""
    if policy.kind == "soft":
        marker = read_marker(target)
        return marker.describe() if marker is not None else f"{target}: gone now, released as the wait ended"
    pids = flock_holders(target)
    if pids:
        return f"{target}: pid {', '.join(map(str, pids))} on this host"
    return f"{target}: held by a process this host cannot see (another host or container)"


def flock_holders(path: Path) -> list[int]:
    """The pids holding an flock on ``path``, from Linux's /proc/locks (empty elsewhere, and
    for a holder on another host or in another pid namespace)."""
    try:
        st = os.stat(path)
        table = Path("/proc/locks").read_text()
    except OSError:
        return []
    pids = []
    for line in table.splitlines():  # "1: FLOCK  ADVISORY  WRITE 8135 fe:00:2146374 0 EOF"
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK":  # "->" lines are waiters
            continue
        major, minor, inode = (fields[5].split(":") + ["", "", ""])[:3]
        try:
            same = (int(major, 16), int(minor, 16), int(inode)) == (
                os.major(st.st_dev),
                os.minor(st.st_dev),
                st.st_ino,
            )
            pid = int(fields[4])
        except ValueError:
            continue
        if same and pid > 0 and pid not in pids:  # 0: a holder in a pid namespace this one cannot see
            pids.append(pid)
    return pids
