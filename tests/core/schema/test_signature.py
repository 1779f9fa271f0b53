"""Signatures: inferred from examples and estimators, compared for schema-safe deploys."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression

from modelswap.core.errors import IncompatibleSchema, InvalidInput
from modelswap.core.schema.signature import (
    BOOLEAN,
    DATETIME,
    DOUBLE,
    LONG,
    STRING,
    Column,
    Signature,
    diff,
    infer_columns,
    schema_change,
)
from modelswap.core.store.manifest import load_manifest
from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, publish

PLAN_TENURE = Signature((Column("plan", STRING), Column("tenure", LONG)), frame=True)


def test_types_are_inferred_from_example_values_and_nulls_make_a_column_nullable() -> None:
    columns = infer_columns(
        ["a", "b", "c", "d", "e"],
        [[1, 2], [1, 2.5], [True, False], ["x", None], ["2026-01-01", "2026-01-02"]],
    )
    assert [(c.type, c.nullable) for c in columns] == [
        (LONG, False),
        (DOUBLE, False),
        (BOOLEAN, False),
        (STRING, True),
        (STRING, False),  # text stays text unless a signature says datetime
    ]
    assert DATETIME  # a type a declared signature may use


def test_an_all_null_or_mixed_column_cannot_be_inferred() -> None:
    with pytest.raises(InvalidInput, match="every example value is null"):
        infer_columns(["a"], [[None, None]])
    with pytest.raises(InvalidInput, match="mixes long, string"):
        infer_columns(["a"], [[1, "x"]])


def test_an_all_null_example_column_of_a_model_fitted_on_an_array_is_a_double(store: Store) -> None:
    import pandas as pd
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(0)
    X = rng.random((40, 3))
    y = (X[:, 0] > 0.5).astype(int)
    model = make_pipeline(SimpleImputer(), LogisticRegression()).fit(X, y)
    record = store.publish("arrays", model, example=[[0.1, None, 0.3], [0.4, None, 0.2]])
    signature = store.manifest("arrays", record.id).signature
    assert signature is not None and not signature.frame
    assert [(c.name, c.type) for c in signature.columns] == [(None, DOUBLE)] * 3
    assert signature.columns[1].nullable  # the example holds its nulls
    # fitted on a DataFrame, a column may hold anything: its type is still the example's to say
    names = ["a", "b", "c"]
    framed = make_pipeline(SimpleImputer(), LogisticRegression()).fit(pd.DataFrame(X, columns=names), y)
    with pytest.raises(InvalidInput, match="column b: every example value is null"):
        store.publish("frames", framed, example=[{"a": 0.1, "b": None, "c": 0.3}])


@pytest.mark.parametrize(
    ("new", "breaking", "compatible"),
    [
        (Signature((Column("plan", STRING), Column("tenure", DOUBLE)), frame=True), [], ["~ tenure: long -> double"]),
        (Signature((Column("plan", STRING), Column("tenure", STRING)), frame=True), ["~ tenure: long -> string"], []),
        (Signature((Column("plan", STRING),), frame=True), ["- tenure: long"], []),
        (
            Signature((*PLAN_TENURE.columns, Column("zip", STRING, nullable=True, required=False)), frame=True),
            [],
            ["+ zip: string (optional)"],
        ),
        (
            Signature((*PLAN_TENURE.columns, Column("zip", STRING, nullable=True)), frame=True),
            ["+ zip: string (nullable)"],
            [],
        ),
        (
            Signature((Column("plan", STRING, nullable=True, required=False), Column("tenure", LONG)), frame=True),
            [],
            ["~ plan: now accepts nulls", "~ plan: no longer required"],
        ),
        (Signature((*PLAN_TENURE.columns, Column("zip", STRING)), frame=True), ["+ zip: string"], []),
        (
            Signature((Column("plan", STRING, nullable=True), Column("tenure", LONG)), frame=True),
            [],
            ["~ plan: now accepts nulls"],
        ),
    ],
)  # fmt: skip
def test_diff_sorts_changes_into_breaking_and_compatible(
    new: Signature, breaking: list[str], compatible: list[str]
) -> None:
    assert diff(PLAN_TENURE, new) == (breaking, compatible)


def test_a_column_that_becomes_required_breaks_and_a_deploy_says_so(store: Store) -> None:
    """An optional column (an old manifest's nullable one) made required: clients that
    leave it out would get 400s, so the deploy is refused with the diff unless forced."""
    optional = Signature((Column("plan", STRING, nullable=True, required=False), Column("tenure", LONG)), frame=True)
    required = Signature((Column("plan", STRING, nullable=True), Column("tenure", LONG)), frame=True)
    assert diff(optional, required) == (["~ plan: now required"], [])
    with pytest.raises(IncompatibleSchema, match="~ plan: now required"):
        schema_change(optional, required, force=False, what="deploy")
    positional = Signature((Column(None, DOUBLE, nullable=True, required=False),))
    assert diff(positional, Signature((Column(None, DOUBLE, nullable=True),))) == ([], [])  # rows hold every column


def test_a_positional_model_that_changes_width_breaks() -> None:
    four = Signature(tuple(Column(None, DOUBLE) for _ in range(4)))
    thirteen = Signature(tuple(Column(None, DOUBLE) for _ in range(13)))
    assert diff(four, thirteen)[0] == ["- 4 columns", "+ 13 columns"]
    with pytest.raises(IncompatibleSchema, match="- 4 columns"):
        schema_change(four, thirteen, force=False, what="deploy")
    assert schema_change(four, thirteen, force=True, what="deploy") == {
        "schema_change": ["- 4 columns", "+ 13 columns"],
        "forced": True,
    }


def test_a_deploy_that_changes_the_input_width_is_refused_with_its_diff_unless_forced(
    store: Store, iris_a: Any
) -> None:
    iris = publish(store, iris_a)
    store.deploy("iris", iris)
    wine = load_wine()
    other = store.publish("iris", LogisticRegression(max_iter=5000).fit(wine.data, wine.target), example=wine.data[:2])
    with pytest.raises(IncompatibleSchema, match=r"- 4 columns; \+ 13 columns"):
        store.deploy("iris", other.id)
    assert store.current("iris") == iris
    store.deploy("iris", other.id, force=True, reason="new dataset")
    entry = store.history("iris", limit=1)[0]
    assert entry.details == {"schema_change": ["- 4 columns", "+ 13 columns"], "forced": True}
    with pytest.raises(IncompatibleSchema):
        store.rollback("iris")
    assert store.rollback("iris", force=True).current == iris


def test_a_manifest_written_before_required_keeps_its_nullable_columns_optional(store: Store) -> None:
    from tests.models_for_tests import churn_pipeline

    pipeline, frame = churn_pipeline()
    version = store.publish("churn", pipeline, example=frame.head(3)).id
    path: Path = store.paths("churn").version_dir(version) / "manifest.json"
    data = json.loads(path.read_text())
    assert [c["required"] for c in data["signature"]["inputs"]] == [True, True, True]  # written out, always
    for column in data["signature"]["inputs"]:
        del column["required"]
    path.write_text(json.dumps(data))
    old = load_manifest(path.parent).signature
    assert old is not None
    assert [(c.name, c.nullable, c.required) for c in old.columns] == [
        ("plan", True, False),  # nullable then, so it could be left out: it still can
        ("tenure", False, True),
        ("spend", False, True),
    ]


def test_a_manifest_without_a_signature_still_loads_and_gets_one_from_the_estimator(store: Store, iris_a: Any) -> None:
    version = publish(store, iris_a)
    path: Path = store.paths("iris").version_dir(version) / "manifest.json"
    data = json.loads(path.read_text())
    data.pop("signature")
    data.pop("metadata")
    data["format"] = 1
    path.write_text(json.dumps(data))
    old = load_manifest(path.parent)
    assert old.signature is None and old.input_example == (IRIS_ROW,)
    estimator = store.load("iris", version)
    assert estimator.predict(np.array([IRIS_ROW])).tolist() == iris_a.predict(np.array([IRIS_ROW])).tolist()


def test_republishing_keeps_the_live_versions_optional_columns_optional(store: Store) -> None:
    """An inferred signature cannot tell whether a column may be left out: a column the live
    version takes as optional stays optional in the next version when it still takes nulls,
    so re-publishing the same model is no breaking change. A declared signature is kept as given."""
    from tests.models_for_tests import churn_pipeline

    pipeline, frame = churn_pipeline()
    inferred = store.publish("churn", pipeline, example=frame.head(3)).id
    columns = store.manifest("churn", inferred).signature.columns  # type: ignore[union-attr]
    declared = Signature(tuple(replace(c, required=False) if c.name == "plan" else c for c in columns), frame=True)
    assert declared.columns[0].nullable  # the pipeline imputes a missing plan
    live = store.publish("churn", pipeline, example=frame.head(3), signature=declared).id
    store.deploy("churn", live, force=True)
    again = store.publish("churn", pipeline, example=frame.head(3)).id
    kept = store.manifest("churn", again).signature
    assert kept is not None and [(c.name, c.required) for c in kept.columns] == [
        ("plan", False),
        ("tenure", True),
        ("spend", True),
    ]
    store.deploy("churn", again)  # no "~ plan: now required"
    assert store.current("churn") == again
    # as declared, a column the live version left optional may become required: that is the breaking change
    required = store.publish("churn", pipeline, example=frame.head(3), signature=Signature(columns, frame=True)).id
    with pytest.raises(IncompatibleSchema, match="~ plan: now required"):
        store.deploy("churn", required)
