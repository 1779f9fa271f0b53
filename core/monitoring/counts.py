"""Online profiles: what serving processes saw, per (version, variant), in time buckets.

The request path only appends what it answered to a bounded queue (:meth:`Recorder.observe`:
one ``deque.append`` per micro-batch, no numpy). A background tick (the runtime's heartbeat thread) counts
what piled up in one vectorised pass per version into the bins of the version's
reference profile, in buckets of ``bucket_seconds`` (a fifth of the monitoring window),
and keeps a cumulative cell per (version, variant) since this process first served it.
Counts are additive, like whylogs' profiles: every process writes its own to
``<model>/.monitor/<host>-<pid>.json`` and any process sums every file it finds, so
drift and quality are per version and variant across every worker and pod.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from modelswap.core.metrics import LATENCY_BUCKETS
from modelswap.core.monitoring.profiles import NUMERIC, FeatureProfile, ReferenceProfile, column_values

logger = logging.getLogger(__name__)

ERROR_KINDS = ("client", "server", "timeout")
SAMPLE_SIZE = 100  # reservoir values per numeric feature per cell and process (for KS)
MAX_PENDING = 100_000  # hand-overs (a request or a batch) waiting to be counted; past it dropped and counted
LATENCY_EDGES = np.asarray(LATENCY_BUCKETS)
SLICE = 64  # requests per slice of the background count (core.monitoring.pacing)


References = Callable[[str, str], ReferenceProfile | None]


@dataclass
class Counts:
    """One feature's (or the prediction's) counts in one cell: per bin, nulls, a reservoir."""

    counts: np.ndarray
    nulls: int = 0
    sample: list[float] = field(default_factory=list)
    seen: int = 0  # non-null values offered to the reservoir

    @classmethod
    def empty(cls, bins: int) -> Counts:
        return cls(np.zeros(bins, dtype=np.int64))

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def add(self, other: Counts) -> None:
        if len(other.counts) == len(self.counts):  # a mismatch is a foreign or damaged file
            self.counts += other.counts
        self.nulls += other.nulls
        self.sample.extend(other.sample)
        self.seen += other.seen

    def offer(self, values: np.ndarray, rng: np.random.Generator) -> None:
        """Reservoir sampling of finite numbers, vectorised over the batch."""
        values = values[np.isfinite(values)]
        room = SAMPLE_SIZE - len(self.sample)
        if room > 0:
            self.sample.extend(values[:room].tolist())
            self.seen += min(room, len(values))
            values = values[room:]
        if len(values) == 0:
            return
        n = len(values)
        if n > 10 * SAMPLE_SIZE:  # a big tick: offer a uniform subset standing for the batch
            values = values[rng.integers(0, n, 10 * SAMPLE_SIZE)]
        index = self.seen + np.arange(1, len(values) + 1) * (n / len(values))
        keep = rng.random(len(values)) < SAMPLE_SIZE / index
        kept = values[keep]
        if len(kept):
            sample = np.asarray(self.sample)
            sample[rng.integers(0, SAMPLE_SIZE, len(kept))] = kept
            self.sample = sample.tolist()
        self.seen += n

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts.tolist(), "nulls": self.nulls, "sample": self.sample, "seen": self.seen}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Counts:
        return cls(
            np.asarray(data.get("counts") or [], dtype=np.int64),
            int(data.get("nulls") or 0),
            [float(v) for v in data.get("sample") or []],
            int(data.get("seen") or 0),
        )


@dataclass
class Cell:
    """What one (version, variant) saw in one bucket (or since it was first served)."""

    requests: int = 0
    rows: int = 0
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_KINDS, 0))
    latency: np.ndarray = field(default_factory=lambda: np.zeros(len(LATENCY_BUCKETS) + 1, dtype=np.int64))
    features: dict[str, Counts] = field(default_factory=dict)
    prediction: Counts | None = None
    feedback: dict[str, float] = field(default_factory=lambda: {"n": 0, "correct": 0, "abs_error": 0.0})

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def answered(self) -> int:
        """Requests that reached the model's version: answered plus failed."""
        return self.requests + self.failed

    def add(self, other: Cell) -> None:
        self.requests += other.requests
        self.rows += other.rows
        for kind, n in other.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + n
        if len(other.latency) == len(self.latency):
            self.latency += other.latency
        for name, counts in other.features.items():
            mine = self.features.get(name)
            if mine is None:
                self.features[name] = Counts(counts.counts.copy(), counts.nulls, list(counts.sample), counts.seen)
            else:
                mine.add(counts)
        if other.prediction is not None:
            if self.prediction is None:
                p = other.prediction
                self.prediction = Counts(p.counts.copy(), p.nulls, list(p.sample), p.seen)
            else:
                self.prediction.add(other.prediction)
        for key, value in other.feedback.items():
            self.feedback[key] = self.feedback.get(key, 0) + value

    def p99_ms(self) -> float | None:
        """The 99th percentile latency from the histogram (the bucket's upper edge), ms."""
        total = int(self.latency.sum())
        if total == 0:
            return None
        rank = math.ceil(0.99 * total)
        index = int(np.searchsorted(np.cumsum(self.latency), rank))
        edge = LATENCY_BUCKETS[index] if index < len(LATENCY_BUCKETS) else LATENCY_BUCKETS[-1] * 2
        return float(1000.0 * edge)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "rows": self.rows,
            "errors": dict(self.errors),
            "latency": self.latency.tolist(),
            "features": {name: c.to_dict() for name, c in self.features.items()},
            "prediction": self.prediction.to_dict() if self.prediction is not None else None,
            "feedback": dict(self.feedback),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cell:
        cell = cls(requests=int(data.get("requests") or 0), rows=int(data.get("rows") or 0))
        cell.errors.update({str(k): int(v) for k, v in (data.get("errors") or {}).items()})
        latency = np.asarray(data.get("latency") or [], dtype=np.int64)
        if len(latency) == len(cell.latency):
            cell.latency = latency
        cell.features = {str(k): Counts.from_dict(v) for k, v in (data.get("features") or {}).items()}
        prediction = data.get("prediction")
        cell.prediction = Counts.from_dict(prediction) if isinstance(prediction, Mapping) else None
        cell.feedback.update({str(k): float(v) for k, v in (data.get("feedback") or {}).items()})
        return cell


class Observation(NamedTuple):
    """One answered (or failed) request, as the request path hands it over (a tuple:
    building it costs a fraction of a frozen dataclass's field-by-field init)."""

    model: str
    version: str
    variant: str
    rows: Any  # the prepared request array, or None for a failure
    answer: Any  # the model's answer (predict's labels/values), or the error kind for a failure
    latency: float
    method: str = "predict"
    classes: tuple[Any, ...] | None = None
    request_id: str = ""
    time: float = 0.0


class Batch(NamedTuple):
    """The answered requests of one micro-batch, handed over at once (one append per batch,
    not one per request): the rows and the answer as the model was given and answered them,
    each request's latency, id and row count in order, and the time of the batch. It counts
    exactly as the per-request observations it stands for (:meth:`observations`), which are
    made only where one request is needed on its own (the prediction log, a test)."""

    model: str
    version: str
    variant: str
    rows: np.ndarray
    answer: Any
    latencies: Sequence[float]
    method: str
    classes: tuple[Any, ...] | None
    request_ids: Sequence[str]
    sizes: Sequence[int]
    time: float = 0.0

    def observations(self) -> list[Observation]:
        """One Observation per request: its rows and its part of the answer."""
        model, version, variant, rows, answer, latencies, method, classes, ids, sizes, at = self
        if len(sizes) == 1:
            return [Observation(model, version, variant, rows, answer, latencies[0], method, classes, ids[0], at)]
        out, offset = [], 0
        for latency, rid, size in zip(latencies, ids, sizes, strict=True):
            start, offset = offset, offset + size
            out.append(Observation(model, version, variant, rows[start:offset], answer[start:offset], latency, method,
                                   classes, rid, at))  # fmt: skip
        return out


Observed = Observation | Batch  # what the request path hands over: one request, or one batch's


def observations(item: Observed) -> list[Observation]:
    """The per-request observations of what was handed over."""
    if type(item) is Batch:
        return item.observations()
    assert isinstance(item, Observation)
    return [item]


def requests(item: Observed) -> int:
    """How many requests ``item`` stands for."""
    return len(item.sizes) if type(item) is Batch else 1


def predicted_labels(obs: Observation | Batch) -> np.ndarray | None:
    """The predictions to profile: predict's 1-D answer, or the most probable class."""
    answer = np.asarray(obs.answer)
    if obs.method == "predict":
        return answer if answer.ndim == 1 else None
    if obs.method in ("predict_proba", "predict_log_proba") and obs.classes and answer.ndim == 2:
        labels: np.ndarray = np.asarray(obs.classes)[answer.argmax(axis=1)]
        return labels
    return None


def count(observed: Sequence[Observed], reference: ReferenceProfile | None, rng: np.random.Generator) -> Cell:
    """One cell from the observations (or batches) of one (version, variant): one vectorised pass."""
    cell = Cell()
    done = [o for o in observed if o.rows is not None]
    for o in observed:
        if o.rows is None:
            cell.errors[str(o.answer)] = cell.errors.get(str(o.answer), 0) + 1
    if not done:
        return cell
    seconds: list[float] = []
    for o in done:
        if type(o) is Batch:
            seconds += o.latencies
        else:
            seconds.append(o.latency)  # type: ignore[union-attr]
    cell.requests = len(seconds)
    latencies = np.asarray(seconds, dtype=np.float64)
    cell.latency += np.bincount(np.searchsorted(LATENCY_EDGES, latencies), minlength=len(cell.latency))
    X = done[0].rows if len(done) == 1 else np.concatenate([o.rows for o in done])
    cell.rows = len(X)
    if reference is None:
        return cell
    for i, feature in enumerate(reference.features):
        if i < X.shape[1]:
            cell.features[feature.name] = _counts(feature, X[:, i], rng)
    if reference.prediction is not None:
        values = _predictions(done, len(X))
        if values is not None:
            # labels keep their dtype: column_values turns a numeric one into text in one go
            cell.prediction = _counts(reference.prediction, values, rng)
    return cell


def _predictions(done: list[Observed], rows: int) -> np.ndarray | None:
    """Every request's predictions in one array (predict's answers joined at once; the
    most probable class of a predict_proba answer), or None when they cannot be profiled."""
    if all(o.method == "predict" for o in done):
        try:
            values = np.concatenate([o.answer for o in done]) if len(done) > 1 else np.asarray(done[0].answer)
        except ValueError:  # answers of different shapes
            return None
        return values if values.ndim == 1 and len(values) == rows else None
    labels = [predicted_labels(o) for o in done]
    if not all(lab is not None and len(lab) == len(o.rows) for lab, o in zip(labels, done, strict=True)):
        return None
    return np.concatenate([lab for lab in labels if lab is not None])


def _counts(feature: FeatureProfile, column: np.ndarray, rng: np.random.Generator) -> Counts:
    values = column_values(feature, column)
    bins, nulls = feature.count(values)
    counts = Counts(np.asarray(bins, dtype=np.int64), int(nulls))
    if feature.kind == NUMERIC:
        counts.offer(np.asarray(values, dtype=np.float64), rng)
    return counts


CellKey = tuple[str, str, float]  # version, variant, bucket start


class Recorder:
    """One serving process's online counts for every model it serves (thread-safe)."""

    def __init__(
        self,
        references: References,
        *,
        bucket_seconds: float = 60.0,
        retention_seconds: float = 3600.0,
        clock: Callable[[], float] = time.time,
        max_pending: int = MAX_PENDING,
        sample_buckets: int = 5,
    ) -> None:
        self.references = references
        self.sample_buckets = sample_buckets  # buckets that keep their reservoirs (the window's)
        self.bucket_seconds = bucket_seconds
        self.retention_seconds = retention_seconds
        self.clock = clock
        self.max_pending = max_pending
        self.dropped = 0
        self._pending: deque[Observed] = deque()
        self._cells: dict[str, dict[CellKey, Cell]] = {}
        self._cumulative: dict[str, dict[tuple[str, str], tuple[float, Cell]]] = {}
        self._lock = threading.Lock()
        self._rng = np.random.default_rng()

    # -- the request path: O(1) ------------------------------------------------------
    def observe(self, obs: Observed) -> None:
        """Queue one request's observation, or one batch's (counted as its requests')."""
        if len(self._pending) >= self.max_pending:
            self.dropped += requests(obs)
            return
        self._pending.append(obs)

    def failure(self, model: str, version: str, variant: str, kind: str) -> None:
        self.observe(Observation(model, version, variant, None, kind, 0.0, time=time.time()))

    # -- the background tick -----------------------------------------------------------
    def bucket(self, now: float) -> float:
        return math.floor(now / self.bucket_seconds) * self.bucket_seconds

    @property
    def pending(self) -> int:
        """Observations (a request's or a batch's) queued, not counted yet."""
        return len(self._pending)

    def tick(self) -> list[Observed]:
        """Count everything queued since the last tick (returned, for the prediction log);
        forget buckets past retention."""
        drained = self.count()
        self.expire(self.clock())
        return drained

    def count(self, limit: int | None = None, *, most: int | None = None) -> list[Observed]:
        """Count the oldest ``limit`` queued observations or batches (all of them without a
        limit), or as many as hold ``most`` requests (at least one), and return them."""
        drained: list[Observed] = []
        groups: dict[tuple[str, str, str], list[Observed]] = {}
        taken = 0
        while self._pending and (limit is None or len(drained) < limit) and (most is None or taken < most):
            obs = self._pending.popleft()
            drained.append(obs)
            taken += requests(obs)
            groups.setdefault((obs.model, obs.version, obs.variant), []).append(obs)
        now = self.clock()
        for (model, version, variant), observations in groups.items():
            try:
                reference = self.references(model, version)
                delta = count(observations, reference, self._rng)
            except Exception:  # a damaged reference must never stop the counting of others
                logger.exception("monitoring: could not count %s %s", model, version)
                continue
            self.merge(model, version, variant, delta, now)
        return drained

    def merge(self, model: str, version: str, variant: str, delta: Cell, now: float) -> None:
        with self._lock:
            key = (version, variant, self.bucket(now))
            self._cells.setdefault(model, {}).setdefault(key, Cell()).add(delta)
            since, cumulative = self._cumulative.setdefault(model, {}).setdefault((version, variant), (now, Cell()))
            cumulative.add(delta)

    def expire(self, now: float) -> None:
        horizon = now - self.retention_seconds
        with self._lock:
            for model, cells in self._cells.items():
                for old in [k for k in cells if k[2] + self.bucket_seconds < horizon]:
                    del cells[old]
                # Only the window's buckets need reservoirs (KS runs on the window): older
                # ones keep their counts, which keeps each process's file small.
                recent = self.bucket(now) - self.bucket_seconds * (self.sample_buckets - 1)
                for (_, _, start), cell in cells.items():
                    if start < recent:
                        for counts in (*cell.features.values(), *([cell.prediction] if cell.prediction else [])):
                            counts.sample.clear()
                for pair in [k for k in self._cumulative.get(model, {}) if not _in(k, cells)]:
                    del self._cumulative[model][pair]  # nothing of it left in the window: served no more

    def models(self) -> list[str]:
        with self._lock:
            return sorted(set(self._cells) | set(self._cumulative))

    def forget(self, model: str) -> None:
        with self._lock:
            self._cells.pop(model, None)
            self._cumulative.pop(model, None)

    def state(self, model: str) -> dict[str, Any]:
        """This process's counts of ``model``, as its file on the volume holds them."""
        with self._lock:
            cells = [
                {"version": v, "variant": var, "start": start, **cell.to_dict()}
                for (v, var, start), cell in sorted(self._cells.get(model, {}).items())
            ]
            cumulative = [
                {"version": v, "variant": var, "since": since, **cell.to_dict()}
                for (v, var), (since, cell) in sorted(self._cumulative.get(model, {}).items())
            ]
        return {"bucket_seconds": self.bucket_seconds, "cells": cells, "cumulative": cumulative}


def _in(key: tuple[str, str], cells: Iterable[CellKey]) -> bool:
    return any(k[0] == key[0] and k[1] == key[1] for k in cells)
