"""The Prometheus metrics (docs/metrics.md), created on a registry the caller passes in.

In multi-worker mode (PROMETHEUS_MULTIPROC_DIR set before prometheus_client is
imported) values live in per-process files; ``render`` aggregates them. Gauges
use ``livemax``/``livesum`` so a dead worker's gauges drop out once
:func:`forget_dead_processes` has run.
"""

from __future__ import annotations

import logging
import re
import shutil
from bisect import bisect_left
from collections import Counter as Tally
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.registry import Collector

from modelswap.core.store.processes import alive

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """modelswap's metric families, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry, *, per_process: bool = False) -> None:
        """``per_process``: several workers write their values to files (multi-process
        mode), so the process metrics are gauges each worker sets on its heartbeat,
        labelled with its pid; otherwise prometheus_client's process collector."""
        self.registry = registry
        self._children: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}
        self._http: dict[tuple[str, str, int], Any] = {}
        ns = "modelswap"
        self.http_requests = Counter(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            namespace=ns,
            registry=registry,
        )
        self.monitor_dropped = Counter(
            "monitor_dropped",
            "Requests left out of monitoring (stage=queue) or the prediction log (stage=log): a queue was full",
            ["stage"],
            namespace=ns,
            registry=registry,
        )
        self.shadow_dropped = Counter(
            "shadow_dropped",
            "Requests not shadowed because the shadow queue was full (the client was answered as usual)",
            ["model"],
            namespace=ns,
            registry=registry,
        )
        self.alertmanager_alerts = Counter(
            "alertmanager_alerts",
            "Alerts received from Alertmanager, by what was done: retrain, or why nothing was "
            "(resolved, no_model_label, unknown_model, no_rule, not_in_rule, below_severity, cooldown, job_running)",
            ["outcome"],
            namespace=ns,
            registry=registry,
        )
        self._process: dict[str, Any] | None = None
        if per_process:
            self._process = {
                name: Gauge(name, doc, registry=registry, multiprocess_mode="all")
                for name, doc in (
                    ("process_resident_memory_bytes", "Resident memory size in bytes"),
                    ("process_virtual_memory_bytes", "Virtual memory size in bytes"),
                    ("process_cpu_seconds_total", "Total user and system CPU time spent in seconds"),
                    ("process_open_fds", "Number of open file descriptors"),
                    ("process_start_time_seconds", "Start time of the process since unix epoch in seconds"),
                )
            }
        else:
            ProcessCollector(registry=registry)
        self.predictions = Counter(
            "predictions",
            "Predictions served",
            ["model", "version", "variant", "outcome"],
            namespace=ns,
            registry=registry,
        )
        self.prediction_latency = Histogram(
            "prediction_latency_seconds",
            "Prediction latency, parse to response",
            ["model", "variant"],
            namespace=ns,
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.model_loads = Counter(
            "model_loads", "Version loads", ["model", "outcome"], namespace=ns, registry=registry
        )
        self.model_load_seconds = Histogram(
            "model_load_seconds",
            "Time to load and validate a version",
            ["model"],
            namespace=ns,
            registry=registry,
            buckets=LOAD_BUCKETS,
        )
        self.serving_version = Gauge(
            "serving_version_info",
            "1 for the version this process serves",
            ["model", "version", "variant"],
            namespace=ns,
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.swap_lag = Histogram(
            "swap_lag_seconds",
            "From the current symlink changing to serving it in memory",
            ["model"],
            namespace=ns,
            registry=registry,
            buckets=LAG_BUCKETS,
        )
        self.admin_actions = Counter(
            "admin_actions", "Admin requests", ["model", "action", "outcome"], namespace=ns, registry=registry
        )
        self.auth_failures = Counter(
            "auth_failures",
            "Requests refused by authentication or authorization, by reason "
            "(missing, unknown, expired, forbidden, blocked, unreadable)",
            ["reason"],
            namespace=ns,
            registry=registry,
        )
        self.canary_fraction = Gauge(
            "canary_fraction",
            "Configured canary traffic fraction",
            ["model"],
            namespace=ns,
            registry=registry,
            multiprocess_mode="livemax",
        )

        self.batch_requests = Histogram(
            "batch_requests",
            "Requests answered by one predict call (micro-batching)",
            namespace=ns,
            registry=registry,
            buckets=BATCH_BUCKETS,
        )

    def prediction(self, model: str, version: str, variant: str, outcome: str, seconds: float | None) -> None:
        """Count one prediction (and its latency)."""
        counter, latency = self._prediction_children(model, version, variant, outcome)
        counter.inc()
        if seconds is not None:
            latency.observe(seconds)

    def answered(self, model: str, version: str, variant: str, latencies: list[float]) -> None:
        """Count one batch's answered requests (outcome ``success``) and each one's latency:
        the histogram's sum and each bucket it touches take one increment for the batch,
        where ``observe`` takes a lock per request (prometheus_client's own fields; a test
        holds the result to what ``observe`` makes of the same values)."""
        counter, latency = self._prediction_children(model, version, variant, "success")
        counter.inc(len(latencies))
        if len(latencies) == 1:
            latency.observe(latencies[0])
            return
        bounds, hits = latency._upper_bounds, Tally(bisect_left(latency._upper_bounds, s) for s in latencies)
        latency._sum.inc(sum(latencies))
        for i, n in hits.items():
            latency._buckets[min(i, len(bounds) - 1)].inc(n)

    def _prediction_children(self, model: str, version: str, variant: str, outcome: str) -> tuple[Any, Any]:
        """The label children of one outcome. Looked up once and kept: ``labels()`` costs
        more than the increment itself on the hot path."""
        key = (model, version, variant, outcome)
        children = self._children.get(key)
        if children is None:
            children = (
                self.predictions.labels(model, version, variant, outcome),
                self.prediction_latency.labels(model, variant),
            )
            self._children[key] = children
        return children

    def http(self, route: str, method: str, status: int) -> None:
        key = (route, method, status)
        child = self._http.get(key)
        if child is None:
            child = self._http[key] = self.http_requests.labels(route, method, str(status))
        child.inc()

    def sample_process(self) -> None:
        """Set this worker's process gauges (multi-process mode; else the collector reads
        /proc itself on each scrape)."""
        if self._process is None:
            return
        collector = ProcessCollector(registry=None)
        for family in collector.collect():
            gauge = self._process.get(family.name) or self._process.get(family.name + "_total")
            if gauge is not None and family.samples:
                gauge.set(family.samples[0].value)

    def set_serving(self, model: str, variant: str, old: str | None, new: str | None) -> None:
        if old is not None and old != new:
            self.serving_version.labels(model, old, variant).set(0)
        if new is not None:
            self.serving_version.labels(model, new, variant).set(1)


def render(registry: CollectorRegistry, multiproc_dir: Path | None, extra: Collector | None = None) -> bytes:
    """The exposition text: this registry, or every worker's files aggregated; plus
    ``extra`` (fleet-wide values every worker computes alike: added once)."""
    if multiproc_dir is None:
        text = generate_latest(registry)
    else:
        from prometheus_client import multiprocess

        aggregate = CollectorRegistry()
        multiprocess.MultiProcessCollector(aggregate, path=str(multiproc_dir))  # type: ignore[no-untyped-call]
        text = generate_latest(aggregate)
    if extra is not None:
        once = CollectorRegistry()
        once.register(extra)
        text += generate_latest(once)
    return text


def reset_multiproc_dir(path: Path) -> None:
    """Empty the metrics directory before workers start (stale files would be counted).

    Only its contents go: the directory itself is often a mount point (an emptyDir).
    """
    path.mkdir(parents=True, exist_ok=True)
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


_LIVE_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db$")


def forget_dead_processes(path: Path) -> list[int]:
    """Drop the live-gauge files of worker processes that no longer exist.

    Counters and histograms of dead workers stay: totals must survive a restart.
    """
    from prometheus_client import multiprocess

    dead = set()
    for entry in path.glob("gauge_live*.db"):
        match = _LIVE_FILE.search(entry.name)
        if match and not alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]
        logger.info("removed the live metrics of dead worker %d", pid)
    return sorted(dead)
