"""Score a Spark DataFrame with one pinned version of a model (``pip install modelswap[spark]``)::

    from pyspark.sql import SparkSession
    import modelswap.spark

    spark = SparkSession.builder.getOrCreate()
    customers = spark.read.parquet("/data/customers.parquet")
    scored = modelswap.spark.predict(customers, "/models", "churn", keep=["customer_id"])
    scored.write.parquet("/data/scored.parquet")

:func:`scorer` is the function ``DataFrame.mapInPandas`` runs, built from (root, model,
version, method), with its output schema derived from the signature; :func:`predict`
applies it. The version (default: the live one) is resolved on the driver, once; each
executor's Python worker loads it from the store on its first batch and keeps it (Spark
reuses its Python workers), so executors must see the store's path. Every batch meets the
signature through the same checks as a request. See docs/batch.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from modelswap.core.batch.frames import Job
from modelswap.core.store.store import Store

__all__ = ["Scorer", "predict", "scorer"]

SPARK_TYPES = {
    pa.string(): T.StringType(),
    pa.int64(): T.LongType(),
    pa.float64(): T.DoubleType(),
    pa.bool_(): T.BooleanType(),
}


class Scorer:
    """``mapInPandas``'s function for one pinned version: batches of the input in, batches
    of kept columns and answers out. :meth:`schema` gives the output schema."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def schema(self, input_schema: T.StructType) -> T.StructType:
        """The kept columns as the input has them, then the answers' columns."""
        kept = [input_schema[name] for name in self.job.keep]
        answers = self.job.answers
        fields = [
            T.StructField(n, SPARK_TYPES[t], nullable=False) for n, t in zip(answers.names, answers.types, strict=True)
        ]
        return T.StructType([*kept, *fields])

    def __call__(self, batches: Iterator[Any]) -> Iterator[Any]:
        for i, frame in enumerate(batches):
            yield self.job.score(frame, f"batch {i}: ")


def scorer(
    store: Store | str | Path,
    model: str,
    version: str | None = None,
    *,
    method: str = "predict",
    keep: Sequence[str] = (),
    ignore_extra_columns: bool = False,
) -> Scorer:
    """The function for ``df.mapInPandas(s, s.schema(df.schema))``; ``version``: an id or
    alias (default: the live one, resolved now)."""
    return Scorer(Job.plan(store, model, version, method, keep, ignore_extra=ignore_extra_columns))


def predict(
    df: DataFrame,
    store: Store | str | Path,
    model: str,
    version: str | None = None,
    *,
    method: str = "predict",
    keep: Sequence[str] = (),
    ignore_extra_columns: bool = False,
) -> DataFrame:
    """``df``'s ``keep`` columns and ``method``'s answers per row (``prediction``, or
    ``proba_<class>`` per class, or ``decision``); every other column is a model input."""
    fn = scorer(store, model, version, method=method, keep=keep, ignore_extra_columns=ignore_extra_columns)
    fn.job.check(df.columns)
    return df.mapInPandas(fn, fn.schema(df.schema))
