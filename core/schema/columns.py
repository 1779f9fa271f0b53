"""A large table meets the signature column by column: batch scoring's side of the checks.

:func:`prepare_columns` applies the rules :func:`modelswap.core.schema.inputs.prepare`
applies to a request (it shares the column matching and the value-by-value conversions),
but keeps one typed array per column instead of one 2-D array per request, and checks a
column that arrives as an array of its own type in a few array operations instead of
value by value. :func:`frame_of` turns the arrays into what the estimator takes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from modelswap.core.errors import InvalidInput
from modelswap.core.schema.inputs import (
    EARLIEST,
    IGNORE,
    LATEST,
    REFUSE,
    Table,
    Values,
    _cells,
    _column,
    _match_columns,
)
from modelswap.core.schema.signature import BOOLEAN, DATETIME, DOUBLE, LONG, STRING, Column, Signature


def input_columns(
    signature: Signature, names: Sequence[str], keep: Sequence[str], *, ignore_extra: bool, where: str, hint: str
) -> list[str]:
    """The columns of a file or frame (``names``; ``where`` says which) that feed the model,
    in the order it takes them. Refused before any row is read, as they would fail every
    chunk: a kept column that is absent, a positional model's width not met, a column the
    model does not take (unless ``ignore_extra``; ``hint`` says how to keep or skip it),
    one it needs that is missing."""
    absent = [k for k in keep if k not in names]
    if absent:
        raise InvalidInput(f"no column {', '.join(map(repr, absent))} to keep; {where} has {', '.join(names)}")
    given = [n for n in names if n not in keep]
    if not signature.named:  # a positional model takes the rest, in order
        if len(given) != signature.width:
            raise InvalidInput(f"the model takes {signature.width} columns, {where} has {len(given)} besides keep")
        return given
    unknown = [n for n in given if n not in signature.name_set]
    if unknown and not ignore_extra:
        raise InvalidInput(
            f"unknown column(s) {', '.join(map(repr, unknown))}; the model takes {', '.join(signature.names)} ({hint})"
        )
    wanted = [n for n in signature.names if n in names]
    _match_columns(signature, Table(columns={n: [] for n in wanted}), IGNORE)
    return wanted


def prepare_columns(
    signature: Signature, table: Table, *, extra: str = REFUSE, row0: int = 0, bad: dict[int, str] | None = None
) -> list[np.ndarray]:
    """Check a large ``table`` (batch scoring) against ``signature``, column by column: one
    typed array per signature column (see :func:`_typed`), for :func:`frame_of`.

    The same rules as :func:`prepare` (it shares the column matching and the per-value
    conversions); a column that arrives as a NumPy array of its own type is checked
    vectorised instead of value by value. Rows are numbered from ``row0`` in messages;
    ``bad``: collect unfit rows instead of raising (see :func:`_cells`).
    """
    if table.n_rows == 0:
        raise InvalidInput("the table has no rows")
    values = _match_columns(signature, table, extra)
    return [
        _typed(column, i, given, table.n_rows, table.text, row0, bad)
        for i, (column, given) in enumerate(zip(signature.columns, values, strict=True))
    ]


def _typed(
    column: Column,
    index: int,
    given: Values | None,
    n_rows: int,
    text: bool,
    row0: int,
    bad: dict[int, str] | None,
) -> Any:
    """One column as an array of its type: float64 for double and long (NaN for null; a
    long column becomes int64 in :func:`frame_of` when it has no null), bool (object when
    nulls), datetime64[ns] (NaT for null), objects for strings (None for null), or a
    pandas string array given for a string column, as it is."""
    if given is None:
        given = [None] * n_rows  # absent, so it takes nulls (_match_columns refused it otherwise)
    if isinstance(given, np.ndarray) and not text:
        fast = _vectorised(column, index, given, row0, bad)
        if fast is not None:
            return fast
    elif not isinstance(given, (list, tuple)) and not text:
        kept = _text_array(column, index, given, row0, bad)
        if kept is not None:
            return kept
    if isinstance(given, np.ndarray):  # Python values, so messages read as a request's do
        given = given.astype("datetime64[us]").astype(object) if given.dtype.kind == "M" else given.tolist()
    cells = _cells(column, index, given, text, row0=row0, bad=bad)
    if column.type in (DOUBLE, LONG):
        return np.array([math.nan if v is None else v for v in cells], dtype=np.float64)
    if column.type == DATETIME:
        return np.array(cells, dtype="datetime64[ns]")  # None becomes NaT
    if column.type == BOOLEAN and None not in cells:
        return np.array(cells, dtype=bool)
    out = np.empty(len(cells), dtype=object)
    out[:] = cells
    return out


def _vectorised(
    column: Column, index: int, values: np.ndarray, row0: int, bad: dict[int, str] | None
) -> np.ndarray | None:
    """A column already of its type, checked in a few array operations; None when it is
    not (the value-by-value way then converts it, or names what does not fit)."""
    kind = values.dtype.kind
    if column.type in (DOUBLE, LONG) and kind in "iuf":
        out = values.astype(np.float64, copy=False)
        null = np.isnan(out)
        unfit = np.isinf(out)
        if not column.nullable:
            unfit |= null
        if column.type == LONG:
            unfit |= ~null & (out != np.floor(out))
    elif column.type == BOOLEAN and kind == "b":
        return values
    elif column.type == DATETIME and kind == "M":
        wide = values.astype("datetime64[us]", copy=False)
        null = np.isnat(wide)
        unfit = ~null & ((wide < EARLIEST) | (wide > LATEST))
        if not column.nullable:
            unfit |= null
        out = np.where(unfit, np.datetime64("NaT"), wide).astype("datetime64[ns]")
    elif column.type == STRING and kind == "O":
        from pandas.api.types import infer_dtype

        if infer_dtype(values, skipna=True) not in ("string", "empty"):
            return None  # something other than text in it: named value by value
        out = values
        unfit = np.zeros(len(values), dtype=bool) if column.nullable else _nulls(values)
    else:
        return None
    if unfit.any():
        out = out.copy()
        for row in map(int, np.flatnonzero(unfit)):
            # the value-by-value check words the reason, and raises it when not collecting
            reason: dict[int, str] = {}
            value = values[row]
            if kind == "M":  # as ISO text (the unit may be any), or None for NaT
                value = None if np.isnat(value) else str(np.datetime_as_string(value))
            elif isinstance(value, np.generic):
                value = value.item()
            _cells(column, index, [value], False, row0=row0 + row, bad=None if bad is None else reason)
            if bad is not None:
                bad.setdefault(row, reason.get(0, f"column {column.label(index)} row {row0 + row}: unfit value"))
            out[row] = np.datetime64("NaT") if kind == "M" else None if kind == "O" else math.nan
    return out


def _text_array(column: Column, index: int, values: Any, row0: int, bad: dict[int, str] | None) -> Any:
    """A pandas string array (what a Parquet text column becomes) for a string column: text
    by its type, so only its nulls are checked, and kept as it is (the frame takes it
    without a copy). None for anything else."""
    import pandas as pd

    if column.type != STRING or not isinstance(getattr(values, "dtype", None), pd.StringDtype):
        return None
    if values.dtype.na_value is pd.NA:  # "string[pyarrow]" (Dask's): missing as NaN, as a fitted imputer expects
        values = values.astype(pd.StringDtype(values.dtype.storage, na_value=np.nan))
    if not column.nullable:
        for row in map(int, np.flatnonzero(np.asarray(values.isna(), dtype=bool))):
            reason: dict[int, str] = {}
            _cells(column, index, [None], False, row0=row0 + row, bad=None if bad is None else reason)
            if bad is not None:
                bad.setdefault(row, reason[0])
    return values


def _nulls(values: np.ndarray) -> np.ndarray:
    import pandas as pd

    return np.asarray(pd.isna(values), dtype=bool)


def frame_of(signature: Signature, columns: Sequence[np.ndarray]) -> Any:
    """What the estimator takes, from :func:`prepare_columns`'s arrays: a DataFrame with the
    signature's dtypes when it was fitted on one, else one 2-D array (float64 when every
    column is a number)."""
    if signature.frame:
        import pandas as pd

        names = signature.names
        return pd.DataFrame(
            {names[i]: _column(c, v) for i, (c, v) in enumerate(zip(signature.columns, columns, strict=True))}
        )
    if signature.numeric:
        return np.column_stack([_floats(v) for v in columns])
    out = np.empty((len(columns[0]), len(columns)), dtype=object)
    for i, values in enumerate(columns):
        out[:, i] = values if isinstance(values, np.ndarray) else values.to_numpy(dtype=object, na_value=None)
    return out


def _floats(values: np.ndarray) -> np.ndarray:
    if values.dtype != object:
        return values.astype(np.float64, copy=False)
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)
