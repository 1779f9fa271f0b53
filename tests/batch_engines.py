"""Jobs the Dask and Spark tests run in a separate process, on a real engine: a
``distributed.LocalCluster`` with two worker processes, or Spark ``local[2]``.

``python -m tests.batch_engines dask|spark ROOT MODEL SOURCE OUTPUT [BAD_SOURCE]`` scores
SOURCE with the live version into OUTPUT (Parquet), then tries BAD_SOURCE (a value that
does not fit), and prints one JSON line: rows, the loads each worker process made, the
output's columns and the error BAD_SOURCE raised.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def dask_job(root: str, model: str, source: str, output: str, bad: str | None) -> dict[str, Any]:
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    import modelswap.dask
    from modelswap.core.batch import pinned

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
    with cluster, Client(cluster) as client:
        frame = dd.read_parquet(source).repartition(npartitions=6)
        scored = modelswap.dask.predict(frame, root, model, keep=["customer_id"])
        meta = {name: str(dtype) for name, dtype in scored.dtypes.items()}
        result = scored.compute()
        result.to_parquet(output)
        loads = client.run(pinned.loads)
        proba = modelswap.dask.predict(frame, root, model, method="predict_proba", keep=["customer_id"])
        proba_columns = list(proba.columns)
        error = None
        if bad is not None:
            try:
                modelswap.dask.predict(dd.read_parquet(bad), root, model).compute()
            except Exception as exc:  # noqa: BLE001 - reported to the test as text
                error = f"{type(exc).__name__}: {exc}"
    return {
        "rows": len(result),
        "loads": sorted(loads.values()),
        "meta": meta,
        "dtypes": {name: str(dtype) for name, dtype in result.dtypes.items()},
        "proba_columns": proba_columns,
        "error": error,
    }


def spark_job(root: str, model: str, source: str, output: str, bad: str | None) -> dict[str, Any]:
    from pyspark.sql import SparkSession
    from pyspark.sql import types as T

    import modelswap.spark
    from modelswap.core.batch import pinned

    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    try:
        frame = spark.read.parquet(source).repartition(4)
        scorer = modelswap.spark.scorer(root, model, keep=["customer_id"])

        def counted(batches: Any) -> Any:  # the scorer's batches, with which process made them
            for batch in scorer(batches):
                yield batch.assign(pid=os.getpid(), loads=pinned.loads())

        extra = [T.StructField("pid", T.LongType()), T.StructField("loads", T.LongType())]
        schema = T.StructType([*scorer.schema(frame.schema).fields, *extra])
        result = frame.mapInPandas(counted, schema).toPandas()
        result.drop(columns=["pid", "loads"]).to_parquet(output)
        proba = modelswap.spark.predict(frame, root, model, method="predict_proba", keep=["customer_id"])
        error = None
        if bad is not None:
            try:
                modelswap.spark.predict(spark.read.parquet(bad), root, model).collect()
            except Exception as exc:  # noqa: BLE001 - reported to the test as text
                error = f"{type(exc).__name__}: {exc}"
        return {
            "rows": len(result),
            "loads": sorted(result.groupby("pid")["loads"].max().tolist()),
            "schema": scorer.schema(frame.schema).simpleString(),
            "proba_schema": proba.schema.simpleString(),  # no job: the schema comes from the signature
            "error": error,
        }
    finally:
        spark.stop()


if __name__ == "__main__":
    engine, *arguments = sys.argv[1:]
    job = {"dask": dask_job, "spark": spark_job}[engine]
    root, model, source, output, *rest = arguments
    print(json.dumps(job(root, model, source, output, rest[0] if rest else None)))
    sys.stdout.flush()
