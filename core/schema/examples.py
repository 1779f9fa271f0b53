"""Input examples: what a user passes at publish (a DataFrame, records, rows), the JSON form
kept in the manifest, the signature inferred from it, and the nulls the model accepts."""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from modelswap.core.errors import InvalidInput
from modelswap.core.schema.inputs import Table, prepare, records_table, to_model
from modelswap.core.schema.signature import DOUBLE, Signature, fitted_names, infer_columns

EXAMPLE_ROWS = 5
PROBE_COLUMNS = 256  # wider models are probed with every column null at once


def normalize(example: Any, estimator: Any) -> tuple[list[str] | None, list[list[Any]]]:
    """(column names or None, rows of plain values) of a user's example, first few rows.

    A DataFrame or records bring names; rows take the names the estimator was fitted
    with, if any. Names must match the fitted ones; they come back in the fitted order.
    """
    fitted = fitted_names(estimator)
    if type(example).__name__ == "DataFrame":
        names = [str(c) for c in example.columns]
        rows = [list(r) for r in example.head(EXAMPLE_ROWS).itertuples(index=False, name=None)]
    elif isinstance(example, np.ndarray):
        names, rows = None, np.atleast_2d(example)[:EXAMPLE_ROWS].tolist()
    elif isinstance(example, Sequence) and not isinstance(example, (str, bytes)) and example:
        first = example[0]
        if isinstance(first, dict):
            table = records_table(list(example[:EXAMPLE_ROWS]), what="example")
            assert table.columns is not None
            names = list(table.columns)
            rows = [list(r) for r in zip(*table.columns.values(), strict=True)]
        elif isinstance(first, (list, tuple, np.ndarray)):
            names, rows = None, [list(r) for r in example[:EXAMPLE_ROWS]]
        else:
            raise InvalidInput("the input example must be rows ([[...]]), records ([{...}]) or a DataFrame")
    else:
        raise InvalidInput("the input example must be rows ([[...]]), records ([{...}]) or a DataFrame")
    rows = [[plain_value(v) for v in row] for row in rows]
    if len({len(r) for r in rows}) != 1:
        raise InvalidInput("every row of the input example must have the same number of values")
    if names is None:
        if fitted is not None and len(fitted) == len(rows[0]):
            names = fitted
        return names, rows
    if fitted is not None:
        if set(names) != set(fitted):
            raise InvalidInput(
                f"the example's columns ({', '.join(names)}) differ from the columns the model "
                f"was fitted on ({', '.join(fitted)})"
            )
        order = [names.index(n) for n in fitted]
        names, rows = fitted, [[row[i] for i in order] for row in rows]
    return names, rows


def plain_value(value: Any) -> Any:
    """A plain value: numpy scalars unwrapped, NaN and pandas' NA/NaT as None (dates stay
    dates, so their type is inferred; ``stored_form`` writes them as ISO 8601 text)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def stored_form(names: list[str] | None, rows: list[list[Any]]) -> list[Any]:
    """The example as the manifest keeps it (JSON: dates as ISO 8601 text): records when
    columns have names, else rows."""
    rows = [[v.isoformat() if isinstance(v, (dt.datetime, dt.date)) else v for v in row] for row in rows]
    if names is None:
        return rows
    return [dict(zip(names, row, strict=True)) for row in rows]


def example_table(example: Sequence[Any]) -> Table:
    """The stored example (records or rows) as a request table."""
    if example and isinstance(example[0], dict):
        return records_table(list(example), what="example")
    return Table(rows=[list(r) for r in example])


def infer_signature(names: list[str] | None, rows: list[list[Any]], estimator: Any) -> Signature:
    """Columns typed from the example's values; ``frame`` when the estimator was fitted
    on a DataFrame (it has ``feature_names_in_``). A model fitted on an array takes
    numbers: a column whose example values are all null is ``double`` there."""
    frame = fitted_names(estimator) is not None
    columns = infer_columns(names, [list(c) for c in zip(*rows, strict=True)], unknown=None if frame else DOUBLE)
    return Signature(columns, frame=frame)


def probe_nullable(signature: Signature, X: np.ndarray, predict: Callable[[Any], Any]) -> set[int]:
    """Columns where the model takes a null: the first example row with that column null
    must predict. (scikit-learn's allow_nan tag says the same for whole estimators, but
    a pipeline's imputer takes nulls in the columns it imputes only.)"""
    candidates = [i for i, c in enumerate(signature.columns) if not c.nullable]
    if not candidates:
        return set()
    groups = [[i] for i in candidates] if len(candidates) <= PROBE_COLUMNS else [candidates]
    accepted: set[int] = set()
    for group in groups:
        row = X[:1].astype(object) if X.dtype != object else X[:1].copy()
        for i in group:
            row[0, i] = None if not signature.numeric else math.nan
        probe = row.astype(np.float64) if signature.numeric else row
        nullable = signature.with_nullable(set(group))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                predict(to_model(nullable, probe))
        except Exception:  # the model's own code refusing a null is the answer we look for
            continue
        accepted.update(group)
    return accepted


def check_example(signature: Signature, example: Sequence[Any]) -> np.ndarray:
    """The example as the model's input array, checked against the signature."""
    try:
        return prepare(signature, example_table(example), max_rows=max(len(example), 1))
    except InvalidInput as exc:
        raise InvalidInput(f"the input example does not fit the signature: {exc.message}") from exc
