"""``history.jsonl``: the append-only, fsynced journal of every change to a model.

One JSON object per line: publishes (with the new version's record), deploys,
rollbacks, canary, alias, delete, gc and repair events, each with time, actor, from, to,
reason and details. The history a user reads leaves the publishes out. A writer appends its entry
*before* the change takes effect (the journal is the commit point) and, if the change
then fails, truncates the file back to where it was, so a write that reports failure
leaves no trace and one that reports success is always in history. A torn last line
(a crash mid-append) is ignored by readers and cut off by the next writer or
``verify --repair``. Readers walk the file backwards from its end, so the newest
entries, a page of history, or the last live version cost O(what is read).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from modelswap.core.errors import UnsafePath
from modelswap.core.store.fsio import append_whole, atomic_write_bytes, fsync_dir

logger = logging.getLogger(__name__)

# Actions. Those in LIVE_ACTIONS moved `current` to their `to` version.
DEPLOY = "deploy"
ROLLBACK = "rollback"
PROMOTE = "canary_promote"
REPAIR_LIVE = "repair_current"
CANARY_START = "canary_start"
CANARY_STOP = "canary_stop"
CANARY_ABORT = "canary_abort"
DELETE = "delete"
GC = "gc"
REPAIR = "repair"
PUBLISH = "publish"  # carries the new version's index record; not shown as deploy history
SHADOW_START = "shadow_start"
SHADOW_STOP = "shadow_stop"
ROLLOUT_START = "rollout_start"  # writes abtest.json at the first step's fraction
ROLLOUT_STEP = "rollout_step"  # a step passed: abtest.json at the next step's fraction
ROLLOUT_HOLD = "rollout_hold"  # too little traffic to judge: the step is held
ROLLOUT_PAUSE = "rollout_pause"
ROLLOUT_RESUME = "rollout_resume"
ROLLOUT_ABORT = "rollout_abort"  # a gate failed, max_hold ran out, or a person aborted: canary removed
WATCH_PASS = "watch_pass"
WATCH_RESET = "watch_reset"
POLICY_SET = "policy_set"  # policy.json written (details: the policy)
POLICY_CLEAR = "policy_clear"  # policy.json removed
POLICY_STAGE = "policy_stage"  # a candidate entered a stage of its model's policy (details: stage, plan)
POLICY_PASS = "policy_pass"  # a stage's verdict was pass (details: stage, figures)
POLICY_REJECT = "policy_reject"  # a stage failed: the candidate (`to`) is marked rejected
POLICY_SUPERSEDE = "policy_supersede"  # a newer publish (`to`) stopped the candidate in flight (`from`)
ALERT_RETRAIN = "alert_retrain"  # an Alertmanager alert started the model's retrain job (details: the alert)
SCORE = "score"  # a batch job scored a file with `to`: details say which file, how many rows, by whom
LIVE_ACTIONS = frozenset({DEPLOY, ROLLBACK, PROMOTE, REPAIR_LIVE})
NOT_SHOWN = frozenset({PUBLISH})
CANARY_STARTS = frozenset({CANARY_START, ROLLOUT_START, ROLLOUT_STEP})
CANARY_ENDS = frozenset({CANARY_STOP, CANARY_ABORT, PROMOTE, ROLLOUT_ABORT})
# A deploy or rollback to the canary's own version ends the test too: its entry says so in
# details["canary_ended"] (see canary_event).
BLOCK = 1 << 16


@dataclass(frozen=True)
class HistoryEntry:
    time: str
    action: str
    actor: str
    from_version: str | None
    to_version: str | None
    reason: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "time": self.time,
            "action": self.action,
            "actor": self.actor,
            "from": self.from_version,
            "to": self.to_version,
            "reason": self.reason,
        }
        if self.details:
            data["details"] = dict(self.details)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HistoryEntry:
        return cls(
            time=str(data.get("time", "")),
            action=str(data.get("action", "")),
            actor=str(data.get("actor", "")),
            from_version=data.get("from"),
            to_version=data.get("to"),
            reason=str(data.get("reason") or ""),
            details=dict(data.get("details") or {}),
        )


def canary_event(entry: HistoryEntry) -> tuple[str, str | None] | None:
    """("start", version) when ``entry`` started (or stepped) a canary on ``version``,
    ("end", version) when it ended the canary on ``version``, None when it did neither.

    Ends are a stop, an abort, a rollout's abort (their ``from`` is the canary), a promote
    (its ``to`` is the canary), and a deploy or rollback to the canary's version (named in
    ``details["canary_ended"]``).
    """
    if entry.action in CANARY_STARTS:
        return "start", entry.to_version
    if entry.action == PROMOTE:
        return "end", entry.to_version
    if entry.action in CANARY_ENDS:
        return "end", entry.from_version
    if entry.action in LIVE_ACTIONS and entry.details.get("canary_ended"):
        return "end", str(entry.details["canary_ended"])
    return None


def _open(path: Path) -> BinaryIO:
    """The journal for reading, never through a symlink."""
    try:
        return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(f"{path} is a symlink; modelswap never follows links inside the store") from exc
        raise


def size(path: Path) -> int:
    """Bytes of complete entries (a torn last line does not count)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return 0
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath(f"{path} is a symlink; modelswap never follows links inside the store")
    end = st.st_size
    if end == 0:
        return 0
    with _open(path) as handle:
        handle.seek(end - 1)
        if handle.read(1) == b"\n":
            return end
    return _last_newline(path, end)


def _last_newline(path: Path, end: int) -> int:
    """Offset just after the last newline before ``end`` (0 if none)."""
    with _open(path) as handle:
        position = end
        while position > 0:
            start = max(0, position - BLOCK)
            handle.seek(start)
            chunk = handle.read(position - start)
            found = chunk.rfind(b"\n")
            if found >= 0:
                return start + found + 1
            position = start
    return 0


def cut_torn_tail(path: Path) -> bool:
    """Truncate a torn last line (caller holds the store lock); True if it cut one."""
    try:
        end = path.stat().st_size
    except FileNotFoundError:
        return False
    whole = size(path)
    if whole == end:
        return False
    os.truncate(path, whole)
    logger.warning("%s: cut a torn last entry (%d bytes) left by an interrupted write", path, end - whole)
    return True


@contextmanager
def journal(path: Path, entry: HistoryEntry) -> Iterator[None]:
    """Append ``entry`` durably, then run the block that makes it true.

    1. cut a torn tail, append the entry with O_APPEND and fsync the file (the commit
       point; on a new file also fsync the directory);
    2. run the block (the symlink swap, the abtest.json write, the renames to trash);
    3. if the block raises, truncate the file back to its size before step 1 and
       re-raise: the change did not happen, so history must not say it did.
    A crash between 1 and the end of 2 leaves history ahead of the store; ``verify``
    finds every such case and ``--repair`` completes or records it. Caller holds the lock.
    """
    cut_torn_tail(path)
    created = not path.exists()
    before = size(path)
    line = orjson.dumps(entry.to_dict()) + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        try:
            append_whole(fd, line)  # 1: whole, or not at all (disk full mid-write)
            os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, before)  # nor a line that did not reach the disk
            raise
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)
    try:
        yield  # 2
    except BaseException:
        os.truncate(path, before)  # 3
        raise


def append(path: Path, entry: HistoryEntry) -> None:
    """Record an entry whose change has already happened (repairs). Caller holds the lock."""
    with journal(path, entry):
        pass


def read_from(path: Path, offset: int = 0) -> list[tuple[int, HistoryEntry]]:
    """(end offset, entry) of every complete entry after byte ``offset``, oldest first."""
    end = size(path)
    if end <= offset:
        return []
    with _open(path) as handle:
        start = max(0, offset - 1)  # the byte before: a newline when offset starts an entry
        handle.seek(start)
        data = handle.read(end - start)
    lines = data.split(b"\n")[:-1]
    if offset > 0:
        # An offset inside a line (an index written against a journal since rewritten)
        # must not turn half a line into an entry: resume at the next whole one.
        position = start + len(lines[0]) + 1
        lines = lines[1:]
    else:
        position = 0
    entries = []
    for raw in lines:
        position += len(raw) + 1
        entry = _parse(raw)
        if entry is not None:
            entries.append((position, entry))
    return entries


def newest_first(path: Path, before: int | None = None) -> Iterator[tuple[int, HistoryEntry]]:
    """(start offset, entry) from the newest entry backwards; ``before`` (a start offset
    this function yielded: a page cursor) resumes the walk just before that entry.
    Reads the file in blocks from its end, so a page costs what it reads."""
    end = size(path) if before is None else min(before, size(path))
    if end <= 0:
        return
    with _open(path) as handle:
        position, carry = end, b""
        while True:
            start = max(0, position - BLOCK)
            handle.seek(start)
            pieces = (handle.read(position - start) + carry).split(b"\n")
            offsets, cursor = [], start
            for piece in pieces:
                offsets.append(cursor)
                cursor += len(piece) + 1
            # The first piece of a block that does not start the file began in the block
            # before it: carry it over to be completed by the next read.
            first = 1 if start > 0 else 0
            carry = pieces[0] if start > 0 else b""
            for line_start, piece in reversed(list(zip(offsets[first:], pieces[first:], strict=True))):
                entry = _parse(piece)
                if entry is not None:
                    yield line_start, entry
            if start == 0:
                return
            position = start


def _parse(raw: bytes) -> HistoryEntry | None:
    if not raw.strip():
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        logger.warning("skipping a damaged history line: %r", raw[:80])
        return None
    return HistoryEntry.from_dict(data) if isinstance(data, dict) else None


def live_sequence(path: Path) -> Iterator[str]:
    """Versions that were made live, newest first (one per live-moving entry)."""
    for _, entry in newest_first(path):
        if entry.action in LIVE_ACTIONS and entry.to_version:
            yield entry.to_version


def last(path: Path, actions: frozenset[str] | None = None) -> HistoryEntry | None:
    """The newest entry (of one of ``actions``, if given)."""
    for _, entry in newest_first(path):
        if actions is None or entry.action in actions:
            return entry
    return None


def write_all(path: Path, entries: list[HistoryEntry]) -> None:
    """Replace the whole journal (migration from a registry that kept history inline)."""

    atomic_write_bytes(path, b"".join(orjson.dumps(e.to_dict()) + b"\n" for e in entries))
