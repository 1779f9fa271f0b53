#!/usr/bin/env python3
"""Batch scoring against its ceilings: ``modelswap score`` next to a hand-written pyarrow
loop, Dask next to ``score``, Spark next to a plain pandas UDF, on one Parquet file.

    python scripts/bench_batch.py [--rows 2000000] [--chunk-rows 65536] [--rounds 2]
                                  [--models pipeline,forest] [--parts score,memory,dask,spark]
                                  [--mlflow BIN]

Models: ``pipeline`` the ColumnTransformer (imputers, one-hot, scaler, logistic regression)
on a customer table with strings, whole numbers, gaps and dates; ``forest`` a
RandomForestClassifier of 200 trees on 20 numeric columns.

- score: rows/s of ``modelswap score`` and of the ceiling (the same file read in
  ``--chunk-rows`` record batches, ``batch.to_pandas()``, ``model.predict``, a pyarrow
  Parquet writer: no signature check, no metadata, no history), each a whole process timed
  from start to exit (both import, load the model and score), rounds interleaved; the
  ratio is the median of per-round ratios. With ``--mlflow BIN``
  (an ``mlflow`` executable), ``mlflow models predict`` on the same rows as CSV too.
- memory: peak RSS of ``score`` on all rows and on a tenth of them (bounded by the chunk,
  not the file).
- dask: ``modelswap.dask.predict`` on a two-process LocalCluster, to Parquet, vs ``score``.
- spark: ``modelswap.spark.predict`` on ``local[2]`` vs a pandas UDF (``mapInPandas``
  calling the estimator loaded with joblib), both to Parquet.
Nothing is asserted; the figures go in notes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GROUP = 131_072  # Parquet row group: what Dask and Spark split the file by
sys.path.insert(0, str(ROOT))

CEILING = r"""
import sys, time, joblib, pyarrow as pa, pyarrow.parquet as pq
model = joblib.load(sys.argv[1]); source, target, chunk = sys.argv[2], sys.argv[3], int(sys.argv[4])
start = time.perf_counter(); writer = None; rows = 0
for batch in pq.ParquetFile(source).iter_batches(batch_size=chunk):
    frame = batch.to_pandas()
    if "customer_id" in frame: frame = frame.drop(columns="customer_id")
    answer = model.predict(frame if hasattr(model, "feature_names_in_") else frame.to_numpy())
    table = pa.table({"prediction": answer})
    writer = writer or pq.ParquetWriter(target, table.schema)
    writer.write_table(table); rows += len(table)
writer.close()
print(rows / (time.perf_counter() - start))
"""

DASK = r"""
import sys, time
import dask.dataframe as dd
from distributed import Client, LocalCluster
import modelswap.dask
if __name__ == "__main__":
    root, model, source, target = sys.argv[1:5]
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
    with cluster, Client(cluster):
        frame = dd.read_parquet(source, split_row_groups=True)  # a partition per row group
        keep = ["customer_id"] if "customer_id" in frame.columns else []
        start = time.perf_counter()
        modelswap.dask.predict(frame, root, model, keep=keep).to_parquet(target)
        print(len(dd.read_parquet(target)) / (time.perf_counter() - start))
"""

SPARK = r"""
import os, sys, time, joblib
os.environ["PYSPARK_PYTHON"] = sys.executable
from pyspark.sql import SparkSession, types as T
import modelswap.spark
root, model, source, target, kind, model_file = sys.argv[1:7]
spark = (SparkSession.builder.master("local[2]").config("spark.driver.host", "127.0.0.1")
         .config("spark.driver.bindAddress", "127.0.0.1").config("spark.ui.enabled", "false")
         .config("spark.driver.memory", "4g").getOrCreate())
frame = spark.read.parquet(source)
frame.count()
keep = ["customer_id"] if "customer_id" in frame.columns else []
start = time.perf_counter()
if kind == "modelswap":
    out = modelswap.spark.predict(frame, root, model, keep=keep)
else:
    def plain(batches):
        estimator = joblib.load(model_file)
        for batch in batches:
            ids = batch[keep]
            inputs = batch.drop(columns=keep)
            x = inputs if hasattr(estimator, "feature_names_in_") else inputs.to_numpy()
            yield ids.assign(prediction=estimator.predict(x))
    label = T.StringType() if model == "churn" else T.LongType()
    schema = T.StructType([*[frame.schema[k] for k in keep], T.StructField("prediction", label)])
    out = frame.mapInPandas(plain, schema)
out.write.mode("overwrite").parquet(target)
print(frame.count() / (time.perf_counter() - start))
spark.stop()
"""


# Runs the measured command and reports its own peak RSS. A child forked straight from this
# process would count this process's pages (the 2,000,000-row tables built here) in its
# peak until it execs; forked from this small wrapper it counts only its own.
WRAPPER = r"""
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
out = proc.stdout.read()
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
sys.stdout.buffer.write(out)
print(f"\nRSS {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)} {wall}")
"""


def measured(argv: list[str], env: dict[str, str] | None = None) -> tuple[str, float, float]:
    """Run ``argv``: what it printed, its peak RSS in MiB, and its wall time from start to
    exit (interpreter, imports and the model's load included)."""
    result = subprocess.run([sys.executable, "-c", WRAPPER, *argv], capture_output=True, text=True, env=env, cwd=ROOT)
    out, _, last = result.stdout.rstrip().rpartition("\n")
    _, rss, code, wall = last.split()
    if result.returncode != 0 or code != "0":
        raise SystemExit(f"{argv[:5]} failed:\n{result.stderr[-3000:]}")
    return out.strip(), int(rss) / 1024, float(wall)


def build(work: Path, rows: int, models: list[str]) -> dict[str, dict[str, Any]]:
    import joblib
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    import modelswap
    from tests.models_for_tests import customers, customers_pipeline

    store = modelswap.Store(work / "models")
    built: dict[str, dict[str, Any]] = {}
    if "pipeline" in models:
        pipeline, frame = customers_pipeline()
        store.deploy("churn", store.publish("churn", pipeline, example=frame.head(20), reference=frame).id)
        table, _ = customers(rows, seed=1)
        table.insert(0, "customer_id", np.arange(rows))
        pq.write_table(
            pa.Table.from_pandas(table, preserve_index=False), work / "churn.parquet", coerce_timestamps="us"
        )
        pq.write_table(
            pa.Table.from_pandas(table.head(rows // 10), preserve_index=False), work / "churn-10.parquet",
            coerce_timestamps="us",
        )  # fmt: skip
        table.drop(columns="customer_id").head(min(rows, 200_000)).to_csv(work / "churn.csv", index=False)
        joblib.dump(pipeline, work / "churn.joblib")
        built["pipeline"] = {"model": "churn", "file": work / "churn.parquet", "tenth": work / "churn-10.parquet"}
    if "forest" in models:
        X, y = make_classification(n_samples=4000, n_features=20, n_informative=10, random_state=0)
        forest = RandomForestClassifier(n_estimators=200, max_depth=12, random_state=0, n_jobs=1).fit(X, y)
        store.deploy("forest", store.publish("forest", forest, example=X[:5], reference=X).id)
        big = np.random.default_rng(2).normal(size=(rows, 20))
        columns = {f"x{i}": big[:, i] for i in range(20)}
        pq.write_table(pa.table(columns), work / "forest.parquet", row_group_size=GROUP)
        pq.write_table(pa.table({k: v[: rows // 10] for k, v in columns.items()}), work / "forest-10.parquet")
        joblib.dump(forest, work / "forest.joblib")
        built["forest"] = {"model": "forest", "file": work / "forest.parquet", "tenth": work / "forest-10.parquet"}
    return built


def score_argv(work: Path, model: str, source: Path, target: Path, chunk: int) -> list[str]:
    keep = ["--keep", "customer_id"] if model == "churn" else []
    return [sys.executable, "-m", "modelswap", "--root", str(work / "models"), "score", model, str(source),
            "-o", str(target), "--chunk-rows", str(chunk), "--json", *keep]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--chunk-rows", type=int, default=65_536)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", default="pipeline,forest")
    parser.add_argument("--parts", default="score,memory,dask,spark")
    parser.add_argument("--mlflow", help="an mlflow executable, for `mlflow models predict` on the same rows")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        work = Path(tmp)
        print(f"building {args.rows:,} rows and the models ...", flush=True)
        built = build(work, args.rows, args.models.split(","))
        (work / "ceiling.py").write_text(CEILING)
        (work / "dask_job.py").write_text(DASK)
        (work / "spark_job.py").write_text(SPARK)
        for name, item in built.items():
            model, source = item["model"], item["file"]
            print(f"\n## {name}: {args.rows:,} rows, chunks of {args.chunk_rows:,}")
            score_rates: list[float] = []
            if "score" in parts:
                ceiling_rates, ratios = [], []
                for _ in range(args.rounds):
                    # both whole processes, start to exit: each imports, loads the model and scores
                    _, _, wall = measured(score_argv(work, model, source, work / "out.parquet", args.chunk_rows))
                    ours = args.rows / wall
                    ceiling = [sys.executable, str(work / "ceiling.py"), str(work / f"{model}.joblib"), str(source),
                               str(work / "ceiling.parquet"), str(args.chunk_rows)]  # fmt: skip
                    _, _, wall = measured(ceiling)
                    ceiling_rate = args.rows / wall
                    score_rates.append(ours)
                    ceiling_rates.append(ceiling_rate)
                    ratios.append(ours / ceiling_rate)
                print(f"score    {statistics.median(score_rates):>12,.0f} rows/s   (rounds: "
                      + ", ".join(f"{r:,.0f}" for r in score_rates) + ")")  # fmt: skip
                print(f"ceiling  {statistics.median(ceiling_rates):>12,.0f} rows/s   (rounds: "
                      + ", ".join(f"{r:,.0f}" for r in ceiling_rates) + ")")  # fmt: skip
                print(f"score / ceiling: {statistics.median(ratios):.2f}x (rounds: "
                      + ", ".join(f"{r:.2f}" for r in ratios) + ")")  # fmt: skip
                if args.mlflow and model == "churn":
                    csv = work / "churn.csv"
                    start = time.perf_counter()
                    subprocess.run([args.mlflow, "models", "predict", "-m", str(work / "mlflow-model"), "-i", str(csv),
                                    "-t", "csv", "-o", str(work / "mlflow.json"), "--env-manager", "local"],
                                   check=True, capture_output=True)  # fmt: skip
                    print(f"mlflow models predict (CSV, {min(args.rows, 200_000):,} rows): "
                          f"{min(args.rows, 200_000) / (time.perf_counter() - start):,.0f} rows/s")  # fmt: skip
            if "memory" in parts:
                _, whole, _ = measured(score_argv(work, model, source, work / "m.parquet", args.chunk_rows))
                _, tenth, _ = measured(score_argv(work, model, item["tenth"], work / "m10.parquet", args.chunk_rows))
                print(f"peak RSS: {whole:,.0f} MiB on all rows, {tenth:,.0f} MiB on a tenth ({whole / tenth:.2f}x)")
            if "dask" in parts and name == "pipeline":
                out, _, _ = measured([sys.executable, str(work / "dask_job.py"), str(work / "models"), model,
                                      str(source), str(work / "dask-out")])  # fmt: skip
                dask_rate = float(out.splitlines()[-1])
                if not score_rates:
                    wall = measured(score_argv(work, model, source, work / "o.parquet", args.chunk_rows))[2]
                    score_rates = [args.rows / wall]
                base = statistics.median(score_rates)
                print(f"dask (2 worker processes, cluster started) {dask_rate:,.0f} rows/s = {dask_rate / base:.2f}x "
                      f"score's {base:,.0f} (whole process)")  # fmt: skip
            if "spark" in parts and name == "pipeline":
                env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
                rates = {}
                for kind in ("modelswap", "plain"):
                    out, _, _ = measured([sys.executable, str(work / "spark_job.py"), str(work / "models"), model,
                                       str(source), str(work / f"spark-{kind}"), kind,
                                       str(work / f"{model}.joblib")], env=env)  # fmt: skip
                    rates[kind] = float(out.splitlines()[-1])
                print(f"spark local[2]: modelswap.spark {rates['modelswap']:,.0f} rows/s, plain pandas UDF "
                      f"{rates['plain']:,.0f} rows/s ({rates['modelswap'] / rates['plain']:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
