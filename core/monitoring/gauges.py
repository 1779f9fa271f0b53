"""The monitoring view as Prometheus gauges, computed when /metrics is scraped.

Every process computes the same fleet-wide figures from the volume, so they are not
per-worker values: the collector is added once to the registry ``/metrics`` renders
(beside the multi-process aggregate), never to the per-worker files. A view is reused for
``ttl`` seconds so frequent scrapes do not recompute drift.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from modelswap.core.errors import ModelswapError

logger = logging.getLogger(__name__)

DRIFT_METHODS = ("psi", "js", "kl", "ks")


class MonitorCollector(Collector):
    """Drift, live quality and alerts (``view``: None when monitoring is off), and the shadow
    agreement and rollout step of each model (``delivery``: model -> (shadow, rollout) views)."""

    def __init__(
        self,
        models: Callable[[], list[str]],
        view: Callable[[str], dict[str, Any]] | None,
        ttl: float,
        delivery: Callable[[str], tuple[dict[str, Any], dict[str, Any]]] | None = None,
    ) -> None:
        self.models = models
        self.view = view
        self.delivery = delivery
        self.ttl = ttl
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _views(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        out: list[dict[str, Any]] = []
        if self.view is None:
            return out
        for model in self.models():
            with self._lock:
                cached = self._cache.get(model)
            if cached is None or now - cached[0] > self.ttl:
                try:
                    cached = (now, self.view(model))
                except (ModelswapError, OSError) as exc:
                    logger.debug("monitoring view of %s for /metrics: %s", model, exc)
                    continue
                with self._lock:
                    self._cache[model] = cached
            out.append(cached[1])
        return out

    def collect(self) -> Iterator[GaugeMetricFamily]:
        feature = GaugeMetricFamily(
            "modelswap_feature_drift",
            "Drift of an input feature against the version's reference, over the monitoring window",
            labels=["model", "version", "variant", "feature", "method"],
        )
        prediction = GaugeMetricFamily(
            "modelswap_prediction_drift",
            "Drift of the predictions against the version's reference, over the monitoring window",
            labels=["model", "version", "variant", "method"],
        )
        live = GaugeMetricFamily(
            "modelswap_live_metric",
            "Live quality from feedback (accuracy or mae), error rate and p99 latency (s) over the window",
            labels=["model", "version", "variant", "metric"],
        )
        alerts = GaugeMetricFamily("modelswap_alerts", "Active monitoring alerts", labels=["model", "kind", "severity"])
        for view in self._views():
            model = view["model"]
            for row in view["versions"]:
                labels = [model, row["version"], row["variant"]]
                window = row["window"]
                for d in window["drift"]["features"]:
                    for method in DRIFT_METHODS:
                        if d.get(method) is not None:
                            feature.add_metric([*labels, d["feature"], method], float(d[method]))
                p = window["drift"]["prediction"]
                for method in DRIFT_METHODS:
                    if p is not None and p.get(method) is not None:
                        prediction.add_metric([*labels, method], float(p[method]))
                quality = window["quality"]
                if quality is not None:
                    live.add_metric([*labels, quality["metric"]], float(quality["value"]))
                if window["error_rate"] is not None:
                    live.add_metric([*labels, "error_rate"], float(window["error_rate"]))
                if window["p99_ms"] is not None:
                    live.add_metric([*labels, "p99_seconds"], float(window["p99_ms"]) / 1000)
            counted: dict[tuple[str, str], int] = {}
            for alert in view["alerts"]:
                key = (alert["kind"], alert["severity"])
                counted[key] = counted.get(key, 0) + 1
            for (kind, severity), n in sorted(counted.items()):
                alerts.add_metric([model, kind, severity], n)
        yield from (feature, prediction, live, alerts)
        yield from self._delivery()

    def _delivery(self) -> Iterator[GaugeMetricFamily]:
        agreement = GaugeMetricFamily(
            "modelswap_shadow_agreement",
            "Share of rows on which the shadow version's prediction equals the live version's (fleet-wide)",
            labels=["model", "version"],
        )
        step = GaugeMetricFamily(
            "modelswap_rollout_step", "Percent of traffic a running stepped rollout sends its version (0: none)",
            labels=["model"],
        )  # fmt: skip
        for model in self.models() if self.delivery is not None else []:
            try:
                shadow, rollout = self.delivery(model)  # type: ignore[misc]
            except (ModelswapError, OSError) as exc:
                logger.debug("delivery view of %s for /metrics: %s", model, exc)
                continue
            if shadow["agreement"] is not None:
                agreement.add_metric([model, shadow["version"]], float(shadow["agreement"]))
            step.add_metric([model], float(rollout["step_percent"]) if rollout["running"] else 0.0)
        yield from (agreement, step)
