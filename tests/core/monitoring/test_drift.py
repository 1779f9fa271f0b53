"""Drift math on real distributions: PSI decides, KS informs, no verdict on too few rows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from modelswap.core.errors import InvalidInput
from modelswap.core.monitoring.drift import (
    Drift,
    Thresholds,
    compare,
    dataset_verdict,
    feature_drift,
    js_distance,
    kl_divergence,
    ks,
    psi,
)
from modelswap.core.monitoring.profiles import FeatureProfile, build_profile
from modelswap.core.schema.signature import Column, Output, Signature

T = Thresholds()


def numeric_profile(values: np.ndarray) -> FeatureProfile:
    sig = Signature((Column("x", "double", True),), output=Output(("predict",)))
    return build_profile(sig, values.reshape(-1, 1), values).features[0]


def drift_of(profile: FeatureProfile, values: np.ndarray, t: Thresholds = T) -> Drift:
    counts, nulls = profile.count(values)
    return feature_drift(profile, counts, nulls, values[~np.isnan(values)][:1000].tolist(), t)


def test_psi_by_hand_and_its_smoothing() -> None:
    expected, observed = [0.5, 0.5], [80, 20]
    by_hand = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert psi(expected, observed, 1e-12) == pytest.approx(by_hand)
    assert psi(expected, [50, 50], 1e-4) == 0.0
    # an empty bin on one side is finite thanks to epsilon, and large
    assert 1.0 < psi([0.5, 0.5, 0.0], [40, 40, 20], 1e-4) < math.inf


def test_js_is_a_bounded_symmetric_distance_and_kl_is_observed_against_expected() -> None:
    assert js_distance([0.5, 0.5], [50, 50], 1e-4) == 0.0
    assert js_distance([1.0, 0.0], [0, 100], 1e-9) == pytest.approx(1.0, abs=1e-3)
    assert js_distance([0.2, 0.8], [80, 20], 1e-4) == pytest.approx(js_distance([0.8, 0.2], [20, 80], 1e-4))
    o, e = np.array([0.8, 0.2]), np.array([0.5, 0.5])
    assert kl_divergence(e.tolist(), [80, 20], 1e-12) == pytest.approx(float(np.sum(o * np.log(o / e))))
    assert kl_divergence([0.8, 0.2], [50, 50], 1e-12) != pytest.approx(kl_divergence([0.5, 0.5], [80, 20], 1e-12))


def test_compare_takes_two_count_vectors() -> None:
    same = compare([10, 30, 60], [100, 300, 600], 1e-4)
    assert same == {"psi": pytest.approx(0.0, abs=1e-12), "js": pytest.approx(0.0, abs=1e-6), "kl": pytest.approx(0.0)}
    moved = compare([10, 30, 60], [60, 30, 10], 1e-4)
    assert moved["psi"] > 0.25 and 0 < moved["js"] < 1 and moved["kl"] > 0
    with pytest.raises(ValueError, match="no values"):
        compare([0, 0], [1, 1], 1e-4)
    with pytest.raises(ValueError, match="bins"):
        compare([1, 1], [1, 1, 1], 1e-4)


def test_a_shifted_column_is_a_warning_and_the_same_one_is_not() -> None:
    rng = np.random.default_rng(0)
    profile = numeric_profile(rng.normal(0, 1, size=20000))
    same = drift_of(profile, rng.normal(0, 1, size=2000))
    assert same.severity == "none" and same.psi is not None and same.psi < 0.1
    shifted = drift_of(profile, rng.normal(1, 1, size=2000))
    assert shifted.severity == "warning" and shifted.psi is not None and shifted.psi >= 0.25
    assert shifted.ks is not None and shifted.ks_pvalue is not None and shifted.ks_pvalue < 1e-6
    slight = drift_of(profile, rng.normal(0.35, 1, size=2000))
    assert slight.severity == "info"


def test_ks_is_information_only_at_large_n() -> None:
    """A shift of 0.05 standard deviations: KS calls it significant at 100,000 values,
    PSI rightly calls it nothing."""
    rng = np.random.default_rng(1)
    profile = numeric_profile(rng.normal(0, 1, size=100000))
    observed = rng.normal(0.05, 1, size=100000)
    statistic, pvalue = ks(rng.normal(0, 1, size=100000), observed)
    assert pvalue < 1e-6 and statistic > 0
    drift = drift_of(profile, observed)
    assert drift.severity == "none"


def test_fewer_rows_than_min_samples_give_no_verdict() -> None:
    rng = np.random.default_rng(2)
    profile = numeric_profile(rng.normal(0, 1, size=5000))
    drift = drift_of(profile, rng.normal(5, 1, size=199))
    assert (drift.severity, drift.samples, drift.psi, drift.ks) == ("insufficient_data", 199, None, None)
    assert drift_of(profile, rng.normal(5, 1, size=199), Thresholds(min_samples=100)).severity == "warning"


def test_a_column_that_starts_arriving_null_has_drifted() -> None:
    rng = np.random.default_rng(3)
    profile = numeric_profile(rng.normal(0, 1, size=5000))
    values = rng.normal(0, 1, size=1000)
    values[:400] = np.nan
    drift = drift_of(profile, values)
    assert (drift.samples, drift.nulls, drift.severity) == (600, 400, "warning")
    assert drift_of(profile, np.full(500, np.nan)).severity == "warning"  # all null: still judged


def test_a_categorical_feature_has_no_ks_and_unseen_categories_drift() -> None:
    sig = Signature((Column("plan", "string", True),), output=Output(("predict",)))
    X = np.array([["basic"], ["pro"]] * 500, dtype=object)
    (plan,) = build_profile(sig, X, np.zeros(1000)).features
    counts, nulls = plan.count(np.array(["basic", "pro", "gold", "gold"] * 100, dtype=object))
    drift = feature_drift(plan, counts, nulls, None, T)
    assert drift.ks is None and drift.severity == "warning" and counts[-1] == 200
    assert drift.to_dict()["feature"] == "plan" and set(drift.to_dict()) >= {"psi", "js", "kl", "ks_pvalue"}


def test_dataset_verdict_counts_the_share_of_warning_features() -> None:
    def d(name: str, severity: str) -> Drift:
        return Drift(name, 500, 0.0, 0.0, 0.0, None, None, severity)

    drifts = [d("a", "warning"), d("b", "warning"), d("c", "none"), d("e", "insufficient_data")]
    assert dataset_verdict(drifts, T) == {"severity": "warning", "drifted": ["a", "b"], "share": 2 / 3, "features": 3}
    assert dataset_verdict(drifts, Thresholds(dataset_share=0.8))["severity"] == "info"
    assert dataset_verdict([d("a", "none"), d("b", "none")], T)["severity"] == "none"
    assert dataset_verdict([d("a", "no_reference")], T) == {
        "severity": "insufficient_data",
        "drifted": [],
        "share": 0.0,
        "features": 0,
    }


def test_thresholds_round_trip_take_defaults_and_name_the_bad_field() -> None:
    assert Thresholds.from_dict({}) == Thresholds()
    custom = Thresholds.from_dict({"psi_warning": 0.3, "min_samples": 50})
    assert (custom.psi_warning, custom.min_samples, custom.psi_info) == (0.3, 50, 0.1)
    assert Thresholds.from_dict(custom.to_dict()) == custom


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"psi_warn": 0.3}, "unknown threshold.*psi_warn"),
        ({"psi_info": "0.1"}, "psi_info must be a finite number"),
        ({"min_samples": True}, "min_samples must be a finite number"),
        ({"min_samples": 2.5}, "min_samples must be a whole number"),
        ({"min_samples": 0}, "min_samples must be a whole number"),
        ({"psi_info": 0.3, "psi_warning": 0.2}, "psi_warning .* must not be below psi_info"),
        ({"dataset_share": 0}, "dataset_share"),
        ({"epsilon": 0}, "epsilon"),
        ({"epsilon": float("nan")}, "epsilon must be a finite number"),
        ([], "must be an object"),
    ],
)
def test_bad_thresholds_are_refused(data: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Thresholds.from_dict(data)
