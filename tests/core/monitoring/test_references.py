"""Publishing with a reference: reference.json profiled from the training rows, digested by
the manifest, checked by verify and every load; a reference that does not fit is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelswap.core.errors import InvalidInput, ValidationFailed
from modelswap.core.monitoring import references
from modelswap.core.monitoring.profiles import CATEGORICAL, CLASSES, NUMERIC, OTHER, column_values, load_reference
from modelswap.core.operations import Operations
from modelswap.core.store.layout import REFERENCE_FILE
from modelswap.core.store.manifest import sha256_file
from modelswap.core.store.store import Store
from modelswap.core.store.verify import verify_store
from modelswap.core.training.fit import retrain
from tests.conftest import IRIS_ROW, publish
from tests.core.store.test_store import tree
from tests.models_for_tests import RaisesAfterWarmup, churn_pipeline, imputing_pipeline


def reference_of(store: Store, model: str, version: str) -> Any:
    profile = load_reference(store.paths(model).version_dir(version))
    assert profile is not None
    return profile


def test_a_dataframe_pipeline_keeps_the_profile_of_its_training_frame(store: Store) -> None:
    model, frame = churn_pipeline()
    training = frame.copy()
    training.loc[::10, "plan"] = None  # the encoder takes nulls as unknown: plan is nullable
    version = publish(store, model, "churn", example=frame.head(5), reference=training)
    directory = store.paths("churn").version_dir(version)
    manifest = store.manifest("churn", version)
    assert manifest.files[REFERENCE_FILE] == sha256_file(directory / REFERENCE_FILE)
    assert manifest.reference == {"rows": 240, "features": ["plan", "tenure", "spend"]}
    profile = reference_of(store, "churn", version)
    plan, tenure, spend = profile.features
    assert (plan.kind, tenure.kind, spend.kind) == (CATEGORICAL, NUMERIC, NUMERIC)
    assert set(plan.categories) == {"basic", "pro", "enterprise", OTHER} and plan.nulls == pytest.approx(0.1)
    assert tenure.edges == tuple(np.quantile(frame["tenure"], np.arange(1, 10) / 10, method="inverted_cdf"))
    predicted = model.predict(training)
    assert profile.prediction.kind == CLASSES and profile.prediction.categories == ("churned", "stayed", OTHER)
    assert profile.prediction.proportions[0] == pytest.approx(float(np.mean(predicted == "churned")))
    # the model's own rows, counted as a served batch would be, land where the profile says
    X = np.array(training.astype(object).where(training.notna(), None), dtype=object)
    counts, nulls = plan.count(column_values(plan, X[:, 0]))
    assert (counts.sum(), nulls) == (216, 24)
    # verify, deploy (a full load with digests) and the version view accept it
    assert verify_store(store).ok
    store.deploy("churn", version)
    view = Operations(store).version("churn", version)
    assert view["reference"] == {"rows": 240, "features": ["plan", "tenure", "spend"]}


def test_missing_values_of_an_imputing_pipeline_are_the_nulls_share(store: Store) -> None:
    model, numbers = imputing_pipeline()
    version = publish(store, model, "imputed", example=numbers.head(5), reference=numbers)
    tenure, spend = reference_of(store, "imputed", version).features
    assert tenure.nulls == 0.0 and spend.nulls == pytest.approx(numbers["spend"].isna().mean())
    assert sum(spend.proportions) == pytest.approx(1.0)


def test_an_iris_array_gets_positional_features_and_class_shares(store: Store, iris_a: Any) -> None:
    from sklearn.datasets import load_iris

    data = load_iris().data
    version = publish(store, iris_a, reference=data)
    profile = reference_of(store, "iris", version)
    assert [f.name for f in profile.features] == ["#0", "#1", "#2", "#3"] and profile.rows == 150
    shares = np.bincount(iris_a.predict(data), minlength=3) / 150
    assert profile.prediction.categories == ("0", "1", "2", OTHER)
    assert profile.prediction.proportions == pytest.approx((*shares, 0.0))
    assert Operations(store).version("iris", version)["manifest"]["reference"]["rows"] == 150


def test_a_regressor_profiles_its_predictions_as_numbers(store: Store) -> None:
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    model = LinearRegression().fit(X, X @ [1.0, 2.0, -1.0])
    version = publish(store, model, "price", example=X[:3], reference=X.tolist())
    prediction = reference_of(store, "price", version).prediction
    assert prediction.kind == NUMERIC and prediction.bins == 10 and len(prediction.sample) == 500
    assert prediction.edges == tuple(np.quantile(model.predict(X), np.arange(1, 10) / 10, method="inverted_cdf"))


def test_a_version_without_a_reference_is_as_before(store: Store, iris_a: Any) -> None:
    version = publish(store, iris_a)
    directory = store.paths("iris").version_dir(version)
    assert not (directory / REFERENCE_FILE).exists() and load_reference(directory) is None
    assert store.manifest("iris", version).reference is None
    assert Operations(store).version("iris", version)["reference"] is None
    store.deploy("iris", version)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda f: f.rename(columns={"spend": "amount"}),
            r"reference does not fit the signature: unknown column\(s\) 'amount'; "
            r"the model takes plan, tenure, spend \(leave the target out\)",
        ),
        (lambda f: f.assign(plan=3), "column 'plan' row 0: expected a string"),
        (lambda f: f.assign(tenure=f["tenure"].astype(float).where(f.index != 4)), "column 'tenure' row 4: null"),
    ],
)
def test_a_reference_that_does_not_fit_is_refused_and_nothing_is_published(
    store: Store, iris_a: Any, change: Any, message: str
) -> None:
    model, frame = churn_pipeline()
    store.deploy("churn", publish(store, model, "churn", example=frame.head(5)))
    before = tree(store.paths("churn").versions_dir), store.paths("churn").registry.read_bytes()
    with pytest.raises(InvalidInput, match=message):
        publish(store, model, "churn", example=frame.head(5), reference=change(frame))
    assert (tree(store.paths("churn").versions_dir), store.paths("churn").registry.read_bytes()) == before
    with pytest.raises(InvalidInput, match="the reference must be rows"):
        publish(store, iris_a, reference=[])
    assert not store.paths("iris").dir.exists()


def test_a_reference_the_model_cannot_predict_is_refused(store: Store) -> None:
    with pytest.raises(ValidationFailed, match="predict on the reference failed: RuntimeError: negative input"):
        publish(store, RaisesAfterWarmup(), "picky", reference=[IRIS_ROW, [-1.0, 0.0, 0.0, 0.0]])
    assert not store.paths("picky").dir.exists()


def test_tampering_with_reference_json_makes_the_version_corrupt(store: Store, iris_a: Any) -> None:
    version = publish(store, iris_a, reference=[IRIS_ROW] * 20)
    path = store.paths("iris").version_dir(version) / REFERENCE_FILE
    path.write_bytes(path.read_bytes().replace(b'"rows":20', b'"rows":21'))
    report = verify_store(store)
    assert not report.ok and {p.kind for p in report.problems} == {"corrupt"}
    assert "reference.json" in " ".join(p.message for p in report.problems)
    with pytest.raises(ValidationFailed, match="reference.json sha256 differs"):
        store.deploy("iris", version)


def test_a_big_reference_is_sampled_with_a_fixed_seed(store: Store, iris_a: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(references, "MAX_REFERENCE_ROWS", 100)
    rows = np.random.default_rng(0).normal(5, 1, size=(1000, 4))
    first = reference_of(store, "iris", publish(store, iris_a, reference=rows))
    again = reference_of(store, "iris", publish(store, iris_a, reference=rows))
    assert first.rows == 100 and first == again


def test_training_publishes_its_training_split_as_the_reference(store: Store) -> None:
    outcome = retrain(store, "iris", dataset="iris", estimator="decision_tree", actor="test")
    profile = reference_of(store, "iris", outcome.version)
    assert profile.rows == outcome.metrics["n_train"] == 112
    assert store.manifest("iris", outcome.version).reference == {"rows": 112, "features": ["#0", "#1", "#2", "#3"]}


def test_the_profile_survives_a_sandboxed_inspection(store: Store, iris_file: Path) -> None:
    from sklearn.datasets import load_iris

    from modelswap.core.store.sandbox import SandboxLimits

    data = load_iris().data.tolist()
    version = store.publish("iris", iris_file, example=[IRIS_ROW], reference=data, sandbox=SandboxLimits()).id
    assert reference_of(store, "iris", version).rows == 150
    with pytest.raises(InvalidInput, match=r"column #1 row 2: expected a number"):
        store.publish(
            "iris", iris_file, example=[IRIS_ROW], reference=[IRIS_ROW] * 2 + [[1, "x", 1, 1]], sandbox=SandboxLimits()
        )
