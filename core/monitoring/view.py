"""The monitoring view of one model: per (version, variant), over the sliding window and
since it was first served: traffic, errors, p99, drift of every feature and of the
prediction against the version's own reference, live quality from feedback — and the
alerts, each with the time it was first and last seen. For pictures rather than numbers:
each feature's reference and observed distributions bin by bin, and the traffic of every
bucket of the window.

Alerts are evaluated, not stored: the window is slid back bucket by bucket over the
retained counts and an alert's ``first_seen`` is where its condition started to hold
without a break. Every process computes the same alerts from the same files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from modelswap.core.monitoring.counts import Cell, CellKey, Counts, References
from modelswap.core.monitoring.drift import Drift, dataset_verdict, feature_drift
from modelswap.core.monitoring.fleet_counts import FleetCounts, MonitorConfig
from modelswap.core.monitoring.profiles import NUMERIC, FeatureProfile, ReferenceProfile
from modelswap.core.store.clock import iso

INFO, WARNING, CRITICAL = "INFO", "WARNING", "CRITICAL"
SEVERITIES = (INFO, WARNING, CRITICAL)
KINDS = ("feature_drift", "prediction_drift", "performance", "error_rate", "latency")
Pair = tuple[str, str]  # version, variant


@dataclass(frozen=True)
class Alert:
    kind: str
    severity: str
    version: str
    variant: str
    feature: str | None
    value: float
    threshold: float
    message: str

    @property
    def key(self) -> tuple[str, str, str, str | None]:
        return (self.kind, self.version, self.variant, self.feature)


def window_cells(counts: FleetCounts, pair: Pair, end: float, window: float) -> Cell:
    """The sum of ``pair``'s buckets that start in (end - window, end]."""
    total = Cell()
    for (version, variant, start), cell in counts.cells.items():
        if (version, variant) == pair and end - window < start <= end:
            total.add(cell)
    return total


def _before(counts: FleetCounts, pairs: Iterable[Pair], end: float) -> Cell:
    total = Cell()
    wanted = set(pairs)
    for (version, variant, start), cell in counts.cells.items():
        if (version, variant) in wanted and start <= end:
            total.add(cell)
    return total


class Evaluator:
    """Computes drift, quality and alerts for one model's fleet counts."""

    def __init__(
        self,
        model: str,
        counts: FleetCounts,
        config: MonitorConfig,
        references: References,
        published: Callable[[str], Mapping[str, Any]],
        *,
        window: float,
    ) -> None:
        self.model = model
        self.counts = counts
        self.config = config
        self.references = references
        self.published = published
        self.window = window

    # -- one window ---------------------------------------------------------------
    def drift(self, version: str, cell: Cell, *, samples: bool = True) -> dict[str, Any]:
        reference = self.references(self.model, version)
        if reference is None:
            return {"reference": False, "profile": None, "features": [], "prediction": None, "dataset": None}
        t = self.config.drift
        drifts: list[Drift] = []
        for feature in reference.features:
            got = cell.features.get(feature.name)
            if got is None:
                continue
            drifts.append(feature_drift(feature, got.counts, got.nulls, got.sample if samples else None, t))
        prediction = None
        if reference.prediction is not None and cell.prediction is not None:
            p = cell.prediction
            prediction = feature_drift(reference.prediction, p.counts, p.nulls, p.sample if samples else None, t)
        return {
            "reference": True,
            "profile": reference,
            "features": drifts,
            "prediction": prediction,
            "dataset": dataset_verdict(drifts, t) if drifts else None,
        }

    def quality(self, version: str, cell: Cell) -> dict[str, Any] | None:
        fb = cell.feedback
        n = int(fb.get("n", 0))
        if n == 0:
            return None
        published = self.published(version)
        if fb.get("regression", 0):
            value, metric = fb.get("abs_error", 0.0) / n, "mae"
        else:
            value, metric = fb.get("correct", 0) / n, "accuracy"
        baseline = published.get(metric)
        baseline = float(baseline) if isinstance(baseline, (int, float)) and not isinstance(baseline, bool) else None
        return {"metric": metric, "value": value, "labelled": n, "published": baseline}

    def summary(self, version: str, cell: Cell, *, samples: bool = True, histograms: bool = True) -> dict[str, Any]:
        """A cell's traffic, errors, drift and quality; ``histograms``: each drift with the
        bins the console draws (the window's; no reader wants the cumulative's)."""
        answered = cell.answered
        drift = self.drift(version, cell, samples=samples)
        profile: ReferenceProfile | None = drift["profile"] if histograms else None
        return {
            "requests": answered,
            "rows": cell.rows,
            "errors": dict(cell.errors),
            "error_rate": cell.failed / answered if answered else None,
            **error_rates(cell),
            "p99_ms": cell.p99_ms(),
            "drift": {
                "reference": drift["reference"],
                "features": [
                    drawn(d, profile.feature(d.feature) if profile else None, cell.features.get(d.feature))
                    for d in drift["features"]
                ],
                "prediction": drawn(drift["prediction"], profile.prediction if profile else None, cell.prediction)
                if drift["prediction"] is not None
                else None,
                "dataset": drift["dataset"],
            },
            "quality": self.quality(version, cell),
        }

    def series(self, pair: Pair, end: float) -> list[dict[str, Any]]:
        """``pair``'s traffic bucket by bucket over the window ending with the bucket that
        starts at ``end``, oldest first, empty buckets included (every variant's line has
        the same points): requests, errors by kind, p99."""
        step = self.counts.bucket_seconds
        cells = {round(start / step): c for (v, var, start), c in self.counts.cells.items() if (v, var) == pair}
        points = []
        for back in range(max(1, round(self.window / step)) - 1, -1, -1):
            start = end - back * step
            cell = cells.get(round(start / step), Cell())
            points.append({
                "start": when(start),
                "requests": cell.answered,
                "errors": dict(cell.errors),
                **error_rates(cell),
                "p99_ms": cell.p99_ms(),
            })  # fmt: skip
        return points

    # -- alerts -------------------------------------------------------------------
    def alerts_at(self, pair: Pair, end: float) -> list[Alert]:
        """The alerts whose condition holds for ``pair`` over the window ending at ``end``."""
        version, variant = pair
        cell = window_cells(self.counts, pair, end, self.window)
        out: list[Alert] = []
        label = f"{self.model} {version} ({variant})"
        drift = self.drift(version, cell, samples=False)
        t = self.config.drift
        for d in drift["features"]:
            if d.severity in ("info", "warning") and d.psi is not None:
                limit = t.psi_warning if d.severity == "warning" else t.psi_info
                out.append(Alert("feature_drift", d.severity.upper(), version, variant, d.feature, d.psi, limit,
                                 f"{label}: feature {d.feature!r} drifted: PSI {d.psi:.3f} >= {limit:g} "
                                 f"over {d.samples} values"))  # fmt: skip
        dataset = drift["dataset"]
        if dataset is not None and dataset.get("severity") not in (None, "none", "insufficient_data"):
            out.append(Alert("feature_drift", CRITICAL, version, variant, "*", float(dataset["share"]),
                             t.dataset_share, f"{label}: dataset drift: {len(dataset['drifted'])} of "
                             f"{dataset['features']} features drifted ({', '.join(dataset['drifted'])})"))  # fmt: skip
        p = drift["prediction"]
        if p is not None and p.severity in ("info", "warning") and p.psi is not None:
            limit = t.psi_warning if p.severity == "warning" else t.psi_info
            out.append(Alert("prediction_drift", p.severity.upper(), version, variant, "prediction", p.psi, limit,
                             f"{label}: predictions drifted: PSI {p.psi:.3f} >= {limit:g} over {p.samples} "
                             "predictions"))  # fmt: skip
        out.extend(self._quality_alert(pair, cell, label))
        out.extend(self._traffic_alerts(pair, cell, end, label))
        return out

    def _quality_alert(self, pair: Pair, cell: Cell, label: str) -> list[Alert]:
        a = self.config.alerts
        q = self.quality(pair[0], cell)
        if q is None or q["labelled"] < a.min_feedback or q["published"] is None:
            return []
        if q["metric"] == "accuracy":
            worse = q["published"] - q["value"]
            text = f"accuracy {q['value']:.3f} on {q['labelled']} labelled predictions, published {q['published']:.3f}"
        else:
            worse = (q["value"] - q["published"]) / q["published"] if q["published"] > 0 else math.inf
            text = f"MAE {q['value']:.4g} on {q['labelled']} labelled predictions, published {q['published']:.4g}"
        for severity, limit in ((CRITICAL, a.quality_critical), (WARNING, a.quality_warning)):
            if worse >= limit:
                return [Alert("performance", severity, *pair, None, worse, limit, f"{label}: {text}")]
        return []

    def _traffic_alerts(self, pair: Pair, cell: Cell, end: float, label: str) -> list[Alert]:
        a = self.config.alerts
        if cell.answered < a.min_requests:
            return []
        baseline = self._baseline(pair, end)
        out: list[Alert] = []
        rate = cell.failed / cell.answered
        base_rate = baseline.failed / baseline.answered if baseline.answered else 0.0
        for severity, limit in ((CRITICAL, a.error_rate_critical), (WARNING, a.error_rate_warning)):
            if rate - base_rate >= limit:
                out.append(Alert("error_rate", severity, *pair, None, rate, base_rate + limit,
                                 f"{label}: error rate {100 * rate:.1f}% over {cell.answered} requests "
                                 f"(baseline {100 * base_rate:.1f}%; {cell.errors})"))  # fmt: skip
                break
        p99, base_p99 = cell.p99_ms(), baseline.p99_ms()
        if p99 is not None and base_p99 is not None and p99 >= a.latency_floor_ms:
            for severity, factor in ((CRITICAL, a.latency_critical), (WARNING, a.latency_warning)):
                if p99 >= factor * base_p99:
                    out.append(Alert("latency", severity, *pair, None, p99, factor * base_p99,
                                     f"{label}: p99 {p99:.1f} ms over {cell.answered} requests, "
                                     f"baseline {base_p99:.1f} ms"))  # fmt: skip
                    break
        return out

    def _baseline(self, pair: Pair, end: float) -> Cell:
        """The version's own traffic before the window; for a version too new to have any,
        what the model's other versions served before it (its predecessor's baseline)."""
        before = end - self.window
        own = _before(self.counts, [pair], before)
        if own.answered >= self.config.alerts.min_requests:
            return own
        others = {(v, var) for v, var, _ in self.counts.cells if v != pair[0]}
        return _before(self.counts, others, end)

    def alerts(self, pairs: Iterable[Pair], now: float) -> list[dict[str, Any]]:
        """Active alerts with first/last seen: slide the window back one bucket at a time
        while the same alert (kind, version, variant, feature) keeps holding."""
        step = self.counts.bucket_seconds
        latest = math.floor(now / step) * step
        horizon = min((k[2] for k in self.counts.cells), default=latest)
        result: list[dict[str, Any]] = []
        for pair in pairs:
            active = {alert.key: alert for alert in self.alerts_at(pair, latest)}
            first = dict.fromkeys(active, latest)
            holding = set(active)
            end = latest - step
            while holding and end >= horizon:
                still = {alert.key for alert in self.alerts_at(pair, end)}
                for key in list(holding):
                    if key in still:
                        first[key] = end
                    else:
                        holding.discard(key)
                end -= step
            for key, alert in active.items():
                result.append({
                    "kind": alert.kind,
                    "severity": alert.severity,
                    "model": self.model,
                    "version": alert.version,
                    "variant": alert.variant,
                    "feature": alert.feature,
                    "value": alert.value,
                    "threshold": alert.threshold,
                    "message": alert.message,
                    "first_seen": when(min(first[key] + step, now)),
                    "last_seen": when(now),
                })  # fmt: skip
        order = {s: i for i, s in enumerate(reversed(SEVERITIES))}
        result.sort(key=lambda a: (order[a["severity"]], a["kind"], a["version"], str(a["feature"])))
        return result


def error_rates(cell: Cell) -> dict[str, float | None]:
    """The share of requests that failed against the model (``server_error_rate``: 5xx and
    timeouts) apart from those a client got wrong (``client_error_rate``: 4xx, a bad body
    or a missing column): only the first is the model's doing."""
    answered = cell.answered
    if not answered:
        return {"server_error_rate": None, "client_error_rate": None}
    client = cell.errors.get("client", 0)
    return {"server_error_rate": (cell.failed - client) / answered, "client_error_rate": client / answered}


def drawn(drift: Drift, profile: FeatureProfile | None, observed: Counts | None) -> dict[str, Any]:
    """A drift's figures, and its histogram when the profile is known."""
    return {**drift.to_dict(), **({"histogram": histogram(profile, observed)} if profile is not None else {})}


def histogram(profile: FeatureProfile, observed: Counts | None) -> dict[str, Any]:
    """One feature's (or the predictions') reference distribution beside the observed one,
    bin by bin with the nulls last, as PSI compares them: ``reference`` are shares of the
    reference rows, ``observed`` counts. ``edges`` bound a numeric profile's bins (a bin is
    ``(edges[i-1], edges[i]]``), ``categories`` name the others'."""
    present = 1.0 - profile.nulls
    bins: dict[str, Any] = {"edges": list(profile.edges)} if profile.kind == NUMERIC else {
        "categories": list(profile.categories)
    }  # fmt: skip
    counts = observed.counts.tolist() if observed is not None and len(observed.counts) == profile.bins else None
    return {
        "kind": profile.kind,
        **bins,
        "reference": [p * present for p in profile.proportions] + [profile.nulls],
        "observed": [*(counts or [0] * profile.bins), observed.nulls if observed is not None else 0],
    }


def when(t: float) -> str:
    return iso(datetime.fromtimestamp(t, timezone.utc))


def pairs_of(counts: FleetCounts) -> list[Pair]:
    return sorted({(v, var) for v, var, _ in counts.cells} | set(counts.cumulative))


def cell_keys(counts: FleetCounts) -> list[CellKey]:
    return sorted(counts.cells)
