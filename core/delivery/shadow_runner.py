"""Running the shadow in one serving process, and comparing its answers with stable's.

The request path calls :meth:`ShadowRunner.offer` after stable answered: one draw and one
``deque.append`` (or a dropped count when the queue is full: shadow work never waits in
front of a client). One background thread takes what queued, predicts each shadow
version's requests in one call, compares row by row with what stable answered, and counts:
agreement and the confusion of labels (classifiers), |Δ| and relative Δ (regressors), both
latencies, the shadow's errors. An exception or a slow call of the shadow's stays in this
thread; a client only ever gets stable's answer.

Counts are per (live version, shadow version, shadow start) since this process began
shadowing, written to ``<model>/.shadow/<host>-<pid>.json`` on the monitoring flush, and
summed over every process's file by :func:`fleet_summary`: agreement is fleet-wide. The
rows and agreements are also kept per time bucket (the monitoring buckets, for as long as
monitoring keeps its counts): the shadow's agreement over time.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

import numpy as np

from modelswap.core.metrics import LATENCY_BUCKETS
from modelswap.core.monitoring import drift
from modelswap.core.monitoring.counts import LATENCY_EDGES
from modelswap.core.serving.fleet import process_id
from modelswap.core.serving.snapshot import Snapshot
from modelswap.core.store.clock import iso
from modelswap.core.store.fsio import atomic_write_json, fresh_process_files
from modelswap.core.store.layout import ModelPaths

logger = logging.getLogger(__name__)

MAX_QUEUE = 1000  # requests waiting for the shadow, per process
MAX_LABELS = 50  # distinct labels kept in the confusion (more: "other")
BUCKET_SECONDS, KEEP_SECONDS = 60.0, 3600.0  # the timeline's buckets, and how long they are kept
LINGER = 0.005  # the thread waits this long after waking, so requests pile up into one call
COMPARED = ("predict", "predict_proba", "predict_log_proba")
Key = tuple[str, str, str]  # live version, shadow version, shadow started_at


class Job(NamedTuple):
    stable: Snapshot
    shadow: Snapshot
    started_at: str
    X: np.ndarray
    answer: Any
    method: str
    latency: float


@dataclass
class Comparison:
    """What one process compared for one (live, shadow) pair: additive across processes."""

    requests: int = 0
    rows: int = 0
    agree: int = 0
    abs_delta: float = 0.0
    rel_delta: float = 0.0
    errors: int = 0
    timeouts: int = 0
    kind: str = ""  # "classifier" or "regressor", set by the first comparison
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    stable_latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    shadow_latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    timeline: dict[str, list[float]] = field(default_factory=dict)  # bucket start -> [rows, agree, abs_delta]

    def add(self, other: Mapping[str, Any]) -> None:
        for name in ("requests", "rows", "agree", "errors", "timeouts"):
            setattr(self, name, getattr(self, name) + int(other.get(name) or 0))
        self.abs_delta += float(other.get("abs_delta") or 0.0)
        self.rel_delta += float(other.get("rel_delta") or 0.0)
        self.kind = self.kind or str(other.get("kind") or "")
        for a, row in (other.get("confusion") or {}).items():
            mine = self.confusion.setdefault(str(a), {})
            for b, n in row.items():
                mine[str(b)] = mine.get(str(b), 0) + int(n)
        for name in ("stable_latency", "shadow_latency"):
            theirs = other.get(name) or []
            if len(theirs) == len(getattr(self, name)):
                setattr(self, name, [x + int(y) for x, y in zip(getattr(self, name), theirs, strict=True)])
        for start, figures in (other.get("timeline") or {}).items():
            if isinstance(figures, list) and len(figures) == 3:
                self.mark(float(start), *(float(x) for x in figures))

    def mark(self, start: float, rows: float, agree: float, abs_delta: float) -> None:
        """Add to the bucket starting at ``start`` (epoch seconds)."""
        mine = self.timeline.setdefault(repr(float(start)), [0.0, 0.0, 0.0])
        mine[0] += rows
        mine[1] += agree
        mine[2] += abs_delta

    def forget_before(self, start: float) -> None:
        for key in [k for k in self.timeline if float(k) < start]:
            del self.timeline[key]

    def to_dict(self) -> dict[str, Any]:
        """A copy (the worker thread goes on counting while it is written out)."""
        data = dict(self.__dict__)
        data["timeline"] = {start: list(figures) for start, figures in self.timeline.items()}
        return data

    def summary(self) -> dict[str, Any]:
        """The figures the API, the CLI, the console and the rollout's gate read."""
        attempted = self.requests + self.errors + self.timeouts
        stable_labels: dict[str, int] = {}
        shadow_labels: dict[str, int] = {}
        for a, row in self.confusion.items():
            for b, n in row.items():
                stable_labels[a] = stable_labels.get(a, 0) + n
                shadow_labels[b] = shadow_labels.get(b, 0) + n
        psi = None
        if self.kind == "classifier" and stable_labels and shadow_labels:
            labels = sorted(set(stable_labels) | set(shadow_labels))
            psi = drift.compare(
                [stable_labels.get(x, 0) for x in labels], [shadow_labels.get(x, 0) for x in labels], 1e-4
            )["psi"]
        return {
            "kind": self.kind or None,
            "requests": attempted,
            "compared": self.requests,
            "rows": self.rows,
            "agreement": (self.agree / self.rows) if self.rows and self.kind == "classifier" else None,
            "confusion": [
                {"stable": a, "shadow": b, "rows": n}
                for a, row in sorted(self.confusion.items())
                for b, n in sorted(row.items())
            ],
            "mean_abs_delta": (self.abs_delta / self.rows) if self.rows and self.kind == "regressor" else None,
            "mean_rel_delta": (self.rel_delta / self.rows) if self.rows and self.kind == "regressor" else None,
            "psi": psi,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "error_rate": ((self.errors + self.timeouts) / attempted) if attempted else None,
            "stable_p99_ms": _p99_ms(self.stable_latency),
            "shadow_p99_ms": _p99_ms(self.shadow_latency),
            "series": [
                {
                    "start": iso(datetime.fromtimestamp(float(start), timezone.utc)),
                    "rows": int(rows),
                    "agreement": agree / rows if rows and self.kind == "classifier" else None,
                    "mean_abs_delta": delta / rows if rows and self.kind == "regressor" else None,
                }
                for start, (rows, agree, delta) in sorted(self.timeline.items(), key=lambda item: float(item[0]))
            ],
        }


def _p99_ms(histogram: list[int]) -> float | None:
    total = sum(histogram)
    if total == 0:
        return None
    index = int(np.searchsorted(np.cumsum(histogram), math.ceil(0.99 * total)))
    edge = LATENCY_BUCKETS[index] if index < len(LATENCY_BUCKETS) else LATENCY_BUCKETS[-1] * 2
    return float(1000.0 * edge)


def labels_of(answer: Any, method: str, classes: tuple[Any, ...] | None) -> np.ndarray | None:
    values = np.asarray(answer)
    if method == "predict":
        return values if values.ndim == 1 else None
    if classes and values.ndim == 2:
        picked: np.ndarray = np.asarray(classes)[values.argmax(axis=1)]
        return picked
    return None


class ShadowRunner:
    """This process's shadow queue, its worker thread and its comparison counts."""

    def __init__(
        self,
        *,
        max_queue: int = MAX_QUEUE,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        on_drop: Callable[[str, int], None] | None = None,
        bucket_seconds: float = BUCKET_SECONDS,
        keep_seconds: float = KEEP_SECONDS,
    ) -> None:
        self.max_queue = max_queue
        self.timeout = timeout
        self.clock = clock
        self.bucket_seconds = bucket_seconds
        self.keep_seconds = keep_seconds
        self.on_drop = on_drop
        self.dropped: dict[str, int] = {}
        self._queue: deque[Job] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._counts: dict[str, dict[Key, Comparison]] = {}
        self._draw = random.random

    # -- the request path: O(1) ----------------------------------------------------
    def offer(self, stable: Snapshot, shadow: Snapshot, started_at: str, fraction: float,
              X: np.ndarray, answer: Any, method: str, latency: float) -> None:  # fmt: skip
        if method not in COMPARED or (fraction < 1.0 and self._draw() >= fraction):
            return
        if len(self._queue) >= self.max_queue or self._thread is None:
            self.dropped[stable.model] = self.dropped.get(stable.model, 0) + 1
            if self.on_drop is not None:
                self.on_drop(stable.model, 1)
            return
        self._queue.append(Job(stable, shadow, started_at, X, answer, method, latency))
        if not self._wake.is_set():  # a flag read, not a lock, when the thread is already awake
            self._wake.set()

    # -- the worker thread -----------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="modelswap-shadow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._stop.wait(LINGER)  # off the response path: a few ms buy one call for many requests
            self._wake.clear()
            while self._queue and not self._stop.is_set():
                jobs = [self._queue.popleft() for _ in range(min(len(self._queue), 256))]
                self.run_jobs(jobs)

    def run_jobs(self, jobs: list[Job]) -> None:
        """Predict the jobs with their shadows (one call per group) and count each group in
        one vectorised pass."""
        groups: dict[tuple[int, int, str, str], list[Job]] = {}
        for job in jobs:
            groups.setdefault((id(job.stable), id(job.shadow), job.method, job.started_at), []).append(job)
        for group in groups.values():
            try:
                self._compare_group(group)
            except Exception:  # a comparison that cannot be made must not stop the thread
                logger.exception("shadow comparison of %s failed", group[0].shadow.version)

    def _compare_group(self, group: list[Job]) -> None:
        first = group[0]
        fn = first.shadow.methods.get(first.method)
        answers: list[Any] = [None] * len(group)
        elapsed = 0.0
        if fn is not None:
            start = time.perf_counter()
            try:
                X = first.X if len(group) == 1 else np.concatenate([j.X for j in group])
                joined = np.asarray(fn(X))
                if len(joined) != len(X):
                    raise ValueError("the shadow answered another number of rows")
                answers = list(np.split(joined, np.cumsum([len(j.X) for j in group])[:-1]))
            except Exception:  # the batch failed: find the requests that fail alone
                answers = [_alone(fn, j.X) for j in group]
            elapsed = time.perf_counter() - start  # what a request would have waited for the shadow
        stable_out, shadow_out = first.stable.signature.output, first.shadow.signature.output
        classes = stable_out.classes if stable_out is not None else None
        ours_all: list[np.ndarray] = []
        theirs_all: list[np.ndarray] = []
        failed = 0
        for job, answer in zip(group, answers, strict=True):
            ours = labels_of(job.answer, job.method, classes)
            theirs = (
                None if answer is None else labels_of(answer, job.method, shadow_out.classes if shadow_out else None)
            )
            if ours is None or theirs is None or len(ours) != len(theirs):
                failed += 1
            else:
                ours_all.append(ours)
                theirs_all.append(theirs)
        timed_out = elapsed > self.timeout
        latencies = np.fromiter((j.latency for j in group), dtype=np.float64, count=len(group))
        key = (first.stable.version, first.shadow.version, first.started_at)
        with self._lock:
            c = self._counts.setdefault(first.stable.model, {}).setdefault(key, Comparison())
            c.stable_latency = _add(c.stable_latency, np.bincount(np.searchsorted(LATENCY_EDGES, latencies),
                                                                  minlength=len(c.stable_latency)))  # fmt: skip
            if fn is not None:
                c.shadow_latency[int(np.searchsorted(LATENCY_EDGES, elapsed))] += len(group) - failed
            c.errors += failed
            if timed_out:
                c.timeouts += len(ours_all)
                return
            if not ours_all:
                return
            c.requests += len(ours_all)
            before = (c.rows, c.agree, c.abs_delta)
            _compare(c, np.concatenate(ours_all), np.concatenate(theirs_all), classes is not None)
            now = self.clock()
            c.mark(math.floor(now / self.bucket_seconds) * self.bucket_seconds,
                   c.rows - before[0], c.agree - before[1], c.abs_delta - before[2])  # fmt: skip
            c.forget_before(now - self.keep_seconds)

    # -- the fleet's counts --------------------------------------------------------
    def state(self, model: str) -> dict[str, Any]:
        with self._lock:
            pairs = [
                {"live": live, "shadow": shadow, "started_at": started, **c.to_dict()}
                for (live, shadow, started), c in self._counts.get(model, {}).items()
            ]
        return {"dropped": self.dropped.get(model, 0), "pairs": pairs}

    def models(self) -> list[str]:
        with self._lock:
            return sorted(self._counts)

    def forget(self, model: str, live: str | None) -> None:
        """Drop the comparisons against versions no longer live (those against the live
        one stay after the shadow stops: a rollout of the same version judges them)."""
        with self._lock:
            counts = self._counts.get(model, {})
            for key in [k for k in counts if k[0] != live]:
                del counts[key]

    def flush(self, paths: ModelPaths) -> None:
        paths.shadow_dir.mkdir(exist_ok=True)
        atomic_write_json(paths.shadow_dir / f"{process_id()}.json",
                          {"time": time.time(), **self.state(paths.name)}, durable=False)  # fmt: skip


def _add(counts: list[int], more: np.ndarray) -> list[int]:
    return [a + int(b) for a, b in zip(counts, more.tolist(), strict=True)]


def _compare(c: Comparison, ours: np.ndarray, theirs: np.ndarray, classifier: bool) -> None:
    """Count one group's rows: label agreement and the confusion (classifiers, or any
    non-numeric answer), absolute and relative differences (regressors)."""
    c.rows += len(ours)
    if classifier or ours.dtype.kind in "OUSb" or theirs.dtype.kind in "OUSb":
        c.kind = "classifier"
        for (x, y), k in Counter(zip(ours.tolist(), theirs.tolist(), strict=True)).items():  # a few distinct pairs
            if x == y or str(x) == str(y):
                c.agree += k
            row = c.confusion.setdefault(_label(x, c.confusion), {})
            label = _label(y, row)
            row[label] = row.get(label, 0) + k
    else:
        c.kind = "regressor"
        live = ours.astype(np.float64)
        delta = np.abs(theirs.astype(np.float64) - live)
        c.abs_delta += float(delta.sum())
        c.rel_delta += float((delta / np.maximum(np.abs(live), 1e-12)).sum())


def _alone(fn: Callable[[np.ndarray], Any], X: np.ndarray) -> Any:
    try:
        answer = np.asarray(fn(X))
    except Exception:
        return None
    return answer if len(answer) == len(X) else None


def _label(value: Any, seen: Mapping[str, Any]) -> str:
    text = str(value)
    return text if text in seen or len(seen) < MAX_LABELS else "other"


def fleet_summary(
    paths: ModelPaths, live: str | None, shadow: str, started_at: str | None, *, stale: float
) -> dict[str, Any]:
    """Every process's comparison of (``live``, ``shadow``) since the shadow started (any
    start of it when ``started_at`` is None), summed; files older than ``stale`` seconds
    are removed (their process is gone)."""
    total = Comparison()
    processes = dropped = 0
    for data in fresh_process_files(paths.shadow_dir, stale_before=time.time() - stale):
        processes += 1
        part = Comparison()  # one process's file counts whole or not at all
        try:
            lost = int(data.get("dropped") or 0)
            for pair in data.get("pairs") or []:
                same_run = started_at is None or pair.get("started_at") == started_at
                if pair.get("shadow") == shadow and pair.get("live") == live and same_run:
                    part.add(pair)
        except (TypeError, ValueError, AttributeError) as exc:  # one process's damaged file: skipped, not a 500
            logger.warning("%s: a shadow counts file is damaged (%s); left out of the comparison", paths.name, exc)
            continue
        dropped += lost
        total.add(part.to_dict())
    return {**total.summary(), "dropped": dropped, "processes": processes}
