"""Partitions scored in process: the checks Dask and Spark jobs run on the driver before any
partition, and a partition's answers with the dtypes those engines hand over."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

import modelswap.dask
from modelswap.core.batch import pinned
from modelswap.core.batch.answers import Answers
from modelswap.core.batch.frames import score_frame
from modelswap.core.errors import InvalidInput
from modelswap.core.store.store import Store
from tests.models_for_tests import customers, customers_pipeline


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Any]:
    pipeline, frame = customers_pipeline()
    store = Store(tmp_path_factory.mktemp("frames") / "models")
    store.deploy("churn", store.publish("churn", pipeline, example=frame.head(20)).id)
    return store, pipeline


def test_column_problems_are_refused_when_the_dask_job_is_built_not_when_it_runs(served: tuple[Store, Any]) -> None:
    store, _ = served
    frame = dd.from_pandas(customers(40, seed=1)[0].assign(customer_id=range(40)), npartitions=2)
    with pytest.raises(InvalidInput, match=r"cannot keep 'prediction'"):
        modelswap.dask.predict(frame.assign(prediction=1), store, "churn", keep=["prediction"])
    with pytest.raises(InvalidInput, match=r"unknown column\(s\) 'customer_id'.*ignore_extra_columns=True"):
        modelswap.dask.predict(frame, store, "churn")
    with pytest.raises(InvalidInput, match=r"no column 'id' to keep"):
        modelswap.dask.predict(frame, store, "churn", keep=["id"])
    with pytest.raises(InvalidInput, match=r"method must be one of predict, predict_proba, decision_function"):
        modelswap.dask.predict(frame, store, "churn", method="decision_functio")  # type: ignore[arg-type]
    assert modelswap.dask.predict(frame, store, "churn", ignore_extra_columns=True).columns.tolist() == ["prediction"]


def test_arrow_backed_and_nullable_dtypes_score_as_the_pipeline_does(served: tuple[Store, Any]) -> None:
    store, pipeline = served
    frame, _ = customers(300, seed=2)
    typed = frame.astype({"plan": "string[pyarrow]", "tenure": "Int64"})  # missing as pd.NA, as Dask reads Parquet
    scored = modelswap.dask.predict(dd.from_pandas(typed, npartitions=3), store, "churn", method="predict_proba")
    with dask.config.set(scheduler="synchronous"):
        out = scored.compute()
    np.testing.assert_allclose(out.to_numpy(), pipeline.predict_proba(frame), rtol=1e-12)
    assert out.index.tolist() == frame.index.tolist()


def test_a_bad_value_in_a_partition_names_the_partition_row_and_column(served: tuple[Store, Any]) -> None:
    store, _ = served
    frame, _ = customers(30, seed=3)
    frame["tenure"] = frame["tenure"].astype(float)
    frame.loc[25, "tenure"] = 0.5
    scored = modelswap.dask.predict(dd.from_pandas(frame, npartitions=2), store, "churn")
    with dask.config.set(scheduler="synchronous"), pytest.raises(InvalidInput) as caught:
        scored.compute()
    assert caught.value.message == "partition 1: column 'tenure' row 10: expected a whole number, got 0.5"


def test_an_empty_partition_has_the_outputs_columns(served: tuple[Store, Any], tmp_path: Path) -> None:
    store, _ = served
    version = store.current("churn")
    loaded = pinned.load(store.root, "churn", version)
    answers = Answers.of(loaded.signature, "predict_proba", "churn")
    frame = customers(5, seed=4)[0].assign(customer_id=range(5)).head(0)
    out = score_frame(frame, loaded, answers, ["customer_id"])
    assert out.columns.tolist() == ["customer_id", "proba_churned", "proba_stayed"] and len(out) == 0
    assert isinstance(out, pd.DataFrame)


def test_a_workers_load_is_shared_only_by_jobs_with_the_same_load_settings(served: tuple[Store, Any]) -> None:
    store, _ = served
    version = store.current("churn")
    assert version is not None
    plain = pinned.load(store.root, "churn", version)
    before = pinned.loads()
    trusting = pinned.load(store.root, "churn", version, trusted_types=("sklearn.tree._tree.Tree",))
    assert trusting is not plain and pinned.loads() == before + 1  # other settings: a load of its own
    assert pinned.load(store.root, "churn", version, trusted_types=("sklearn.tree._tree.Tree",)) is trusting
    assert pinned.load(store.root, "churn", version) is plain and pinned.loads() == before + 1  # once per process
