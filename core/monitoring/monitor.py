"""Monitoring in one serving process: the request path's hand-over, the tick that counts
and flushes, feedback joined to logged predictions, and the model's monitoring view.

``observe`` is all the request path calls (one append). The runtime's heartbeat thread
calls ``tick`` every poll interval: it counts what piled up (core.monitoring.counts),
remembers the request ids it saw for feedback, hands the requests to the prediction log
(core.monitoring.prediction_log) and, every ``flush`` seconds, writes this process's counts to the volume.
``view`` sums the fleet's counts and evaluates drift, quality and alerts
(core.monitoring.view) against the model's ``monitor.json`` (core.monitoring.fleet_counts).
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from modelswap.core.delivery.shadow import read_shadow
from modelswap.core.delivery.shadow_runner import fleet_summary
from modelswap.core.errors import InvalidInput, ModelswapError
from modelswap.core.monitoring.counts import (
    SLICE,
    Batch,
    Cell,
    Observation,
    Observed,
    Recorder,
    predicted_labels,
)
from modelswap.core.monitoring.fleet_counts import (
    read_config,
    read_counts,
    write_counts,
)
from modelswap.core.monitoring.pacing import Pacer
from modelswap.core.monitoring.prediction_log import PredictionLog, find
from modelswap.core.monitoring.profiles import ReferenceProfile, load_reference
from modelswap.core.monitoring.view import Evaluator, pairs_of, when, window_cells
from modelswap.core.settings import Settings
from modelswap.core.store.layout import ModelPaths
from modelswap.core.store.store import Store

logger = logging.getLogger(__name__)

INDEX_SIZE = 20_000  # recent request ids kept in memory for feedback (up to 1.25x); older: the log
MAX_FEEDBACK = 10_000  # labels per feedback request
BUCKETS_PER_WINDOW = 5


class Monitor:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        on_drop: Callable[[str, int], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.enabled = settings.monitor
        self.window = settings.monitor_window
        self.retention = settings.monitor_retention
        self.flush_every = settings.monitor_flush
        self.clock = clock
        self.on_drop = on_drop
        self.recorder = Recorder(
            self.reference,
            bucket_seconds=self.window / BUCKETS_PER_WINDOW,
            retention_seconds=self.retention,
            clock=clock,
            sample_buckets=BUCKETS_PER_WINDOW,
        )
        self.log_dir = settings.prediction_log if settings.monitor else None
        self.log = (
            PredictionLog(
                self.log_dir,
                sample=settings.prediction_log_sample,
                inputs=settings.prediction_log_inputs,
                max_bytes=settings.prediction_log_max_bytes,
                files=settings.prediction_log_files,
                on_drop=lambda n: self._dropped("log", n),
            )
            if self.log_dir is not None
            else None
        )
        self._references: OrderedDict[tuple[str, str], ReferenceProfile | None] = OrderedDict()
        # What feedback needs of recent requests, in generations of INDEX_SIZE / 4 request
        # ids, newest last; the oldest goes whole once there are five (so between INDEX_SIZE
        # and 1.25x are kept, and forgetting never copies or scans what stays). In each: request
        # id -> where its answer is (its batch's key, shifted, plus its place in the batch), a
        # dict of strings and ints the garbage collector does not track; and batch key ->
        # the batch's answer and row offsets.
        self._kept: deque[Generation] = deque([({}, {})])
        self._batches = 0
        self._seen_feedback: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._tick_lock = threading.Lock()
        self._last_flush = 0.0
        self._dropped_before = 0

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        if self.log is not None:
            try:
                self.log.start()
            except OSError as exc:
                logger.warning("prediction log %s cannot be written (%s); logging is off", self.log_dir, exc)
                self.log = None

    def stop(self) -> None:
        if not self.enabled:
            return
        self.tick(force_flush=True)
        if self.log is not None:
            self.log.close()

    # -- the request path ----------------------------------------------------------
    def observe(self, obs: Observed) -> None:
        """Hand over one request's observation, or one batch's (core.monitoring.counts.Batch)."""
        if self.enabled:
            self.recorder.observe(obs)

    def failure(self, model: str, version: str, variant: str, kind: str) -> None:
        if self.enabled:
            self.recorder.failure(model, version, variant, kind)

    # -- the background tick -------------------------------------------------------
    def tick(self, *, force_flush: bool = False) -> None:
        if not self.enabled:
            return
        with self._tick_lock:
            # In slices (monitor_counts.SLICE), and only what was queued when the tick
            # began: requests arriving faster than they are counted cannot hold the
            # heartbeat thread here (its heartbeats and the delivery driver come next).
            left = handed = self.recorder.pending
            pause = Pacer()
            while left > 0:
                drained = self.recorder.count(left, most=SLICE)
                if not drained:
                    break
                left -= len(drained)
                self._remember(drained)
                if self.log is not None:
                    self.log.submit(drained)
                if left > 0:
                    pause()
            if self.log is not None and left < handed:
                self.log.wake()  # one write for the tick's lines
            now = self.clock()
            self.recorder.expire(now)
            if self.recorder.dropped != self._dropped_before:
                self._dropped("queue", self.recorder.dropped - self._dropped_before)
                self._dropped_before = self.recorder.dropped
            if force_flush or now - self._last_flush >= self.flush_every:
                self._last_flush = now
                self.flush()

    def flush(self) -> None:
        for model in self.recorder.models():
            paths = self.store.paths(model)
            if not paths.dir.is_dir():
                self.recorder.forget(model)
                continue
            try:
                write_counts(paths, self.recorder.state(model))
            except (OSError, ModelswapError) as exc:
                logger.warning("monitoring: could not write the counts of %s: %s", model, exc)

    def _dropped(self, stage: str, n: int) -> None:
        if self.on_drop is not None:
            self.on_drop(stage, n)

    def _remember(self, drained: Sequence[Observed]) -> None:
        """Keep what feedback needs of each answered request (its answer, not its rows);
        the labels are worked out only when feedback names the request. One kept answer
        per batch: a request's part of it is cut out when feedback asks."""
        with self._lock:
            index, answers = self._kept[-1]
            for obs in drained:
                if obs.rows is None:
                    continue
                ids = obs.request_ids if type(obs) is Batch else (obs.request_id,)  # type: ignore[union-attr]
                key = self._batches << 32
                where: Iterable[tuple[str, int]] = zip(ids, range(key, key + len(ids)), strict=True)
                if "" in ids:  # a request without an id (an in-process call) is not kept
                    where = [(rid, at) for rid, at in where if rid]
                    if not where:
                        continue
                index.update(where)
                offsets = None
                if type(obs) is Batch and len(obs.sizes) > 1:
                    offsets = (0, *itertools.accumulate(obs.sizes))
                # a plain tuple of strings, an array and tuples: the collector stops tracking
                # it once it has seen it (never an Answer: a named tuple stays tracked, and
                # 20,000 kept made every full collection walk them, 10-19 ms)
                answers[self._batches] = (
                    obs.model,
                    obs.version,
                    obs.variant,
                    obs.answer,
                    obs.method,
                    obs.classes,
                    offsets,
                )
                self._batches += 1
                if len(index) >= max(1, INDEX_SIZE // 4):  # a new generation; the oldest of five goes
                    index, answers = {}, {}
                    self._kept.append((index, answers))
                    if len(self._kept) > 5:
                        self._kept.popleft()

    def _answer(self, rid: str) -> Answer | None:
        """What request ``rid`` answered, if it is still kept (call with the lock held)."""
        kept: Kept | None = None
        for index, answers in reversed(self._kept):  # the newest answer of a repeated id
            where = index.get(rid)
            if where is not None:
                kept = answers.get(where >> 32)
                break
        else:
            return None
        if kept is None:
            return None
        model, version, variant, answer, method, classes, offsets = kept
        if offsets is not None:
            i = where & 0xFFFFFFFF
            answer = answer[offsets[i] : offsets[i + 1]]
        return Answer(model, version, variant, answer, method, classes)

    # -- references ----------------------------------------------------------------
    def reference(self, model: str, version: str) -> ReferenceProfile | None:
        key = (model, version)
        with self._lock:
            if key in self._references:
                return self._references[key]
        try:
            profile = load_reference(self.store.paths(model).version_dir(version))
        except (OSError, ModelswapError) as exc:
            logger.warning("monitoring: the reference of %s %s cannot be read: %s", model, version, exc)
            profile = None
        with self._lock:
            self._references[key] = profile
            while len(self._references) > 256:
                self._references.popitem(last=False)
        return profile

    # -- feedback ------------------------------------------------------------------
    def feedback(self, model: str, items: Sequence[tuple[str, Any]]) -> dict[str, Any]:
        """Join labels to the predictions of the requests they name; count them as live
        quality of the version and variant that answered, now."""
        if not self.enabled:
            raise InvalidInput("monitoring is off on this server (MODELSWAP_MONITOR=0)")
        if len(items) > MAX_FEEDBACK:
            raise InvalidInput(f"{len(items)} labels exceed the limit of {MAX_FEEDBACK} per request")
        self.tick()
        with self._lock:
            found = {rid: self._answer(rid) for rid, _ in items}
        known = {rid: _labels(answer) for rid, answer in found.items() if answer is not None}
        missing = {rid for rid, _ in items if rid not in known}
        if missing and self.log_dir is not None:
            if self.log is not None:
                self.log.flush()
            for rid, line in find(self.log_dir, model, missing).items():
                known[rid] = self._from_log(model, line)
        matched, unmatched, duplicates = 0, [], []
        deltas: dict[tuple[str, str], Cell] = {}
        for rid, label in items:
            entry = known.get(rid)
            if entry is None or entry[0] != model:
                unmatched.append(rid)
                continue
            with self._lock:
                if rid in self._seen_feedback:
                    duplicates.append(rid)
                    continue
                self._seen_feedback[rid] = None
                while len(self._seen_feedback) > INDEX_SIZE:
                    self._seen_feedback.popitem(last=False)
            _, version, variant, predicted, regression = entry
            labels = label if isinstance(label, list) else [label]
            if len(labels) != len(predicted):
                raise InvalidInput(f"request {rid} had {len(predicted)} rows; give one label per row")
            cell = deltas.setdefault((version, variant), Cell())
            _score(cell, predicted, labels, regression, rid)
            matched += 1
        now = self.clock()
        for (version, variant), cell in deltas.items():
            self.recorder.merge(model, version, variant, cell, now)
        self.tick(force_flush=True)
        return {"model": model, "matched": matched, "unmatched": unmatched, "duplicates": duplicates}

    def _from_log(self, model: str, line: Mapping[str, Any]) -> tuple[str, str, str, list[Any], bool]:
        version, method = str(line.get("version")), str(line.get("method") or "predict")
        classes = None
        try:
            output = self.store.manifest(model, version).signature
            classes = output.output.classes if output is not None and output.output is not None else None
        except ModelswapError:
            pass
        answer = np.asarray(line.get("outputs"))
        return _labels(
            Answer(model, version, str(line.get("variant")), answer, method, tuple(classes) if classes else None)
        )

    # -- the view ------------------------------------------------------------------
    def view(self, model: str, *, version: str | None = None, histograms: bool = True) -> dict[str, Any]:
        """The model's monitoring view (docs/monitoring.md); ``histograms``: the window's drift
        with the bins the console draws (/metrics reads figures only)."""
        paths = self.store.existing(model)
        self.tick(force_flush=True)
        now = self.clock()
        step = self.window / BUCKETS_PER_WINDOW
        counts = read_counts(paths, retention=self.retention, bucket_seconds=step, now=now)
        config = read_config(paths)
        live, canary = self.store.current(model), self.store.canary(model)

        def published(v: str) -> Mapping[str, Any]:
            try:
                return dict(self.store.metrics(model, v))
            except ModelswapError:
                return {}

        evaluator = Evaluator(model, counts, config, self.reference, published, window=self.window)
        pairs = [p for p in pairs_of(counts) if version is None or p[0] == version]
        order = {live: 0, canary: 1}
        pairs.sort(key=lambda p: (order.get(p[0], 2), p[1] != "stable", p[0], p[1]))
        latest = math.floor(now / step) * step
        rows = []
        for v, variant in pairs:
            since, cumulative = counts.cumulative.get((v, variant), (None, Cell()))
            rows.append({
                "version": v,
                "variant": variant,
                "live": v == live,
                "canary": v == canary,
                "window": evaluator.summary(
                    v, window_cells(counts, (v, variant), latest, self.window), histograms=histograms
                ),
                "series": evaluator.series((v, variant), latest),
                "cumulative": {"since": when(since) if since is not None else None,
                               **evaluator.summary(v, cumulative, histograms=False)},
            })  # fmt: skip
        return {
            "model": model,
            "live": live,
            "canary": canary,
            "window_seconds": self.window,
            "time": when(now),
            "processes": counts.processes,
            "monitoring": self.enabled,
            "thresholds": config.to_dict(),
            "versions": rows,
            "alerts": evaluator.alerts(pairs, now),
            "shadow": self._shadow(paths, live),
        }

    def _shadow(self, paths: ModelPaths, live: str | None) -> dict[str, Any] | None:
        """The running shadow's comparison with the live version, fleet-wide (None: no shadow)."""
        try:
            config = read_shadow(paths.shadow)
        except InvalidInput:
            return None
        if config is None:
            return None
        stats = fleet_summary(paths, live, config.version, config.started_at, stale=self.retention)
        return {"version": config.version, "fraction": config.fraction, **stats}


class Answer(NamedTuple):
    model: str
    version: str
    variant: str
    answer: Any
    method: str
    classes: tuple[Any, ...] | None


# a kept batch's answer: model, version, variant, answer, method, classes, and the offsets
# of its requests' rows (None: one request)
Kept = tuple[str, str, str, Any, str, tuple[Any, ...] | None, tuple[int, ...] | None]
Generation = tuple[dict[str, int], dict[int, Kept]]


def _labels(a: Answer) -> tuple[str, str, str, list[Any], bool]:
    """(model, version, variant, predicted labels or values, regression?) of an answer."""
    obs = Observation(a.model, a.version, a.variant, [], a.answer, 0.0, a.method, a.classes)
    labels = predicted_labels(obs)
    return a.model, a.version, a.variant, labels.tolist() if labels is not None else [], a.classes is None


def _score(cell: Cell, predicted: Sequence[Any], labels: Sequence[Any], regression: bool, rid: str) -> None:
    fb = cell.feedback
    for guess, truth in zip(predicted, labels, strict=True):
        if regression:
            if isinstance(truth, bool) or not isinstance(truth, (int, float)) or not math.isfinite(truth):
                raise InvalidInput(f"request {rid}: a regressor's label must be a number, got {truth!r}")
            fb["abs_error"] = fb.get("abs_error", 0.0) + abs(float(guess) - float(truth))
            fb["regression"] = fb.get("regression", 0) + 1
        elif _same(guess, truth):
            fb["correct"] = fb.get("correct", 0) + 1
        fb["n"] = fb.get("n", 0) + 1


def _same(guess: Any, truth: Any) -> bool:
    number = (int, float)
    if isinstance(guess, number) and isinstance(truth, number) and not isinstance(truth, bool):
        return float(guess) == float(truth)
    return str(guess) == str(truth)
