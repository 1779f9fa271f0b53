"""The prediction log: one JSON line per answered request, written off the request path.

Each serving process appends to its own ``predictions-<host>-<pid>.jsonl`` in the log
directory (local disk by default, never the model volume unless you point it there):
time, request id, model, version, variant, method, latency, and the inputs (unless
switched off for privacy) and outputs. The request path never touches the file: the
monitoring tick renders the lines of what it drained, in its paced slices
(core.monitoring.pacing), and a writer thread appends them, woken once per tick. (A
writer that rendered, woken for each slice, took the GIL from the event loop's thread
hundreds of times a second: 8.3 µs of server CPU per request at 16 connections, 2.5
now.) When the writer falls behind, whole hand-overs are dropped and counted. A file
over ``max_bytes`` is rotated (``.1`` … ``.N-1``; the oldest goes), so the log is bounded
by ``files × max_bytes`` per process.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from modelswap.core.monitoring.counts import Batch, Observation, Observed, observations, requests
from modelswap.core.store.clock import iso
from modelswap.core.store.fsio import append_whole

logger = logging.getLogger(__name__)

PREFIX = "predictions-"
MAX_QUEUED = 200_000  # requests waiting for the writer; past it (or MAX_QUEUED_BYTES) hand-overs are dropped
MAX_QUEUED_BYTES = 64 * 1024 * 1024
CHUNK = 1024  # lines per write (a join of a second's lines at once would hold the GIL ~1 ms)


def _plain(value: Any) -> Any:
    """What orjson cannot write on its own (datetimes in object arrays, numpy scalars)."""
    if isinstance(value, np.ndarray):  # an object array (strings, None): orjson writes numeric ones itself
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def _when(t: float) -> str:
    """ISO 8601 with milliseconds, formatting the date part once per second."""
    whole = int(t)
    if _second[0] != whole:
        _second[1] = iso(datetime.fromtimestamp(whole, timezone.utc))[:19]
        _second[0] = whole
    return f"{_second[1]}.{int((t - whole) * 1000):03d}Z"


def record(obs: Observation, *, inputs: bool) -> dict[str, Any]:
    line: dict[str, Any] = {
        "time": _when(obs.time),
        "request_id": obs.request_id,
        "model": obs.model,
        "version": obs.version,
        "variant": obs.variant,
        "method": obs.method,
        "latency_ms": round(1000 * obs.latency, 3),
    }
    if inputs:
        line["inputs"] = obs.rows
    line["outputs"] = obs.answer
    return line


_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def _json(value: Any) -> bytes:
    return orjson.dumps(value, default=_plain, option=_OPTIONS)


def _parts(values: Any) -> Any:
    """What a batch's rows or answer are cut from: a plain list for arrays of 64-bit floats,
    integers and booleans (one ``tolist`` per batch; orjson writes a list of them exactly
    as it writes the array), else the value itself (its slices are written as before)."""
    if isinstance(values, np.ndarray) and (
        values.dtype.kind in "iub" or (values.dtype.kind == "f" and values.dtype.itemsize == 8)
    ):
        return values.tolist()
    return values


@functools.lru_cache(maxsize=256)  # versions come and go: the recent ones
def _middle(model: str, version: str, variant: str, method: str) -> bytes:
    """What the lines of one version's requests share, between the request id and the latency."""
    return b"".join([
        b',"model":', _json(model), b',"version":', _json(version), b',"variant":', _json(variant),
        b',"method":', _json(method), b',"latency_ms":',
    ])  # fmt: skip


def render_batch(batch: Batch, *, inputs: bool) -> list[bytes]:
    """The lines of a batch's requests, byte for byte those of its observations (``record``,
    rendered as one JSON object per line), with what they share rendered once: the time
    per batch, the model, version, variant and method once per process (a batch of one,
    the usual at low concurrency, renders four values, not eight)."""
    head = b'{"time":"' + _when(batch.time).encode() + b'","request_id":'  # digits, dashes, colons: no escapes
    middle = _middle(batch.model, batch.version, batch.variant, batch.method)
    answers = _parts(batch.answer)
    rows = _parts(batch.rows) if inputs else None
    lines = []
    offset = 0
    for latency, rid, size in zip(batch.latencies, batch.request_ids, batch.sizes, strict=True):
        start, offset = offset, offset + size
        line = [head, _json(rid), middle, _json(round(1000 * latency, 3))]
        if rows is not None:
            line += [b',"inputs":', _json(rows[start:offset])]
        line += [b',"outputs":', _json(answers[start:offset]), b"}\n"]
        lines.append(b"".join(line))
    return lines


class PredictionLog:
    """One process's log: lines rendered by whoever hands requests over (``submit``: the
    monitoring tick, in its paced slices) and appended by a writer thread (a daemon;
    ``close`` flushes and joins it) when woken (``wake``: once per tick) or within a second."""

    def __init__(
        self,
        directory: Path,
        *,
        sample: float = 1.0,
        inputs: bool = True,
        max_bytes: int = 64 * 1024 * 1024,
        files: int = 10,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.sample = sample
        self.inputs = inputs
        self.max_bytes = max_bytes
        self.files = files
        self.on_drop = on_drop
        self.path = self.directory / f"{PREFIX}{socket.gethostname()}-{os.getpid()}.jsonl"
        # the rendered lines waiting for the writer, as handed over, and how many requests
        # and bytes they hold (under _queue_lock: submit and flush run in different threads)
        self._queue: list[list[bytes]] = []
        self._queued = self._queued_bytes = 0
        self._queue_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one writer at a time: the thread, or a caller's flush
        self._failed = False
        self._unwritable = False  # warned of a request JSON cannot hold

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def submit(self, observed: Sequence[Observed]) -> None:
        """Render the answered requests of ``observed`` (observations or whole batches: a
        batch is cut into its requests' lines) in the caller's thread and queue the lines.
        Rendering is most of the log's work: done here, it runs in the caller's slices and
        pauses, and the writer only appends (see the module's doc)."""
        done = [o for o in observed if o.rows is not None]
        if self.sample < 1.0:
            done = [o for item in done for o in observations(item) if random.random() < self.sample]
        if not done:
            return
        n = sum(requests(o) for o in done)
        if self._queued + n > MAX_QUEUED or self._queued_bytes > MAX_QUEUED_BYTES:
            if self.on_drop is not None:
                self.on_drop(n)
            return
        lines: list[bytes] = []
        for item in done:
            try:
                if type(item) is Batch:
                    lines += render_batch(item, inputs=self.inputs)
                else:
                    lines.append(self._render(item))  # type: ignore[arg-type]
            except Exception as exc:  # a value JSON cannot hold (an integer over 64 bits): its requests only
                n -= requests(item)
                if self.on_drop is not None:
                    self.on_drop(requests(item))
                if not self._unwritable:  # once: the drop counter tells how often
                    self._unwritable = True
                    logger.warning("prediction log: a request of %s cannot be written as JSON (%s); such "
                                   "requests are left out and counted as dropped", item.model, exc)  # fmt: skip
        if not lines:
            return
        with self._queue_lock:
            self._queue.append(lines)
            self._queued += n
            self._queued_bytes += sum(map(len, lines))

    def wake(self) -> None:
        """Have the writer append what is queued now (the tick, once it handed everything over)."""
        self._wake.set()

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def flush(self) -> None:
        """Write everything queued now, in the caller's thread."""
        with self._lock:
            with self._queue_lock:
                handed, self._queue = self._queue, []
                self._queued = self._queued_bytes = 0
            if handed:
                self._write([line for lines in handed for line in lines])

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # a bug must not end the thread: every later line would be lost
                logger.exception("prediction log %s: writing failed", self.path)
        self.flush()

    def _render(self, obs: Observation) -> bytes:
        return orjson.dumps(record(obs, inputs=self.inputs), default=_plain, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"

    def _write(self, lines: list[bytes]) -> None:
        """Append the lines, CHUNK at a time, rotating whenever the next line would take the
        file past ``max_bytes`` (a line longer than that gets a file of its own). On a
        failure (a full disk) the lines not appended are dropped and counted, and the file
        keeps whole lines only."""
        written, fd = 0, -1
        try:
            fd = self._open()
            size = os.fstat(fd).st_size
            chunk: list[bytes] = []
            for line in lines:
                if size + len(line) > self.max_bytes and size > 0:
                    written += _append(fd, chunk)
                    chunk, size = [], 0
                    closing, fd = fd, -1  # never closed twice, even when closing fails
                    os.close(closing)
                    self._rotate()
                    fd = self._open()
                elif len(chunk) >= CHUNK:
                    written += _append(fd, chunk)
                    chunk = []
                chunk.append(line)
                size += len(line)
            written += _append(fd, chunk)
            closing, fd = fd, -1
            os.close(closing)
            self._failed = False
        except OSError as exc:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
            if self.on_drop is not None and written < len(lines):
                self.on_drop(len(lines) - written)
            if not self._failed:  # one line per failure spell, not one per batch
                logger.warning("prediction log %s: %s; predictions are dropped until it works", self.path, exc)
            self._failed = True

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o640)

    def _rotate(self) -> None:
        for n in range(self.files - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if n == self.files - 1:
                older.unlink(missing_ok=True)
            newer = self.path if n == 1 else self.path.with_name(f"{self.path.name}.{n - 1}")
            if newer.exists():
                os.replace(newer, older)
        if self.files == 1:
            self.path.unlink(missing_ok=True)


def _append(fd: int, lines: list[bytes]) -> int:
    """Write all of ``lines`` and return how many (whole, or not at all: fsio.append_whole)."""
    if lines:
        append_whole(fd, b"".join(lines))
    return len(lines)


def find(directory: Path, model: str, request_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The logged lines of ``request_ids`` (any process's log in ``directory``), newest
    files first. A line is parsed only when its bytes hold one of the ids."""
    wanted = {rid for rid in request_ids}
    found: dict[str, dict[str, Any]] = {}
    try:
        files = sorted(
            (p for p in directory.iterdir() if p.name.startswith(PREFIX) and p.is_file() and not p.is_symlink()),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
    except FileNotFoundError:
        return found
    needles = {rid: orjson.dumps(rid) for rid in wanted}
    for path in files:
        if not wanted:
            break
        try:
            content = path.read_bytes()
        except OSError:
            continue
        for rid in list(wanted):
            at = content.rfind(b'"request_id":' + needles[rid])
            if at < 0:
                continue
            start = content.rfind(b"\n", 0, at) + 1
            end = content.find(b"\n", at)
            try:
                line = orjson.loads(content[start : end if end >= 0 else len(content)])
            except orjson.JSONDecodeError:
                continue
            if line.get("model") == model:
                found[rid] = line
                wanted.discard(rid)
    return found
