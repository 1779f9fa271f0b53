"""Batch scoring in process: a file scored with one pinned version, as the server would answer its rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelswap.core.errors import InvalidInput, NotFound
from modelswap.core.store.aliases import set_alias
from modelswap.core.store.store import Store
from tests.models_for_tests import customers, customers_pipeline


def table_file(path: Path, frame: pd.DataFrame) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True, date_format="iso")
    return path


def with_ids(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(customer_id=np.arange(len(frame)) + 1000)[["customer_id", *frame.columns]]


def test_a_200k_row_parquet_file_gets_the_pipelines_own_answers_row_for_row(
    store: Store, fitted: tuple[Any, Any], tmp_path: Path
) -> None:
    pipeline, _ = fitted
    frame, _ = customers(200_000, seed=1)
    assert frame["plan"].isna().any() and frame["spend"].isna().any()  # nulls in a string and a number column
    source = table_file(tmp_path / "customers.parquet", with_ids(frame))

    report = store.score("churn", source, tmp_path / "scored.parquet", keep=["customer_id"])

    out = pq.read_table(tmp_path / "scored.parquet").to_pandas()
    assert list(out.columns) == ["customer_id", "prediction"]
    assert report.rows == len(out) == 200_000 and report.rejects == 0
    assert (out["customer_id"].to_numpy() == np.arange(200_000) + 1000).all()
    assert (out["prediction"].to_numpy() == pipeline.predict(frame)).all()

    proba = store.score(
        "churn",
        source,
        tmp_path / "proba.parquet",
        method="predict_proba",
        ignore_extra_columns=True,
        chunk_rows=50_000,
    )
    out = pq.read_table(tmp_path / "proba.parquet").to_pandas()
    assert list(out.columns) == [f"proba_{c}" for c in pipeline.classes_] == ["proba_churned", "proba_stayed"]
    np.testing.assert_allclose(out.to_numpy(), pipeline.predict_proba(frame), rtol=1e-12)
    assert proba.method == "predict_proba"


def test_the_output_says_which_version_made_it(store: Store, tmp_path: Path) -> None:
    frame, _ = customers(500, seed=2)
    source = table_file(tmp_path / "in.parquet", frame)
    live = store.current("churn")
    report = store.score("churn", source, tmp_path / "out.parquet")

    meta = {k.decode(): v.decode() for k, v in pq.read_metadata(tmp_path / "out.parquet").metadata.items()}
    record = store.version("churn", live)
    assert meta["modelswap.model"] == "churn" and meta["modelswap.version"] == live == report.version
    assert meta["modelswap.model_id"] == record.model_id and meta["modelswap.model_id"].startswith("m-")
    assert meta["modelswap.method"] == "predict" and meta["modelswap.rows"] == "500"
    assert meta["modelswap.rejects"] == "0" and meta["modelswap.signature"].startswith("sha256:")
    assert meta["modelswap.started"] <= meta["modelswap.finished"]

    entry = store.history("churn", limit=1)[0]
    assert entry.action == "score" and entry.to_version == live
    assert entry.details["input"] == str(source.resolve()) and entry.details["rows"] == 500
    assert entry.details["rejects"] == 0 and entry.details["output"] == str((tmp_path / "out.parquet").resolve())


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_csv_and_json_lines_score_like_parquet_with_the_metadata_beside_them(
    store: Store, fitted: tuple[Any, Any], tmp_path: Path, suffix: str
) -> None:
    pipeline, _ = fitted
    frame, _ = customers(3_000, seed=3)
    source = table_file(tmp_path / f"in{suffix}", with_ids(frame))
    target = tmp_path / f"out{suffix}"

    report = store.score("churn", source, target, keep=["customer_id"], chunk_rows=1_000)

    out = pd.read_csv(target) if suffix == ".csv" else pd.read_json(target, lines=True)
    assert (out["customer_id"].to_numpy() == np.arange(3_000) + 1000).all()
    assert (out["prediction"].to_numpy() == pipeline.predict(frame)).all()
    meta = json.loads((tmp_path / f"out{suffix}.meta.json").read_text())
    assert meta["version"] == report.version == store.current("churn") and meta["rows"] == 3_000


def test_a_row_that_does_not_fit_stops_the_job_naming_row_and_column_and_writes_nothing(
    store: Store, tmp_path: Path
) -> None:
    frame, _ = customers(100, seed=4)
    frame["tenure"] = frame["tenure"].astype(object)
    frame.loc[57, "tenure"] = "twelve"
    source = table_file(tmp_path / "in.csv", frame)
    before = store.history("churn")

    with pytest.raises(InvalidInput, match=r"in\.csv: column 'tenure' row 57: expected a number, got 'twelve'"):
        store.score("churn", source, tmp_path / "out.parquet", chunk_rows=10)  # row 57 is in the sixth chunk

    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "models"]  # no output, no partial file
    assert store.history("churn") == before


def test_an_output_that_cannot_be_written_fails_the_job_before_any_row_is_scored(store: Store, tmp_path: Path) -> None:
    source = table_file(tmp_path / "in.csv", customers(100, seed=4)[0])
    too_long = tmp_path / ("r" * 245 + ".csv")  # its hidden partial name passes the file system's 255 bytes
    chunks: list[int] = []

    with pytest.raises(InvalidInput, match=r"r\.csv cannot be written: File name too long"):
        store.score("churn", source, tmp_path / "out.parquet", rejects=too_long, chunk_rows=10,
                    progress=lambda rows, done: chunks.append(rows))  # fmt: skip
    assert chunks == []  # refused at the start, not after the work
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "models"]  # the output's partial file went too


def test_with_rejects_a_bad_row_is_set_aside_with_its_reason_and_the_rest_is_scored(
    store: Store, fitted: tuple[Any, Any], tmp_path: Path
) -> None:
    pipeline, _ = fitted
    frame, _ = customers(100, seed=5)
    frame = with_ids(frame)
    frame["tenure"] = frame["tenure"].astype(object)
    frame.loc[57, "tenure"] = "twelve"
    frame.loc[3, "tenure"] = 2.5
    source = table_file(tmp_path / "in.jsonl", frame)

    report = store.score(
        "churn", source, tmp_path / "out.parquet", keep=["customer_id"], rejects=tmp_path / "rejects.csv", chunk_rows=30
    )

    assert (report.rows, report.rejects) == (98, 2)
    rejects = pd.read_csv(tmp_path / "rejects.csv")
    assert rejects["row"].tolist() == [3, 57] and rejects["customer_id"].tolist() == [1003, 1057]
    assert rejects["reason"].tolist() == [
        "column 'tenure' row 3: expected a whole number, got 2.5",
        "column 'tenure' row 57: expected a number, got 'twelve'",
    ]
    assert json.loads(rejects["values"][1])["tenure"] == "twelve"
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    good = frame.drop(index=[3, 57])
    assert out["customer_id"].tolist() == good["customer_id"].tolist()
    expected = pipeline.predict(good.drop(columns="customer_id").astype({"tenure": "int64"}))
    assert (out["prediction"].to_numpy() == expected).all()
    assert store.history("churn", limit=1)[0].details["rejects"] == 2


def test_typed_parquet_columns_are_checked_as_a_whole_and_a_bad_one_named(store: Store, tmp_path: Path) -> None:
    frame, _ = customers(1_000, seed=6)
    frame["tenure"] = frame["tenure"].astype(float)
    frame.loc[700, "tenure"] = 3.25  # a fraction in a whole-number column, in a float column
    source = table_file(tmp_path / "in.parquet", frame)
    with pytest.raises(InvalidInput, match=r"column 'tenure' row 700: expected a whole number, got 3\.25"):
        store.score("churn", source, tmp_path / "out.parquet", chunk_rows=256)
    frame.loc[700, "tenure"] = 3.0
    frame["signup"] = frame["signup"].astype(str)  # dates as text are parsed as a request's are
    source = table_file(tmp_path / "in.parquet", frame)
    assert store.score("churn", source, tmp_path / "out.parquet").rows == 1_000


def test_a_version_or_alias_pins_the_job_and_the_live_one_is_the_default(
    store: Store, fitted: tuple[Any, Any], tmp_path: Path
) -> None:
    first = store.current("churn")
    flipped, frame = customers_pipeline(flip=True)
    second = store.publish("churn", flipped, example=frame.head(20)).id
    set_alias(store, "churn", "champion", first)
    source = table_file(tmp_path / "in.parquet", customers(200, seed=7)[0])

    assert store.score("churn", source, tmp_path / "a.parquet").version == first
    assert store.score("churn", source, tmp_path / "b.parquet", version=second).version == second
    a = pq.read_table(tmp_path / "a.parquet")["prediction"].to_pylist()
    b = pq.read_table(tmp_path / "b.parquet")["prediction"].to_pylist()
    assert a != b  # the flipped model answers otherwise: each file holds its own version's answers
    assert store.score("churn", source, tmp_path / "c.parquet", version="champion").version == first
    with pytest.raises(NotFound, match="no version or alias 'nightly'"):
        store.score("churn", source, tmp_path / "d.parquet", version="nightly")


@pytest.mark.parametrize(
    ("change", "message", "ignoring"),
    [
        (lambda f: f.assign(tenur=1), "unknown column\\(s\\) 'tenur'.*--keep", None),
        (
            lambda f: f.drop(columns=["plan"]).assign(plan_name="pro"),
            "unknown column\\(s\\) 'plan_name'",
            "missing column\\(s\\) 'plan'",  # a renamed column is still missing: never a column of nulls
        ),
    ],
)
def test_unknown_columns_are_refused_before_any_row_is_scored(
    store: Store, tmp_path: Path, change: Any, message: str, ignoring: str | None
) -> None:
    source = table_file(tmp_path / "in.parquet", change(customers(50, seed=8)[0]))
    with pytest.raises(InvalidInput, match=message):
        store.score("churn", source, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()
    if ignoring is None:
        assert store.score("churn", source, tmp_path / "out.parquet", ignore_extra_columns=True).rows == 50
    else:
        with pytest.raises(InvalidInput, match=ignoring):
            store.score("churn", source, tmp_path / "out.parquet", ignore_extra_columns=True)


def test_bad_options_are_refused_with_a_clear_error(store: Store, tmp_path: Path) -> None:
    source = table_file(tmp_path / "in.parquet", customers(20, seed=9)[0])
    cases = [
        (dict(output=source), "would overwrite the input"),
        (dict(output=tmp_path / "out.xlsx"), "cannot tell the format from '.xlsx'"),
        (dict(keep=["customer_id"]), "no column 'customer_id' to keep"),
        (dict(method="predict_log_proba"), "method must be one of predict, predict_proba, decision_function"),
        (dict(chunk_rows=0), "chunk_rows must be at least 1"),
        (dict(rejects=tmp_path / "out.parquet"), "the rejects file and the output must differ"),
    ]
    for options, message in cases:
        arguments: dict[str, Any] = {"output": tmp_path / "out.parquet", **options}
        with pytest.raises(InvalidInput, match=message):
            store.score("churn", source, **arguments)
    with pytest.raises(InvalidInput, match="no such file"):
        store.score("churn", tmp_path / "missing.parquet", tmp_path / "out.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "models"]


def test_decision_function_of_a_binary_classifier_is_one_column(store: Store, fitted: Any, tmp_path: Path) -> None:
    pipeline, _ = fitted
    frame, _ = customers(300, seed=10)
    source = table_file(tmp_path / "in.parquet", frame)
    store.score("churn", source, tmp_path / "out.parquet", method="decision_function")
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    assert list(out.columns) == ["decision"]
    np.testing.assert_allclose(out["decision"].to_numpy(), pipeline.decision_function(frame), rtol=1e-12)
