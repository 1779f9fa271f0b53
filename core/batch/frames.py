"""A pandas partition scored with a pinned version: what Dask's and Spark's workers run.

The partition's columns become NumPy arrays the way :mod:`modelswap.core.batch.files`
makes them from Arrow (float64 with NaN for missing numbers, datetime64[ns], objects with
None for missing strings), meet the signature through the same checks as a request, and
the answers come back as columns named by :class:`~modelswap.core.batch.answers.Answers`,
on the partition's own index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from modelswap.core.batch import pinned
from modelswap.core.batch.answers import Answers
from modelswap.core.errors import InvalidInput
from modelswap.core.schema.columns import frame_of, input_columns, prepare_columns
from modelswap.core.schema.inputs import IGNORE, REFUSE, Table, Values
from modelswap.core.schema.signature import Signature
from modelswap.core.serving.loader import LoadedModel
from modelswap.core.store.kernel import Kernel


def columns_of(frame: pd.DataFrame, names: Sequence[str]) -> dict[str, Values]:
    """Each named column as NumPy, missing values as NaN, NaT or None (never pd.NA)."""
    out: dict[str, Values] = {}
    for name in names:
        series = frame[name]
        kind = series.dtype.kind
        if kind == "M":
            if getattr(series.dtype, "tz", None) is not None:
                series = series.dt.tz_convert("UTC").dt.tz_localize(None)
            out[name] = series.to_numpy(dtype="datetime64[ns]")
        elif kind in "iuf":
            missing = series.isna()
            if missing.any() or kind == "f":
                out[name] = series.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                out[name] = series.to_numpy(dtype=np.int64 if kind in "iu" else np.float64)
        elif kind == "b" and not series.isna().any():
            out[name] = series.to_numpy(dtype=bool)
        elif isinstance(series.dtype, pd.StringDtype):
            out[name] = series.array  # text by its type: checked for nulls only, passed on as it is
        else:
            out[name] = series.to_numpy(dtype=object, na_value=None)
    return out


@dataclass(frozen=True)
class Job:
    """One pinned version's scoring of a distributed frame, as its workers run it: plain,
    picklable values, the version loaded through each worker process's cache on first use."""

    root: str
    model: str
    version: str
    signature: Signature
    answers: Answers
    keep: tuple[str, ...]
    extra: str
    trusted_types: tuple[str, ...]
    strict_versions: bool

    @classmethod
    def plan(
        cls, store: Kernel | str | Path, model: str, version: str | None, method: str, keep: Sequence[str], *,
        ignore_extra: bool,
    ) -> Job:  # fmt: skip
        """On the client or driver: the version resolved once, the answers' columns from its signature."""
        kernel = store if isinstance(store, Kernel) else Kernel(Path(store))
        pinned_version = pinned.resolve(kernel, model, version)
        signature = pinned.signature(kernel, model, pinned_version)
        answers = Answers.of(signature, method, f"{model} {pinned_version}")
        answers.check_keep(keep)
        return cls(
            str(Path(kernel.root).resolve()), model, pinned_version, signature, answers, tuple(keep),
            IGNORE if ignore_extra else REFUSE, tuple(kernel.trusted_types), kernel.strict_versions,
        )  # fmt: skip

    def check(self, columns: Sequence[str]) -> None:
        """Refuse on the driver, before any partition runs, what would fail every partition
        (core.schema.columns.input_columns)."""
        input_columns(
            self.signature, columns, self.keep, ignore_extra=self.extra == IGNORE, where="the frame",
            hint="keep= copies a column to the output; ignore_extra_columns=True skips the others",
        )  # fmt: skip

    def score(self, frame: pd.DataFrame, where: str) -> pd.DataFrame:
        loaded = pinned.load(
            self.root, self.model, self.version, trusted_types=self.trusted_types, strict_versions=self.strict_versions
        )
        return score_frame(frame, loaded, self.answers, self.keep, extra=self.extra, where=where)


def empty(answers: Answers, kept: pd.DataFrame) -> pd.DataFrame:
    """The output's shape with no rows (Dask's ``meta``)."""
    table = pa.schema(answers.fields).empty_table().to_pandas()
    table.index = kept.index[:0]
    return pd.concat([kept.iloc[:0], table], axis=1)


def score_frame(
    frame: pd.DataFrame,
    loaded: LoadedModel,
    answers: Answers,
    keep: Sequence[str],
    *,
    extra: str = REFUSE,
    where: str = "",
) -> pd.DataFrame:
    """``frame``'s kept columns and its answers; InvalidInput names the column and the row
    (its position in the partition, after ``where``) of a value that does not fit."""
    kept = frame[list(keep)]
    if len(frame) == 0:
        return empty(answers, kept)
    given = [n for n in frame.columns if n not in keep]
    try:
        columns = prepare_columns(loaded.signature, Table(columns=columns_of(frame, given)), extra=extra)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}{exc.message}") from None
    result = getattr(loaded.estimator, answers.method)(frame_of(loaded.signature, columns))
    return kept.assign(**dict(zip(answers.names, answers.columns(result), strict=True)))
