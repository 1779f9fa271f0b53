"""Reference profiles: bins from real data, counting served values into them, the JSON form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from modelswap.core.errors import InvalidInput
from modelswap.core.monitoring.drift import Thresholds, feature_drift
from modelswap.core.monitoring.profiles import (
    CATEGORICAL,
    CLASSES,
    DECILES,
    NUMERIC,
    OTHER,
    REFERENCE_FILE,
    SAMPLE_SIZE,
    FeatureProfile,
    ReferenceProfile,
    build_profile,
    column_values,
    load_reference,
)
from modelswap.core.schema.signature import Column, Output, Signature

CLASSIFIER = Output(("predict",), ("churned", "stayed"))


def signature(*columns: tuple[str | None, str], output: Output | None = CLASSIFIER) -> Signature:
    return Signature(tuple(Column(name, kind, True) for name, kind in columns), output=output)


def table(*columns: list[Any]) -> np.ndarray:
    """Prepared rows as an object array (what inputs.prepare gives a mixed signature)."""
    out = np.empty((len(columns[0]), len(columns)), dtype=object)
    for i, values in enumerate(columns):
        out[:, i] = values
    return out


def test_numeric_edges_are_the_deciles_and_every_bin_holds_a_tenth() -> None:
    values = np.random.default_rng(0).normal(50, 10, size=5000)
    profile = build_profile(signature((None, "double")), values.reshape(-1, 1), ["stayed"] * 5000)
    (spend,) = profile.features
    assert (spend.name, spend.kind, spend.bins) == ("#0", NUMERIC, 10)
    assert spend.edges == tuple(np.quantile(values, DECILES, method="inverted_cdf"))
    assert spend.proportions == (0.1,) * 10 and spend.nulls == 0.0
    counts, nulls = spend.count(values)
    assert counts.tolist() == [500] * 10 and nulls == 0 and counts.dtype == np.int64


def test_ties_dedupe_edges_a_constant_column_has_one_bin_and_booleans_two() -> None:
    X = np.array([[7.0, float(i % 10 < 3), float(i % 4)] for i in range(1000)])
    sig = signature(("constant", "double"), ("flag", "boolean"), ("level", "long"))
    constant, flag, level = build_profile(sig, X, ["stayed"] * 1000).features
    assert (constant.edges, constant.proportions) == ((), (1.0,))
    assert (flag.edges, flag.proportions) == ((0.0,), (0.7, 0.3))
    assert (level.edges, level.proportions) == ((0.0, 1.0, 2.0), (0.25, 0.25, 0.25, 0.25))


def test_a_value_equal_to_an_edge_counts_in_the_bin_it_closes() -> None:
    profile = FeatureProfile("x", NUMERIC, (0.0, 1.0), (), (0.4, 0.3, 0.3), 0.0, ())
    counts, nulls = profile.count(np.array([-np.inf, 0.0, 0.5, 1.0, 1.5, np.inf, np.nan]))
    assert counts.tolist() == [2, 2, 2] and nulls == 1


def test_nulls_are_counted_apart_from_the_bins() -> None:
    spend = [float("nan") if i % 5 == 0 else float(i) for i in range(100)]
    plan = [None if i % 4 == 0 else "pro" for i in range(100)]
    X = table(plan, spend)
    plan_profile, spend_profile = build_profile(
        signature(("plan", "string"), ("spend", "double")), X, ["stayed"] * 100
    ).features
    assert plan_profile.nulls == 0.25 and spend_profile.nulls == 0.2
    assert sum(spend_profile.proportions) == pytest.approx(1.0) and plan_profile.proportions == (1.0, 0.0)
    counts, nulls = spend_profile.count(column_values(spend_profile, X[:, 1]))
    assert (counts.sum(), nulls) == (80, 20)
    counts, nulls = plan_profile.count(column_values(plan_profile, X[:, 0]))
    assert (counts.tolist(), nulls) == ([75, 0], 25)


def test_categories_keep_the_50_most_frequent_and_unseen_ones_land_in_other() -> None:
    values = [f"c{i:02d}" for i in range(60) for _ in range(60 - i)]  # c00 most frequent
    (cats,) = build_profile(signature(("city", "string")), table(values), ["stayed"] * len(values)).features
    assert cats.kind == CATEGORICAL and cats.bins == 51
    assert cats.categories[:3] == ("c00", "c01", "c02") and cats.categories[-1] == OTHER
    assert cats.proportions[-1] == pytest.approx(sum(range(1, 11)) / len(values))  # c50..c59
    counts, nulls = cats.count(np.array(["c00", "c59", "never-seen", None, 3], dtype=object))
    assert counts[0] == 1 and counts[-1] == 3 and nulls == 1 and counts.sum() == 4


def test_a_category_named_like_the_other_bucket_goes_to_it() -> None:
    (cats,) = build_profile(signature(("c", "string")), table(["a", OTHER, OTHER]), ["stayed"] * 3).features
    assert cats.categories == ("a", OTHER) and cats.proportions == pytest.approx((1 / 3, 2 / 3))


def test_the_numeric_sample_is_bounded_seeded_and_whole_when_small() -> None:
    big = np.random.default_rng(1).normal(size=(5000, 1))
    first = build_profile(signature(("x", "double")), big, ["stayed"] * 5000, seed=3).features[0]
    again = build_profile(signature(("x", "double")), big, ["stayed"] * 5000, seed=3).features[0]
    other = build_profile(signature(("x", "double")), big, ["stayed"] * 5000, seed=4).features[0]
    assert len(first.sample) == SAMPLE_SIZE and first.sample == again.sample != other.sample
    assert set(first.sample) <= set(big[:, 0].tolist())
    small = np.array([[3.0], [1.0], [np.nan], [2.0]])
    assert build_profile(signature(("x", "double")), small, ["stayed"] * 4).features[0].sample == (1.0, 2.0, 3.0)


def test_datetimes_are_binned_as_nanoseconds() -> None:
    days = [np.datetime64("2026-01-01", "ns") + np.timedelta64(i, "D") for i in range(100)]
    X = table(days, ["a"] * 100)
    (when, _) = build_profile(signature(("when", "datetime"), ("s", "string")), X, ["stayed"] * 100).features
    assert when.kind == NUMERIC and when.bins == 10
    assert when.edges[0] == float(np.datetime64("2026-01-10", "ns").astype(np.int64))
    counts, nulls = when.count(column_values(when, table([days[0], None])[:, 0]))
    assert (counts.tolist()[0], nulls) == (1, 1)


def test_a_classifier_profiles_its_class_shares_and_a_regressor_its_deciles() -> None:
    X = np.arange(100, dtype=np.float64).reshape(-1, 1)
    labels = np.array([0] * 30 + [2] * 70)
    classes = Output(("predict", "predict_proba"), (0, 1, 2))
    prediction = build_profile(signature((None, "double"), output=classes), X, labels).prediction
    assert prediction is not None and prediction.kind == CLASSES and prediction.name == "prediction"
    assert prediction.categories == ("0", "1", "2", OTHER) and prediction.proportions == (0.3, 0.0, 0.7, 0.0)
    counts, nulls = prediction.count(column_values(prediction, np.array([2, 2, 1, 5])))
    assert counts.tolist() == [0, 1, 2, 1] and nulls == 0
    regression = build_profile(signature((None, "double"), output=Output(("predict",))), X, X[:, 0] * 2.5).prediction
    assert regression is not None and regression.kind == NUMERIC and regression.bins == 10
    assert len(regression.sample) == 100
    assert build_profile(signature((None, "double")), X, np.zeros((100, 2))).prediction is None


def test_counting_the_reference_itself_gives_no_drift() -> None:
    rng = np.random.default_rng(2)
    spend = rng.gamma(2.0, 20.0, size=3000)
    plan = rng.choice(["basic", "pro", "enterprise"], size=3000).tolist()
    X = table(plan, spend.tolist())
    profile = build_profile(signature(("plan", "string"), ("spend", "double")), X, ["stayed"] * 3000)
    for i, feature in enumerate(profile.features):
        counts, nulls = feature.count(column_values(feature, X[:, i]))
        drift = feature_drift(feature, counts, nulls, X[:1000, i].tolist() if i else None, Thresholds())
        assert drift.psi == pytest.approx(0.0, abs=1e-12) and drift.severity == "none"


def test_column_values_hands_a_float64_column_over_without_a_copy() -> None:
    X = np.random.default_rng(0).normal(size=(64, 3))
    feature = FeatureProfile("x", NUMERIC, (0.0,), (), (0.5, 0.5), 0.0, ())
    assert np.shares_memory(column_values(feature, X[:, 1]), X)
    objects = table([1, None, True, 2.5])
    assert np.allclose(column_values(feature, objects[:, 0]), [1.0, np.nan, 1.0, 2.5], equal_nan=True)


def test_the_json_form_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    X = table(rng.choice(["a", "b", None], 500).tolist(), rng.normal(size=500).tolist())
    profile = build_profile(
        signature(("plan", "string"), ("spend", "double")), X, rng.choice(["churned", "stayed"], 500)
    )
    assert ReferenceProfile.from_dict(orjson.loads(orjson.dumps(profile.to_dict()))) == profile
    assert load_reference(tmp_path) is None
    (tmp_path / REFERENCE_FILE).write_bytes(orjson.dumps(profile.to_dict()))
    loaded = load_reference(tmp_path)
    assert loaded == profile and loaded.summary() == {"rows": 500, "features": ["plan", "spend"]}


def good() -> dict[str, Any]:
    return {
        "format": 1,
        "rows": 10,
        "features": [
            {
                "name": "x",
                "kind": "numeric",
                "edges": [1.0, 2.0],
                "proportions": [0.2, 0.3, 0.5],
                "nulls": 0.1,
                "sample": [1.5],
            },
            {"name": "c", "kind": "categorical", "categories": ["a", OTHER], "proportions": [1.0, 0.0], "nulls": 0.0},
        ],
        "prediction": {"name": "prediction", "kind": "classes", "categories": ["0", OTHER], "proportions": [1, 0]},
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(rows=0), "rows"),
        (lambda d: d.update(format=9), "format"),
        (lambda d: d.update(features=[]), "non-empty"),
        (lambda d: d["features"][0].update(edges=[2.0, 1.0]), "ascending"),
        (lambda d: d["features"][0].update(edges=[1.0, float("inf")]), "finite"),
        (lambda d: d["features"][0].update(proportions=[0.5, 0.5]), "2 proportions for 3 bins"),
        (lambda d: d["features"][0].update(proportions=[0.5, 0.5, 0.5]), "sum to 1"),
        (lambda d: d["features"][0].update(nulls=1.5), "nulls"),
        (lambda d: d["features"][0].update(kind="ordinal"), "kind"),
        (lambda d: d["features"][0].update(sample=[0.0] * 1001), "at most 1000"),
        (lambda d: d["features"][1].update(categories=["a", "b"]), "ending with '__other__'"),
        (lambda d: d["features"][1].update(name="x"), "twice"),
        (lambda d: d.update(prediction=[]), "feature profile"),
    ],
)
def test_a_malformed_profile_is_refused_saying_what_is_wrong(change: Any, message: str) -> None:
    assert ReferenceProfile.from_dict(good()).rows == 10
    data = good()
    change(data)
    with pytest.raises(InvalidInput, match=message):
        ReferenceProfile.from_dict(data)


def test_a_damaged_reference_file_is_invalid_input_naming_it(tmp_path: Path) -> None:
    (tmp_path / REFERENCE_FILE).write_text("{not json")
    with pytest.raises(InvalidInput, match="reference.json is not valid JSON"):
        load_reference(tmp_path)
