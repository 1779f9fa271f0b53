"""Request rows meet the signature: every protocol's input becomes one checked array here.

A protocol parser turns its body into a :class:`Table` (positional rows, rows under a
header, or named columns) and :func:`prepare` checks it against the version's signature
in one place: columns matched by name and reordered, a missing required or unknown column named,
only safe conversions, nulls only where the column takes them. The result is one 2-D
array per request, which micro-batching concatenates: float64 when every column is a
number (the fast path: one ``np.array`` call), else an object array of typed values.
:func:`to_model` turns a (batched) array into what the estimator was fitted on.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from modelswap.core.errors import InvalidInput
from modelswap.core.schema.signature import BOOLEAN, DATETIME, DOUBLE, LONG, STRING, Column, Signature

REFUSE, IGNORE = "refuse", "ignore"
Values = Sequence[Any] | np.ndarray  # one column's values: a list (a request), or an array (batch scoring)
TRUE_TEXT, FALSE_TEXT = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})
NULL_TEXT = frozenset({"", "null", "none", "nan", "na"})
# The times a datetime column holds: pandas' and NumPy's nanoseconds since 1970 in 64 bits
# (1677-09-21T00:12:43 to 2262-04-11T23:47:16), as whole days: the first day to the last.
# A time outside is refused by name instead of wrapping around to another century.
FIRST_DAY, LAST_DAY = "1677-09-22", "2262-04-10"
EARLIEST = np.datetime64(FIRST_DAY, "us")
LATEST = np.datetime64(LAST_DAY, "us") + np.timedelta64(1, "D") - np.timedelta64(1, "us")


class Table(NamedTuple):
    """A request's rows before they meet the signature (a named tuple: one is built per
    request, at a fifth of a frozen dataclass's cost).

    ``rows``: lists of values by position (``names`` gives their columns when the body
    had a header); ``columns``: values by column name. ``text`` marks values that are
    still strings to parse (CSV).
    """

    rows: Sequence[Sequence[Any]] | None = None
    names: Sequence[str] | None = None
    columns: Mapping[str, Values] | None = None
    text: bool = False
    array: np.ndarray | None = None  # a numeric [rows, features] tensor, already decoded

    @property
    def n_rows(self) -> int:
        if self.array is not None:
            return len(self.array)
        if self.rows is not None:
            return len(self.rows)
        return len(next(iter(self.columns.values()))) if self.columns else 0


def rows_table(instances: Any, *, what: str = "instances") -> Table:
    """``[[...], ...]`` as rows, or ``[{"col": v}, ...]`` (records) as columns."""
    if not isinstance(instances, list) or not instances:
        raise InvalidInput(f"'{what}' must be a non-empty list of rows, e.g. [[5.1, 3.5, 1.4, 0.2]]")
    if isinstance(instances[0], dict):
        return records_table(instances, what=what)
    if not isinstance(instances[0], list):
        raise InvalidInput(f"each of '{what}' must be a row (a list) or a record (an object)")
    return Table(rows=instances)


def records_table(records: Sequence[Any], *, what: str = "records") -> Table:
    """``[{"plan": "pro", "tenure": 14}, ...]`` as named columns (a field absent from a record is null)."""
    if not records or not all(isinstance(r, dict) for r in records):
        raise InvalidInput(f"'{what}' must be a non-empty list of objects like {{\"column\": value}}")
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    return Table(columns={name: [r.get(name) for r in records] for name in names})


def columns_table(columns: Any, *, what: str = "inputs") -> Table:
    """``{"plan": [...], "tenure": [...]}``: one list per column, all of one length."""
    if not isinstance(columns, dict) or not columns:
        raise InvalidInput(f"'{what}' as columns must map each column name to a list of values")
    if not all(isinstance(v, list) for v in columns.values()) or len({len(v) for v in columns.values()}) != 1:
        raise InvalidInput(f"'{what}' as columns must map each name to a list, all of one length")
    if not next(iter(columns.values())):
        raise InvalidInput(f"'{what}' has no rows")
    return Table(columns=columns)


def prepare(signature: Signature, table: Table, *, max_rows: int, extra: str = REFUSE) -> np.ndarray:
    """Check ``table`` against ``signature``; return the request as one 2-D array.

    float64 when every column is a number, else an object array whose columns hold
    values of their column's type (None for null). 400s name the column and the row.
    """
    n_rows = table.n_rows
    if n_rows > max_rows:
        raise InvalidInput(f"{n_rows} rows exceed the limit of {max_rows} per request")
    if n_rows == 0:
        raise InvalidInput("the request has no rows")
    array = table.array
    if array is not None:
        if array.dtype.kind == "b" and any(c.type != BOOLEAN for c in signature.columns):
            pass  # the slow way names the column a bool cannot fill
        elif array.ndim != 2:
            raise InvalidInput(f"expected rows of {signature.width} features, got shape {list(array.shape)}")
        elif array.shape[1] != signature.width:
            raise InvalidInput(f"expects {signature.width} features per row, got {array.shape[1]}")
        elif signature.plain_numbers:
            X = array.astype(np.float64, copy=False)
            if all_finite(X) and _whole_where_long(signature, X):
                return X
        table = Table(rows=array.tolist())
    if table.rows is not None and table.names is None and not table.text and signature.plain_numbers:
        fast = _numeric_rows(signature, table.rows)
        if fast is not None:
            return fast
    return _assemble(signature, _match_columns(signature, table, extra), table.n_rows, table.text)


def _numeric_rows(signature: Signature, rows: Sequence[Sequence[Any]]) -> np.ndarray | None:
    """Rows of plain numbers in one ``np.array`` call; None sends them the slow way (which
    finds and names whatever is wrong: a null, a string, a ragged row)."""
    try:
        raw = np.array(rows)
    except (ValueError, TypeError):
        return None
    if raw.ndim != 2 or raw.dtype.kind not in "iuf":
        return None
    if bool in {v.__class__ for row in rows for v in row}:
        return None  # NumPy made true/false numbers; a bool is not a number here

    if raw.shape[1] != signature.width:
        raise InvalidInput(f"expects {signature.width} features per row, got {raw.shape[1]}")
    X = raw.astype(np.float64, copy=False)
    if not all_finite(X) or not _whole_where_long(signature, X):
        return None
    return X


SMALL = 32  # values


def all_finite(X: np.ndarray) -> bool:
    """No NaN or infinity in the float array ``X``. For a request's few values their exact
    sum says it at a seventh of the cost of ``np.isfinite(X).all()``: it is finite exactly
    when every value is (fsum raises instead of overflowing or adding infinities of both
    signs, and the exact check then settles it)."""
    if X.size <= SMALL:
        try:
            return math.isfinite(math.fsum(X.ravel().tolist()))
        except (OverflowError, ValueError):
            pass
    return bool(np.isfinite(X).all())


def _whole_where_long(signature: Signature, X: np.ndarray) -> bool:
    """Whole numbers in every ``long`` column (a fraction there takes the slow way, which names it)."""
    longs = signature.long_columns
    return not longs or bool((X[:, longs] == np.floor(X[:, longs])).all())


def _match_columns(signature: Signature, table: Table, extra: str) -> list[Values | None]:
    """One value list per signature column, in signature order (None: absent, all null)."""
    if table.columns is not None:
        given: Mapping[str, Values] = table.columns
    elif table.names is not None:
        if len(set(table.names)) != len(table.names):
            raise InvalidInput("the header names a column twice")
        given = _transpose(table.rows or [], len(table.names), names=table.names)
    else:
        return list(_transpose(table.rows or [], signature.width).values())
    if not signature.named:
        # A model that knows only positions takes named columns in the order given.
        if len(given) != signature.width:
            raise InvalidInput(f"expected {signature.width} columns, got {len(given)}")
        return list(given.values())
    names = set(signature.names)
    unknown = [n for n in given if n not in names]
    if unknown and extra != IGNORE:
        raise InvalidInput(
            f"unknown column(s) {', '.join(map(repr, unknown))}; the model takes {', '.join(signature.names)} "
            "(MODELSWAP_EXTRA_COLUMNS=ignore drops unknown columns)"
        )
    missing = [c.name for c in signature.columns if c.name not in given and c.required]
    if missing:
        raise InvalidInput(
            f"missing column(s) {', '.join(map(repr, missing))}; the model takes {', '.join(signature.names)}"
        )
    return [given.get(str(c.name)) for c in signature.columns]


def _transpose(
    rows: Sequence[Sequence[Any]], width: int, *, names: Sequence[str] | None = None
) -> dict[str, list[Any]]:
    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)):
            raise InvalidInput(f"row {i} is not a list of values")
        if len(row) != width:
            raise InvalidInput(f"expects {width} features per row, got {len(row)} in row {i}")
    keys = list(names) if names is not None else [str(i) for i in range(width)]
    return {key: [row[i] for row in rows] for i, key in enumerate(keys)}


def _assemble(signature: Signature, values: list[Values | None], n_rows: int, text: bool) -> np.ndarray:
    numeric = signature.numeric
    out = np.empty((n_rows, signature.width), dtype=np.float64 if numeric else object)
    null = math.nan if numeric else None
    for i, (column, given) in enumerate(zip(signature.columns, values, strict=True)):
        out[:, i] = _cells(column, i, given if given is not None else [None] * n_rows, text, null)
    return out


def _cells(
    column: Column,
    index: int,
    cells: Values,
    text: bool,
    null: Any = None,
    *,
    row0: int = 0,
    bad: dict[int, str] | None = None,
) -> list[Any]:
    """One column's values converted to its type (``null`` for a null: NaN where the rows
    become a float array): the check every protocol and batch scoring share. ``bad`` None:
    the first unfit value raises InvalidInput naming the column and row (``row0`` + its
    position); else each unfit row's first reason goes into ``bad`` (by position) and the
    row is left null."""
    convert = _CONVERT[column.type]
    dated = column.type == DATETIME
    out: list[Any] = []
    for row, value in enumerate(cells):
        try:
            if (
                value is None
                or value != value
                or (text and isinstance(value, str) and _null_text(column, value))
                or (dated and isinstance(value, str) and value.strip().lower() == "nat")  # NumPy's not-a-time
            ):
                if not column.nullable:
                    raise InvalidInput(
                        f"column {column.label(index)} row {row0 + row}: null, but this column takes no nulls"
                    )
                out.append(null)
                continue
            out.append(convert(column, index, row0 + row, value, text))
        except InvalidInput as exc:
            if bad is None:
                raise
            bad.setdefault(row, exc.message)
            out.append(null)
    return out


def _null_text(column: Column, value: str) -> bool:
    """A CSV cell that means null: empty for a string column (where "NA" may be a value),
    also "nan", "null", "none", "na" for the others."""
    if column.type == STRING:
        return value == ""
    return value.strip().lower() in NULL_TEXT


def _wrong(column: Column, index: int, row: int, want: str, value: Any) -> InvalidInput:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return InvalidInput(f"column {column.label(index)} row {row}: expected {want}, got {shown}")


def _to_double(column: Column, index: int, row: int, value: Any, text: bool) -> float:
    if text and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _wrong(column, index, row, "a number", value) from None
    if isinstance(value, (bool, np.bool_)):
        raise _wrong(column, index, row, "a number (booleans stay booleans)", value)
    if not isinstance(value, (int, float, np.integer, np.floating)):
        raise _wrong(column, index, row, "a number", value)
    number = float(value)
    if not math.isfinite(number):
        raise _wrong(column, index, row, "a finite number", value)
    return number


def _to_long(column: Column, index: int, row: int, value: Any, text: bool) -> int:
    number = _to_double(column, index, row, value, text) if type(value) is not int else value
    if isinstance(number, float) and not number.is_integer():
        raise _wrong(column, index, row, "a whole number", value)
    return int(number)


def _to_boolean(column: Column, index: int, row: int, value: Any, text: bool) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if text and isinstance(value, str) and value.strip().lower() in TRUE_TEXT | FALSE_TEXT:
        return value.strip().lower() in TRUE_TEXT
    raise _wrong(column, index, row, "true or false", value)


def _to_string(column: Column, index: int, row: int, value: Any, text: bool) -> str:
    if isinstance(value, str):
        return value
    raise _wrong(column, index, row, "a string", value)


def _to_datetime(column: Column, index: int, row: int, value: Any, text: bool) -> np.datetime64:
    if isinstance(value, str):
        try:
            moment = np.datetime64(value.strip().rstrip("Z"))  # in the text's own unit: no overflow yet
        except ValueError:
            pass
        else:
            if np.isnat(moment):  # text NumPy reads as not-a-time ("", "NaTZ"); "NaT" itself is a null (_cells)
                raise _wrong(column, index, row, "an ISO 8601 date or time", value)
            if not (EARLIEST <= moment <= LATEST):
                raise _wrong(column, index, row, f"a time from {FIRST_DAY} to {LAST_DAY} (whole days)", value)
            nanoseconds: np.datetime64 = moment.astype("datetime64[ns]")
            return nanoseconds
    raise _wrong(column, index, row, "an ISO 8601 date or time", value)


_CONVERT: dict[str, Callable[[Column, int, int, Any, bool], Any]] = {
    DOUBLE: _to_double,
    LONG: _to_long,
    BOOLEAN: _to_boolean,
    STRING: _to_string,
    DATETIME: _to_datetime,
}


def to_model(signature: Signature, X: np.ndarray) -> Any:
    """What the estimator takes: a DataFrame with the signature's dtypes when it was fitted
    on one, an array otherwise (float64 for numbers, objects for anything else)."""
    if not signature.frame:
        return X
    import pandas as pd

    names = signature.names
    return pd.DataFrame({names[i]: _column(c, X[:, i]) for i, c in enumerate(signature.columns)})


def _column(column: Column, values: Any) -> Any:
    """One column with its type's dtype: float64 (NaN for null), int64 for whole numbers
    without nulls, bool, datetime64, or text (pandas' "str", NaN for null)."""
    if column.type in (DOUBLE, LONG):
        floats = (
            values.astype(np.float64, copy=False)
            if values.dtype != object
            else np.array([math.nan if v is None else v for v in values], dtype=np.float64)
        )
        return floats.astype(np.int64) if column.type == LONG and not np.isnan(floats).any() else floats
    if column.type == BOOLEAN:
        return values.astype(bool) if not any(v is None for v in values) else values
    if column.type == DATETIME:
        return values.astype("datetime64[ns]")
    if isinstance(values, np.ndarray):
        import pandas as pd

        return pd.array(values, dtype=_text_dtype())
    return values  # pandas' own text array (batch scoring of a Parquet column), as it is


@functools.cache
def _text_dtype() -> Any:
    """pandas 3's text dtype ("str") held as Python strings, not Arrow: building a one-row
    frame from Arrow-backed text costs a request about a fifth more time, and what the
    estimator sees does not change with whether pyarrow is installed. Objects on pandas 2."""
    import pandas as pd

    try:
        return pd.StringDtype("python", na_value=np.nan)
    except TypeError:
        return object
