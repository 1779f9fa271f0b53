"""modelswap.dask and modelswap.spark on real engines (a two-process LocalCluster, Spark
local[2] on the JRE), each run in its own process: the same answers as ``score``, the
pinned version loaded once per worker process, a bad value named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelswap.core.store.store import Store
from tests.conftest import ROOT
from tests.models_for_tests import customers, customers_pipeline

ROWS = 20_000


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Path, Path, Any]:
    home = tmp_path_factory.mktemp("engines")
    pipeline, frame = customers_pipeline()
    store = Store(home / "models")
    store.deploy("churn", store.publish("churn", pipeline, example=frame.head(20)).id)
    table, _ = customers(ROWS, seed=13)
    table.insert(0, "customer_id", np.arange(ROWS))
    # microseconds: Spark reads no nanosecond timestamps
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), home / "in.parquet", coerce_timestamps="us")
    bad = table.head(100).astype({"tenure": float}).drop(columns="customer_id")
    bad.loc[60, "tenure"] = 2.5  # not a whole number
    pq.write_table(pa.Table.from_pandas(bad, preserve_index=False), home / "bad.parquet", coerce_timestamps="us")
    store.score("churn", home / "in.parquet", home / "scored.parquet", keep=["customer_id"])
    return store, home, home / "scored.parquet", pipeline


def run_job(engine: str, store: Store, home: Path) -> dict[str, Any]:
    argv = [sys.executable, "-m", "tests.batch_engines", engine, str(store.root), "churn"]
    argv += [str(home / "in.parquet"), str(home / f"{engine}.parquet"), str(home / "bad.parquet")]
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-5000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def same_answers(path: Path, scored: Path) -> None:
    got = pq.read_table(path).to_pandas().sort_values("customer_id")
    want = pq.read_table(scored).to_pandas()
    assert got["customer_id"].tolist() == want["customer_id"].tolist()
    assert got["prediction"].tolist() == want["prediction"].tolist()


def test_dask_on_two_worker_processes_answers_as_score_and_loads_once_per_worker(
    job: tuple[Store, Path, Path, Any],
) -> None:
    store, home, scored, pipeline = job
    report = run_job("dask", store, home)
    assert report["rows"] == ROWS
    same_answers(home / "dask.parquet", scored)
    assert report["loads"] == [1, 1]  # six partitions, two worker processes, one load each
    assert report["dtypes"] == report["meta"]  # meta (from the signature) is what the partitions hold
    assert report["proba_columns"] == ["customer_id", "proba_churned", "proba_stayed"]
    assert report["error"].startswith("InvalidInput: partition 0: ")
    assert "column 'tenure' row 60: expected a whole number, got 2.5" in report["error"]


def test_spark_local_answers_as_score_and_loads_once_per_python_worker(job: tuple[Store, Path, Path, Any]) -> None:
    store, home, scored, _ = job
    report = run_job("spark", store, home)
    assert report["rows"] == ROWS
    same_answers(home / "spark.parquet", scored)
    assert report["loads"] and set(report["loads"]) == {1}  # four partitions; each Python worker loaded once
    assert report["schema"] == "struct<customer_id:bigint,prediction:string>"
    assert report["proba_schema"] == "struct<customer_id:bigint,proba_churned:double,proba_stayed:double>"
    assert "column 'tenure' row 60: expected a whole number, got 2.5" in report["error"]
