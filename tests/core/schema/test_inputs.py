"""One conversion for every protocol: a table of request rows meets the signature."""

from __future__ import annotations

import numpy as np
import pytest

from modelswap.core.errors import InvalidInput
from modelswap.core.schema.inputs import IGNORE, Table, columns_table, prepare, records_table, rows_table, to_model
from modelswap.core.schema.signature import BOOLEAN, DATETIME, DOUBLE, LONG, STRING, Column, Signature

NUMERIC = Signature(tuple(Column(None, DOUBLE) for _ in range(3)))
MIXED = Signature(
    (Column("plan", STRING), Column("tenure", LONG), Column("spend", DOUBLE, nullable=True), Column("vip", BOOLEAN)),
    frame=True,
)


def test_numeric_rows_take_the_float64_fast_path() -> None:
    X = prepare(NUMERIC, rows_table([[1, 2.5, 3], [4, 5, 6]]), max_rows=10)
    assert X.dtype == np.float64 and X.tolist() == [[1.0, 2.5, 3.0], [4.0, 5.0, 6.0]]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[1, 2]], "expects 3 features per row, got 2"),
        ([[1, 2, "3"]], "column #2 row 0: expected a number, got '3'"),
        ([[1, None, 3]], "column #1 row 0: null"),
        ([[1, True, 3]], "column #1 row 0: expected a number (booleans stay booleans)"),
        ([[1, 2, 3], [1, 2]], "expects 3 features per row, got 2 in row 1"),
    ],
)
def test_numeric_rows_that_are_not_plain_numbers_get_a_400_naming_the_cell(
    rows: list[list[object]], message: str
) -> None:
    with pytest.raises(InvalidInput) as error:
        prepare(NUMERIC, rows_table(rows), max_rows=10)
    assert message in error.value.message


def test_records_and_columns_are_matched_by_name_and_reordered() -> None:
    records = [{"vip": True, "spend": 2.5, "tenure": 3, "plan": "pro"}, {"plan": "basic", "tenure": 1, "vip": False}]
    X = prepare(MIXED, records_table(records), max_rows=10)
    assert X.tolist() == [["pro", 3, 2.5, True], ["basic", 1, None, False]]  # spend absent: null, it is nullable
    same = prepare(MIXED, columns_table({"tenure": [3], "plan": ["pro"], "vip": [True], "spend": [2.5]}), max_rows=10)
    assert same.tolist() == X[:1].tolist()


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"plan": "pro", "vip": True}], "missing column(s) 'tenure'"),
        ([{"plan": "pro", "tenure": 1, "vip": True, "zip": "x"}], "unknown column(s) 'zip'"),
        ([{"plan": "pro", "tenure": 1.5, "vip": True}], "column 'tenure' row 0: expected a whole number"),
        ([{"plan": "pro", "tenure": 1, "vip": "yes"}], "column 'vip' row 0: expected true or false"),
        ([{"plan": None, "tenure": 1, "vip": True}], "column 'plan' row 0: null, but this column takes no nulls"),
    ],
)
def test_each_enforcement_rule_names_the_column(records: list[dict[str, object]], message: str) -> None:
    with pytest.raises(InvalidInput) as error:
        prepare(MIXED, records_table(records), max_rows=10)
    assert message in error.value.message


def test_unknown_columns_can_be_ignored_and_text_is_parsed_by_type() -> None:
    X = prepare(MIXED, records_table([{"plan": "pro", "tenure": 2, "vip": False, "zip": 1}]), max_rows=5, extra=IGNORE)
    assert X.tolist() == [["pro", 2, None, False]]
    csv = Table(rows=[["1", "pro", "", "true"]], names=["tenure", "plan", "spend", "vip"], text=True)
    assert prepare(MIXED, csv, max_rows=5).tolist() == [["pro", 1, None, True]]


def test_the_row_limit_and_empty_requests_are_refused() -> None:
    with pytest.raises(InvalidInput, match="exceed the limit of 2"):
        prepare(NUMERIC, rows_table([[1, 2, 3]] * 3), max_rows=2)
    with pytest.raises(InvalidInput, match="non-empty"):
        rows_table([])


def test_a_frame_model_gets_a_dataframe_with_the_signature_dtypes() -> None:
    X = prepare(MIXED, records_table([{"plan": "pro", "tenure": 2, "vip": True, "spend": None}]), max_rows=5)
    frame = to_model(MIXED, X)
    assert list(frame.columns) == ["plan", "tenure", "spend", "vip"]
    assert str(frame["tenure"].dtype) == "int64" and str(frame["spend"].dtype) == "float64"
    assert np.isnan(frame["spend"][0]) and frame["vip"][0]
    dated = Signature((Column("at", DATETIME),), frame=True)
    assert str(
        to_model(dated, prepare(dated, rows_table([["2026-11-23T02:00:00Z"]]), max_rows=1))["at"].dtype
    ).startswith("datetime64")
