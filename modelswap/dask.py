"""Score a Dask DataFrame with one pinned version of a model (``pip install modelswap[dask]``)::

    import dask.dataframe as dd
    import modelswap.dask

    customers = dd.read_parquet("s3://bucket/customers/")  # or a path every worker sees
    scored = modelswap.dask.predict(customers, "/models", "churn", keep=["customer_id"])
    scored.to_parquet("scored/")

The version (default: the live one) is resolved here, on the client, once; every worker
process loads that version from the store the first time it scores a partition and keeps
it for the rest (arrays memory-mapped, as a serving process loads them), so the workers
must see the store's path, as pods on the model volume do. Each partition meets the
signature through the same checks as a request; ``meta`` comes from the signature, so
nothing is computed to learn the output's columns. See docs/batch.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.dataframe as dd

from modelswap.core.batch.frames import Job, empty
from modelswap.core.store.store import Store

__all__ = ["predict"]


def predict(
    ddf: dd.DataFrame,
    store: Store | str | Path,
    model: str,
    version: str | None = None,
    *,
    method: str = "predict",
    keep: Sequence[str] = (),
    ignore_extra_columns: bool = False,
) -> dd.DataFrame:
    """``ddf``'s ``keep`` columns and ``method``'s answers (``prediction``, or ``proba_<class>``
    per class, or ``decision``) per row, lazily, on ``ddf``'s partitions and index.

    ``store``: a :class:`modelswap.Store` or its root path; ``version``: an id or alias
    (default: the live one now). Every other column of ``ddf`` is a model input (unknown
    ones are refused unless ``ignore_extra_columns``): InvalidInput here for a column
    problem; a value that does not fit raises InvalidInput naming the partition, row and
    column when the result is computed.
    """
    job = Job.plan(store, model, version, method, keep, ignore_extra=ignore_extra_columns)
    job.check([str(c) for c in ddf.columns])
    meta = empty(job.answers, ddf._meta[list(keep)])
    work = _Partitions(job)
    scored: dd.DataFrame = ddf.map_partitions(work, meta=meta, enforce_metadata=False)  # type: ignore[no-untyped-call]
    return scored


@dataclass(frozen=True)
class _Partitions:
    """What map_partitions calls: the job, told which partition it scores (for messages)."""

    job: Job

    def __call__(self, frame: Any, partition_info: dict[str, Any] | None = None) -> Any:
        where = f"partition {partition_info['number']}: " if partition_info else ""
        return self.job.score(frame, where)
