"""``import modelswap``: the public Python API a training script or notebook uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelswap
from tests.conftest import StepClock


@pytest.fixture
def store(tmp_path: Path) -> modelswap.Store:
    return modelswap.Store(tmp_path / "models", clock=StepClock())


def test_every_public_name_is_importable_and_nothing_private_is_listed() -> None:
    assert all(hasattr(modelswap, name) for name in modelswap.__all__)
    assert not [name for name in modelswap.__all__ if name.startswith("_")]
    assert {"Store", "Client", "Version", "Transition", "HistoryEntry", "ModelswapError"} <= set(modelswap.__all__)


def test_publish_from_training_code_with_a_numpy_example_then_deploy_and_roll_back(
    store: modelswap.Store, iris_a: Any, iris_b: Any
) -> None:
    X = np.array([[6.0, 2.9, 4.5, 1.5], [5.1, 3.5, 1.4, 0.2]])
    first = store.publish("churn", iris_a, metrics={"f1": 0.9}, example=X, tags={"team": "ml"}, description="a")
    second = store.publish("churn", iris_b, metrics={"f1": 0.7}, example=X, parent=first.id)
    assert (first.tags, first.description, second.parent) == ({"team": "ml"}, "a", first.id)
    assert store.deploy("churn", first.id, reason="first").current == first.id
    assert store.deploy("churn", second.id).previous == first.id
    back = store.rollback("churn", reason="worse f1")
    assert (back.previous, back.current) == (second.id, first.id)
    assert store.version("churn", second.id).status == "rolled_back"
    assert [v.id for v in store.versions("churn")] == [second.id, first.id]
    assert [h.action for h in store.history("churn")] == ["rollback", "deploy", "deploy"]
    assert [h.reason for h in store.history("churn", limit=1)] == ["worse f1"]


def test_best_infers_the_direction_from_the_metric_name(store: modelswap.Store, iris_a: Any) -> None:
    low = store.publish("m", iris_a, metrics={"accuracy": 0.8, "log_loss": 0.2}, example=[[6.0, 2.9, 4.5, 1.5]])
    high = store.publish("m", iris_a, metrics={"accuracy": 0.9, "log_loss": 0.4}, example=[[6.0, 2.9, 4.5, 1.5]])
    assert store.best("m", "accuracy").id == high.id
    assert store.best("m", "log_loss").id == low.id
    assert store.best("m", "log_loss", lower_is_better=False).id == high.id
    with pytest.raises(modelswap.NotFound, match="no version of m has a metric 'f1'"):
        store.best("m", "f1")


def test_load_returns_the_validated_live_estimator_or_a_named_one(
    store: modelswap.Store, iris_a: Any, iris_b: Any
) -> None:
    row = [[6.0, 2.9, 4.5, 1.5]]
    a = store.publish("m", iris_a, example=row)
    b = store.publish("m", iris_b, example=row)
    with pytest.raises(modelswap.NotFound, match="no live version"):
        store.load("m")
    store.deploy("m", a.id)
    assert store.load("m").predict_proba(row).tolist() == iris_a.predict_proba(row).tolist()
    assert store.load("m", b.id).predict_proba(row).tolist() == iris_b.predict_proba(row).tolist()
    with pytest.raises(modelswap.NotFound):
        store.load("m", "20200101-000000-abcdef")


def test_the_python_api_refuses_what_the_cli_refuses(store: modelswap.Store, iris_a: Any) -> None:
    with pytest.raises(modelswap.InvalidInput, match="invalid model name"):
        store.publish("../escape", iris_a, example=[[6.0, 2.9, 4.5, 1.5]])
    with pytest.raises(modelswap.ValidationFailed, match="features"):
        store.publish("m", iris_a, example=[[1.0, 2.0]])
    assert not (store.root / "m").exists() or store.versions("m") == []
