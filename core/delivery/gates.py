"""Judging a rollout step: the canary's counts against the live version's, gate by gate.

Pure functions over the monitoring counts (core.monitoring.counts) the fleet wrote: the
driver (core.delivery.driver) gathers them, this module decides. A step with fewer than
``min_requests`` canary requests is a hold, never a pass; a gate whose figures are
missing (no stable traffic to compare with, no feedback, no shadow run) is reported as
not judged and does not block.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelswap.core.monitoring import drift
from modelswap.core.monitoring.counts import Cell, Counts
from modelswap.core.monitoring.profiles import NUMERIC, FeatureProfile

PASS, FAIL, HOLD = "pass", "fail", "hold"
MIN_LABELLED = 30  # feedback labels per variant before the quality gate judges
SERVER_ERRORS = ("server", "timeout")  # a client's bad input is not the version's fault
NOISE_DRAWS, NOISE_QUANTILE = 4000, 0.999


@dataclass(frozen=True, eq=False)
class Shift:
    """The PSI of the canary's predictions against stable's, and the counts per bin it
    was worked out from."""

    psi: float
    expected: np.ndarray  # stable's counts
    observed: np.ndarray  # the canary's

    @property
    def predictions(self) -> int:
        return int(self.observed.sum())

    @functools.cached_property
    def noise(self) -> float:
        """The PSI between two samples of these sizes drawn from one distribution (the two
        pooled) at its NOISE_QUANTILE, by drawing them NOISE_DRAWS times (1-8 ms: asked
        only of a PSI over its limit). At a few dozen predictions sampling alone gives a
        PSI over 0.2 one step in six for three classes, more for ten bins (an empty bin
        costs ``p * ln(p / epsilon)``): a gate that ignored this would abort healthy
        canaries judged on small steps. The draws are seeded, so the same counts always
        get the same bound."""
        n, m = int(self.expected.sum()), int(self.observed.sum())
        pooled = (self.expected + self.observed) / (n + m)
        rng = np.random.default_rng(0)
        a = rng.multinomial(n, pooled, size=NOISE_DRAWS) / n
        b = rng.multinomial(m, pooled, size=NOISE_DRAWS) / m
        return float(np.quantile(drift.psi_rows(a, b, drift.EPSILON), NOISE_QUANTILE))


def error_rate(cell: Cell) -> float | None:
    answered = cell.requests + sum(cell.errors.get(k, 0) for k in SERVER_ERRORS)
    return sum(cell.errors.get(k, 0) for k in SERVER_ERRORS) / answered if answered else None


def quality(cell: Cell) -> tuple[str, float] | None:
    """("accuracy", share correct) or ("mae", mean absolute error) from feedback."""
    n = cell.feedback.get("n", 0)
    if n < MIN_LABELLED:
        return None
    if cell.feedback.get("regression", 0):
        return "mae", cell.feedback.get("abs_error", 0.0) / n
    return "accuracy", cell.feedback.get("correct", 0) / n


def prediction_psi(
    stable: Counts | None, stable_profile: FeatureProfile | None,
    canary: Counts | None, canary_profile: FeatureProfile | None,
) -> Shift | None:  # fmt: skip
    """The shift of the canary's predictions from stable's, when their bins line up: class
    labels matched by name, numeric bins only when both references cut at the same edges."""
    if stable is None or canary is None or stable_profile is None or canary_profile is None:
        return None
    if stable_profile.kind == NUMERIC or canary_profile.kind == NUMERIC:
        if stable_profile.kind != canary_profile.kind or stable_profile.edges != canary_profile.edges:
            return None
        expected, observed = np.asarray(stable.counts), np.asarray(canary.counts)
    else:
        labels = sorted(set(stable_profile.categories) | set(canary_profile.categories))
        s = dict(zip(stable_profile.categories, stable.counts.tolist(), strict=False))
        c = dict(zip(canary_profile.categories, canary.counts.tolist(), strict=False))
        expected = np.asarray([s.get(x, 0) for x in labels])
        observed = np.asarray([c.get(x, 0) for x in labels])
    if expected.sum() == 0 or observed.sum() == 0:
        return None
    psi = float(drift.compare(expected.tolist(), observed.tolist(), drift.EPSILON)["psi"])
    return Shift(psi, expected, observed)


def judge(
    gates: Mapping[str, float | None],
    min_requests: int,
    canary: Cell,
    stable: Cell,
    *,
    shift: Shift | None = None,
    shadow: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The verdict on one step: ``{"verdict", "gates": [...], "failed": [...], "canary":
    {...}, "stable": {...}}``; ``fail`` when any judged gate fails, ``hold`` when the canary
    answered fewer than ``min_requests`` requests."""
    c_rate, s_rate = error_rate(canary), error_rate(stable)
    c_p99, s_p99 = canary.p99_ms(), stable.p99_ms()
    results: list[dict[str, Any]] = []

    def gate(name: str, value: float | None, *, upper: bool = True, note: str = "", excused: bool = False) -> None:
        limit = gates.get(name)
        if limit is None:
            return
        passed = None if value is None else (excused or (value <= limit if upper else value >= limit))
        results.append({"gate": name, "value": value, "limit": limit, "passed": passed, "note": note})

    gate("max_error_increase", None if c_rate is None else c_rate - (s_rate or 0.0),
         note=f"canary {_pct(c_rate)} vs stable {_pct(s_rate)}")  # fmt: skip
    slack = gates.get("latency_slack_ms") or 0.0
    close = bool(c_p99 and s_p99 and c_p99 - s_p99 <= slack)  # a histogram's p99: small gaps are its buckets
    gate("max_latency_ratio", c_p99 / s_p99 if c_p99 and s_p99 else None, excused=close,
         note=f"p99 {_ms(c_p99)} vs {_ms(s_p99)}" + (f" (within {slack:g} ms)" if close else ""))  # fmt: skip
    psi_note, noisy = "predictions not comparable (no reference profiles)", False
    psi_limit = gates.get("max_psi")
    if shift is not None:
        psi_note = ""
        if psi_limit is not None and shift.psi > psi_limit:  # over the limit by sampling alone is no failure
            noisy = shift.psi <= shift.noise
            psi_note = f"sampling alone reaches {shift.noise:.3g} at {shift.predictions} canary predictions"
    gate("max_psi", shift.psi if shift else None, excused=noisy, note=psi_note)
    compared = (shadow or {}).get("rows") or 0
    gate("min_agreement", (shadow or {}).get("agreement") if compared else None, upper=False,
         note=f"shadow, {compared} rows compared" if compared else "no shadow ran")  # fmt: skip
    cq, sq = quality(canary), quality(stable)
    drop = None
    if cq is not None and sq is not None and cq[0] == sq[0]:
        drop = sq[1] - cq[1] if cq[0] == "accuracy" else (cq[1] - sq[1]) / max(sq[1], 1e-12)
    gate("max_quality_drop", drop, note=f"{cq[0]} {cq[1]:.3f} vs {sq[1]:.3f}" if cq and sq else "too little feedback")
    answered = canary.requests + canary.failed
    failed = [r["gate"] for r in results if r["passed"] is False]
    verdict = HOLD if answered < min_requests else FAIL if failed else PASS
    return {
        "verdict": verdict,
        "gates": results,
        "failed": failed,
        "canary": {"requests": answered, "error_rate": c_rate, "p99_ms": c_p99},
        "stable": {"requests": stable.requests + stable.failed, "error_rate": s_rate, "p99_ms": s_p99},
    }


def describe(judgement: Mapping[str, Any]) -> str:
    """One line for history's reason: the failing gates with their figures."""
    parts = [
        f"{g['gate']} {_fmt(g['value'])} (limit {_fmt(g['limit'])}; {g['note']})"
        for g in judgement["gates"]
        if g["gate"] in judgement["failed"]
    ]
    return "; ".join(parts)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} ms"
