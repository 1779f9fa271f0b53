"""Drift math: how far served values have moved from a version's reference profile.

Pure functions on counts (NumPy, and ``scipy.stats`` for the KS test). The verdict of a
feature is its PSI (population stability index) over the profile's bins, with the
nulls as one more bin: a column that starts arriving empty has drifted too. Jensen-
Shannon distance and KL divergence are computed on the same smoothed distributions for
those who prefer them; the two-sample KS statistic is information only (at a few
thousand values it calls every harmless wobble significant). No verdict is given under
``min_samples`` observed rows: a PSI of a few dozen values is noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from modelswap.core.errors import InvalidInput
from modelswap.core.monitoring.profiles import NUMERIC, FeatureProfile

NONE, INFO, WARNING = "none", "info", "warning"
INSUFFICIENT_DATA, NO_REFERENCE = "insufficient_data", "no_reference"
SEVERITIES = (NONE, INFO, WARNING, INSUFFICIENT_DATA, NO_REFERENCE)
JUDGED = (NONE, INFO, WARNING)  # severities that are a verdict


EPSILON = 1e-4  # the smoothing of an empty bin (Thresholds.epsilon's default)


@dataclass(frozen=True)
class Thresholds:
    """When a PSI is worth telling (``psi_info``) or a warning (``psi_warning``); how many
    observed rows a verdict needs; the share of warning features that makes the whole
    input drift; the smoothing of empty bins. Per model (monitor.json); the defaults are
    the usual rule of thumb: PSI < 0.1 stable, 0.1-0.25 moderate, >= 0.25 significant."""

    psi_info: float = 0.1
    psi_warning: float = 0.25
    min_samples: int = 200
    dataset_share: float = 0.5
    epsilon: float = EPSILON

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Thresholds:
        """Thresholds from JSON: missing fields take their defaults, unknown ones are refused."""
        if not isinstance(data, Mapping):
            raise InvalidInput('drift thresholds must be an object, e.g. {"psi_warning": 0.25}')
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise InvalidInput(f"unknown threshold(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        defaults = cls()
        values = {name: data.get(name, getattr(defaults, name)) for name in known}
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InvalidInput(f"threshold {name} must be a finite number, got {value!r}")
        if not isinstance(values["min_samples"], int) or values["min_samples"] < 1:
            raise InvalidInput(
                f"threshold min_samples must be a whole number of 1 or more, got {values['min_samples']!r}"
            )
        if values["psi_info"] < 0:
            raise InvalidInput(f"threshold psi_info must be 0 or more, got {values['psi_info']!r}")
        if values["psi_warning"] < values["psi_info"]:
            raise InvalidInput(
                f"threshold psi_warning ({values['psi_warning']!r}) must not be below psi_info ({values['psi_info']!r})"
            )
        if not 0 < values["dataset_share"] <= 1:
            raise InvalidInput(
                f"threshold dataset_share must be above 0 and at most 1, got {values['dataset_share']!r}"
            )
        if not 0 < values["epsilon"] < 0.01:
            raise InvalidInput(f"threshold epsilon must be above 0 and below 0.01, got {values['epsilon']!r}")
        return cls(
            psi_info=float(values["psi_info"]),
            psi_warning=float(values["psi_warning"]),
            min_samples=int(values["min_samples"]),
            dataset_share=float(values["dataset_share"]),
            epsilon=float(values["epsilon"]),
        )


@dataclass(frozen=True)
class Drift:
    """One feature's (or the predictions') drift from its reference.

    ``samples`` are the observed non-null values and ``nulls`` the observed nulls; the
    verdict needs ``samples + nulls >= min_samples``. The numbers are None without one
    (``insufficient_data``, ``no_reference``); ``ks`` also for non-numeric features.
    """

    feature: str
    samples: int
    psi: float | None
    js: float | None
    kl: float | None
    ks: float | None
    ks_pvalue: float | None
    severity: str
    nulls: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def smoothed(proportions: Sequence[float] | np.ndarray, epsilon: float) -> np.ndarray:
    """``(p + epsilon) / (1 + k * epsilon)`` along the last axis (the bins; one
    distribution per row of a 2-D array): every bin gets a little mass, so a bin empty on
    one side gives a large but finite log ratio, and the result still sums to 1."""
    p = np.asarray(proportions, dtype=np.float64)
    out: np.ndarray = (p + epsilon) / (p.sum(axis=-1, keepdims=True) + p.shape[-1] * epsilon)
    return out


def _shares(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    total = float(c.sum())
    if total <= 0:
        raise ValueError("no values were counted")
    out: np.ndarray = c / total
    return out


def _check(expected: Sequence[float] | np.ndarray, observed: Sequence[int] | np.ndarray) -> None:
    if len(expected) != len(observed) or not len(expected):
        raise ValueError(f"{len(expected)} expected bins and {len(observed)} observed ones")


def psi(expected: Sequence[float], observed_counts: Sequence[int], epsilon: float) -> float:
    """Population stability index, ``sum((o - e) * ln(o / e))`` over the bins, of the
    observed shares against the expected (reference) proportions, both smoothed by
    ``epsilon``. Symmetric, 0 for identical distributions, and read on a fixed scale
    (0.1, 0.25), which is why it gives the verdict."""
    _check(expected, observed_counts)
    return float(psi_rows(expected, _shares(observed_counts), epsilon))


def psi_rows(expected: Sequence[float] | np.ndarray, observed: np.ndarray, epsilon: float) -> np.ndarray:
    """:func:`psi` of shares along the last axis: one PSI per row of 2-D arrays."""
    e, o = smoothed(expected, epsilon), smoothed(observed, epsilon)
    out: np.ndarray = np.sum((o - e) * np.log(o / e), axis=-1)
    return out


def kl_divergence(expected: Sequence[float], observed_counts: Sequence[int], epsilon: float) -> float:
    """KL(observed || expected) in nats on the smoothed distributions: the information
    lost describing what is served with the reference. Unbounded and asymmetric."""
    _check(expected, observed_counts)
    e, o = smoothed(expected, epsilon), smoothed(_shares(observed_counts), epsilon)
    return float(np.sum(o * np.log(o / e)))


def js_distance(expected: Sequence[float], observed_counts: Sequence[int], epsilon: float) -> float:
    """Jensen-Shannon distance (the square root of the divergence, base 2) on the
    smoothed distributions: symmetric and bounded, 0 (same) to 1 (disjoint)."""
    _check(expected, observed_counts)
    e, o = smoothed(expected, epsilon), smoothed(_shares(observed_counts), epsilon)
    m = (e + o) / 2
    divergence = (np.sum(e * np.log2(e / m)) + np.sum(o * np.log2(o / m))) / 2
    return float(math.sqrt(max(float(divergence), 0.0)))


def ks(reference_sample: Sequence[float], observed_sample: Sequence[float]) -> tuple[float, float]:
    """(statistic, p-value) of the two-sample Kolmogorov-Smirnov test
    (``scipy.stats.ks_2samp``). Information only: with enough values its p-value is tiny
    for any difference at all, drift or not."""
    from scipy.stats import ks_2samp

    result = ks_2samp(np.asarray(reference_sample, dtype=np.float64), np.asarray(observed_sample, dtype=np.float64))
    return float(result.statistic), float(result.pvalue)


def compare(expected_counts: Sequence[int], observed_counts: Sequence[int], eps: float) -> dict[str, float]:
    """``{"psi", "js", "kl"}`` between two count vectors over the same bins (the canary's
    predictions against the stable version's); ValueError if either counted nothing."""
    expected = _shares(expected_counts)
    return {
        "psi": psi(expected.tolist(), observed_counts, eps),
        "js": js_distance(expected.tolist(), observed_counts, eps),
        "kl": kl_divergence(expected.tolist(), observed_counts, eps),
    }


def feature_drift(
    profile: FeatureProfile, counts: np.ndarray, nulls: int, sample: Sequence[float] | None, t: Thresholds
) -> Drift:
    """The drift of observed ``counts`` (per bin, from :meth:`FeatureProfile.count`) and
    ``nulls`` from ``profile``, judged by PSI; KS of ``sample`` (observed numbers)
    against the profile's sample as information. The nulls are one more bin on both
    sides (the reference's share of nulls against the observed one)."""
    samples = int(np.sum(counts))
    if len(counts) != profile.bins:
        raise ValueError(f"{profile.name}: {len(counts)} counts for {profile.bins} bins")
    if samples + nulls < t.min_samples:
        return Drift(profile.name, samples, None, None, None, None, None, INSUFFICIENT_DATA, nulls)
    present = 1.0 - profile.nulls
    expected = [p * present for p in profile.proportions] + [profile.nulls]
    if sum(expected) <= 0:
        return Drift(profile.name, samples, None, None, None, None, None, NO_REFERENCE, nulls)
    observed = [*np.asarray(counts, dtype=np.int64).tolist(), int(nulls)]
    value = psi(expected, observed, t.epsilon)
    statistic = pvalue = None
    if profile.kind == NUMERIC and profile.sample and sample is not None and len(sample):
        statistic, pvalue = ks(profile.sample, sample)
    severity = WARNING if value >= t.psi_warning else INFO if value >= t.psi_info else NONE
    return Drift(
        profile.name,
        samples,
        value,
        js_distance(expected, observed, t.epsilon),
        kl_divergence(expected, observed, t.epsilon),
        statistic,
        pvalue,
        severity,
        nulls,
    )


def dataset_verdict(drifts: Sequence[Drift], t: Thresholds) -> dict[str, Any]:
    """The input as a whole: ``warning`` when at least ``dataset_share`` of the features
    with a verdict are at ``warning``, ``info`` when any is at info or warning, ``none``
    otherwise; ``insufficient_data`` when no feature has a verdict yet. Pass the input
    features' drifts (the prediction's is judged on its own). ``features`` counts the
    features with a verdict, the denominator of ``share``."""
    judged = [d for d in drifts if d.severity in JUDGED]
    drifted = [d.feature for d in judged if d.severity == WARNING]
    share = len(drifted) / len(judged) if judged else 0.0
    if not judged:
        severity = INSUFFICIENT_DATA
    elif share >= t.dataset_share:
        severity = WARNING
    elif any(d.severity in (INFO, WARNING) for d in judged):
        severity = INFO
    else:
        severity = NONE
    return {"severity": severity, "drifted": drifted, "share": share, "features": len(judged)}
