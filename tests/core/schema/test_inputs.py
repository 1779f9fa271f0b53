"""One conversion for every protocol: a table of request rows meets the signature."""

from __future__ import annotations

import numpy as np
import pytest

from modelswap.core.errors import InvalidInput
from modelswap.core.schema.inputs import (
    IGNORE,
    SMALL,
    Table,
    all_finite,
    columns_table,
    prepare,
    records_table,
    rows_table,
    to_model,
)
from modelswap.core.schema.signature import BOOLEAN, DATETIME, DOUBLE, LONG, STRING, Column, Signature

NUMERIC = Signature(tuple(Column(None, DOUBLE) for _ in range(3)))
MIXED = Signature(
    (
        Column("plan", STRING),
        Column("tenure", LONG),
        Column("spend", DOUBLE, nullable=True, required=False),
        Column("vip", BOOLEAN),
    ),
    frame=True,
)


def test_numeric_rows_take_the_float64_fast_path() -> None:
    X = prepare(NUMERIC, rows_table([[1, 2.5, 3], [4, 5, 6]]), max_rows=10)
    assert X.dtype == np.float64 and X.tolist() == [[1.0, 2.5, 3.0], [4.0, 5.0, 6.0]]


@pytest.mark.parametrize("size", [1, 4, SMALL, SMALL + 1, 300])
@pytest.mark.parametrize(
    "bad", [None, np.nan, np.inf, -np.inf, "both infinities", "overflowing sum", "overflow and nan"]
)
def test_the_finiteness_check_agrees_with_numpy(size: int, bad: object) -> None:
    X = np.linspace(-3.0, 3.0, size)
    if bad == "both infinities" and size > 1:
        X[0], X[-1] = np.inf, -np.inf
    elif bad == "overflowing sum" and size > 1:
        X[:] = 1.7e308  # every value finite, their sum is not
    elif bad == "overflow and nan" and size > 2:
        X[:] = -1.7e308
        X[size // 2] = np.nan
    elif isinstance(bad, float):
        X[size // 2] = bad
    for shaped in (X.reshape(1, -1), X.reshape(-1, 1)):
        assert all_finite(shaped) == bool(np.isfinite(shaped).all())


def test_an_array_with_a_nan_or_an_infinity_is_refused_and_huge_finite_numbers_pass() -> None:
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(InvalidInput) as error:
            prepare(NUMERIC, Table(array=np.array([[1.0, bad, 3.0]])), max_rows=10)
        assert "column #1 row 0" in error.value.message
    huge = np.array([[1.7e308, 1.7e308, -1.7e308]])
    assert prepare(NUMERIC, Table(array=huge), max_rows=10).tolist() == huge.tolist()


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
    assert X.tolist() == [["pro", 3, 2.5, True], ["basic", 1, None, False]]  # spend absent: null, it is optional
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


def test_a_column_is_required_unless_declared_optional_whether_or_not_it_takes_nulls() -> None:
    """A nullable column may be sent null, but left out of every row it is a client's
    dropped or misspelled field: a 400 naming it (on every protocol: they all come here)."""
    churn = Signature(
        (
            Column("tenure", DOUBLE, nullable=True),
            Column("plan", STRING),
            Column("zip", STRING, nullable=True, required=False),
        ),
        frame=True,
    )
    for table in (
        records_table([{"plan": "pro"}]),
        columns_table({"plan": ["pro"], "zip": ["x"]}),
        Table(rows=[["pro"]], names=["plan"]),
        Table(rows=[["pro"]], names=["plan"], text=True),
    ):
        with pytest.raises(InvalidInput) as error:
            prepare(churn, table, max_rows=5)
        assert error.value.message == "missing column(s) 'tenure'; the model takes tenure, plan, zip"
    sent = prepare(churn, records_table([{"plan": "pro", "tenure": None}, {"plan": "x", "tenure": 3.0}]), max_rows=5)
    assert sent.tolist() == [[None, "pro", None], [3.0, "x", None]]  # sent null where nulls are taken: fine


def test_a_signature_declares_optional_columns_and_old_manifests_keep_their_nullable_ones_optional() -> None:
    declared = Signature.from_dict(
        {
            "inputs": [
                {"name": "a", "type": "double", "nullable": True},
                {"name": "b", "type": "string", "required": False},
            ]
        }
    )
    assert [(c.nullable, c.required) for c in declared.columns] == [(True, True), (True, False)]
    assert declared.to_dict()["inputs"][1] == {"name": "b", "type": "string", "nullable": True, "required": False}
    assert Signature.from_dict(declared.to_dict(), stored=True) == declared
    # written before columns could be optional: a nullable column could be left out, and still can
    old = Signature.from_dict(
        {"inputs": [{"name": "a", "type": "double", "nullable": True}, {"name": "b", "type": "string"}]}, stored=True
    )
    assert [(c.nullable, c.required) for c in old.columns] == [(True, False), (False, True)]
    assert prepare(old, records_table([{"b": "x"}]), max_rows=1).tolist() == [[None, "x"]]
    with pytest.raises(InvalidInput, match="column 'b': a column that is not required must be nullable"):
        Signature.from_dict({"inputs": [{"name": "b", "type": "string", "required": False, "nullable": False}]})
    with pytest.raises(InvalidInput, match="'required' must be true or false"):
        Signature.from_dict({"inputs": [{"name": "b", "type": "string", "required": "no"}]})


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


def test_the_text_nat_is_a_null_held_to_the_columns_nullability() -> None:
    required = Signature((Column("at", DATETIME),), frame=True)
    for given in ("NaT", " nat "):
        with pytest.raises(InvalidInput) as error:
            prepare(required, records_table([{"at": given}]), max_rows=5)
        assert error.value.message == "column 'at' row 0: null, but this column takes no nulls"
    optional = Signature((Column("at", DATETIME, nullable=True, required=False),), frame=True)
    for not_a_time in ("", "NaTZ"):  # what else NumPy reads as not-a-time is no time, nullable or not
        with pytest.raises(InvalidInput, match="expected an ISO 8601 date or time"):
            prepare(optional, records_table([{"at": not_a_time}]), max_rows=5)
    X = prepare(optional, records_table([{"at": "NaT"}, {"at": None}, {"at": "2026-11-23"}]), max_rows=5)
    assert X[0, 0] is None and X[1, 0] is None  # the same null as a JSON null
    assert to_model(optional, X)["at"].isna().tolist() == [True, True, False]


def test_times_are_taken_on_the_whole_days_the_message_names_and_refused_past_them() -> None:
    dated = Signature((Column("at", DATETIME),))
    for inside in ("1677-09-22T00:00:00", "2262-04-10T23:59:59.999", "2262-04-10"):
        assert prepare(dated, rows_table([[inside]]), max_rows=1)[0, 0] == np.datetime64(inside, "ns")
    for outside in ("1677-09-21T23:59:59", "2262-04-11T00:00:00", "2262-04-11"):
        with pytest.raises(InvalidInput) as error:
            prepare(dated, rows_table([[outside]]), max_rows=1)
        assert "expected a time from 1677-09-22 to 2262-04-10 (whole days)" in error.value.message
