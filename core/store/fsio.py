"""Durable filesystem writes: fsync, atomic JSON replace, atomic relative symlink swap.

Every replace goes through a uniquely named temporary entry *beside* its
destination (same directory, so same filesystem, so ``rename`` is atomic);
two writers never collide on a temp name and a crash leaves only an entry
whose name contains ``.tmp-``, which ``verify --repair`` removes.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from modelswap.core.errors import InvalidInput, UnsafePath
from modelswap.core.store.layout import TMP_MARK

T = TypeVar("T")


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (new names, renames) to stable storage."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_name_beside(path: Path) -> Path:
    return path.with_name(f"{path.name}{TMP_MARK}{secrets.token_hex(6)}")


def write_bytes_durable(path: Path, data: bytes) -> None:
    """Write a new file and fsync it (the directory entry is the caller's to sync)."""
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def append_whole(fd: int, data: bytes) -> None:
    """Write all of ``data`` at the end of the file open with O_APPEND on ``fd``: a short
    write is continued, and a write that fails (a full disk) cuts the file back to its
    size before and raises, so no torn line stays for the next one to be glued onto."""
    start = os.lseek(fd, 0, os.SEEK_END)
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        try:
            os.ftruncate(fd, start)
        except OSError:
            pass
        raise


def dumps_json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically: readers see the old or the new file.

    1. write a unique temp file beside ``path`` and fsync it;
    2. ``os.replace`` it onto ``path``;
    3. fsync the directory so the rename survives a power cut.
    ``durable=False`` skips the fsyncs (heartbeats: losing one is harmless).
    Caller holds whatever lock orders writers of ``path``.
    """
    tmp = tmp_name_beside(path)
    try:
        if durable:
            write_bytes_durable(tmp, data)  # 1
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)  # 2
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)  # 3


def atomic_write_json(path: Path, value: Any, *, durable: bool = True) -> None:
    atomic_write_bytes(path, dumps_json(value), durable=durable)


def write_then(path: Path, value: Any, then: Callable[[], Any]) -> None:
    """Replace ``path`` with ``value`` (JSON), then run ``then``; if ``then`` raises,
    ``path`` is put back as it was (or removed) and the error raised: two writes that
    succeed or fail together, for a caller that journals them as one change."""
    try:
        before: bytes | None = read_regular(path)
    except FileNotFoundError:
        before = None
    atomic_write_json(path, value)
    try:
        then()
    except BaseException:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            atomic_write_bytes(path, before)
        raise


def atomic_symlink(link: Path, target: str, *, durable: bool = True) -> None:
    """Point ``link`` at the relative ``target`` atomically (the Kubernetes ``..data`` swap).

    1. create a symlink with a unique temp name beside ``link``;
    2. ``os.replace`` it onto ``link`` (rename(2) replaces a symlink atomically:
       every reader resolves either the old or the new target, never nothing);
    3. fsync the directory; ``durable=False`` leaves that to a caller that is about
       to fsync the same directory anyway.
    Caller holds the store lock.
    """
    tmp = temp_symlink(link, target)  # 1
    try:
        os.replace(tmp, link)  # 2
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(link.parent)  # 3


def unlink_durable(path: Path) -> None:
    """Remove ``path`` (a file, or a link itself) and fsync its directory."""
    os.unlink(path)
    fsync_dir(path.parent)


def temp_symlink(link: Path, target: str) -> Path:
    """A uniquely named symlink to the relative ``target`` beside ``link``: the first half
    of a swap, made before anything is committed (it is the step that needs free space;
    the rename that completes the swap needs none)."""
    if os.path.isabs(target):
        raise ValueError(f"symlink target must be relative, got {target!r}")
    tmp = tmp_name_beside(link)
    os.symlink(target, tmp)
    return tmp


def read_link(link: Path) -> str | None:
    """The target a symlink holds, or None when there is no link."""
    try:
        return os.readlink(link)
    except FileNotFoundError:
        return None
    except OSError as exc:
        # EINVAL: the entry exists but is not a symlink; report it as absent
        # so callers treat the model as having no live version.
        if exc.errno == 22:
            return None
        raise


def read_regular(path: Path) -> bytes:
    """A regular file's bytes, never through a symlink (UnsafePath if ``path`` is one).
    Store files are read this way so a link planted in the store cannot expose a file
    outside the root. FileNotFoundError as usual when absent."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(f"{path} is a symlink; modelswap never follows links inside the store") from exc
        raise
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def refuse_link(path: Path) -> Path:
    """``path`` if it is not a symlink (a directory a version or model lives in)."""
    if path.is_symlink():
        raise UnsafePath(f"{path} is a symlink; modelswap never follows links inside the store")
    return path


def read_json_file(path: Path) -> Any:
    return orjson.loads(read_regular(path))


def read_control(path: Path, parse: Callable[[Any], T], remedy: str) -> T | None:
    """A control file (``abtest.json``, ``shadow.json``, ``rollout.json``, ``watch.json``)
    as ``parse`` reads its JSON, or None when absent. A symlink or a damaged file raises
    InvalidInput naming it and saying ``remedy`` (how to get rid of it)."""
    try:
        raw = read_regular(path)
    except FileNotFoundError:
        return None
    except UnsafePath as exc:
        raise InvalidInput(f"{exc.message}; {remedy}") from exc
    try:
        return parse(orjson.loads(raw))
    except (orjson.JSONDecodeError, InvalidInput, KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"{path} is damaged ({exc}); {remedy}") from exc


def fresh_process_files(directory: Path, *, stale_before: float) -> list[dict[str, Any]]:
    """The JSON state files serving processes keep in ``directory`` (one each, a ``time``
    field refreshed as they run), those written since ``stale_before``; older ones are
    removed (their process is gone). Unreadable, half-written and malformed files are
    passed over."""
    try:
        entries = [e for e in directory.iterdir() if e.suffix == ".json" and TMP_MARK not in e.name]
    except FileNotFoundError:
        return []
    fresh = []
    for entry in entries:
        try:
            data = orjson.loads(read_regular(entry))
        except (FileNotFoundError, orjson.JSONDecodeError, UnsafePath):
            continue
        if not isinstance(data, dict) or not isinstance(data.get("time"), (int, float)):
            continue
        if data["time"] < stale_before:
            entry.unlink(missing_ok=True)
            continue
        fresh.append(data)
    return fresh
