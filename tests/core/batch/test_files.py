"""What a hostile file does to a score job: every odd input gets a clear error naming what
to fix, or is scored; a failed job leaves nothing behind."""

from __future__ import annotations

import decimal
import json
import os
import socket
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelswap.core.errors import InvalidInput
from modelswap.core.store.store import Store
from tests.models_for_tests import customers


def rows(n: int, seed: int = 0) -> pd.DataFrame:
    return customers(n, seed)[0]


def leftovers(directory: Path, *expected: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in ("models", *expected))


def test_a_kept_json_lines_column_keeps_one_type_whatever_the_chunk(store: Store, tmp_path: Path) -> None:
    frame = rows(6)
    lines = [
        json.dumps({"id": None if i == 0 else i, **r}, default=str) for i, r in enumerate(frame.to_dict("records"))
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(lines).replace("NaN", "null") + "\n")
    store.score("churn", tmp_path / "in.jsonl", tmp_path / "out.parquet", keep=["id"], chunk_rows=1)
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.schema.field("id").type == pa.int64() and out["id"].to_pylist() == [None, 1, 2, 3, 4, 5]

    frame = rows(1_100)  # past the first 1,000 rows, which give the kept column its type
    lines = [json.dumps({"id": i, **r}, default=str) for i, r in enumerate(frame.to_dict("records"))]
    lines[1_050] = lines[1_050].replace('"id": 1050', '"id": "ten fifty"')
    (tmp_path / "in.jsonl").write_text("\n".join(lines).replace("NaN", "null") + "\n")
    with pytest.raises(InvalidInput, match=r"kept column 'id' row 1050: 'ten fifty' is not int64"):
        store.score("churn", tmp_path / "in.jsonl", tmp_path / "out2.parquet", keep=["id"], chunk_rows=100)
    assert not (tmp_path / "out2.parquet").exists()


def test_a_kept_column_may_not_take_an_output_columns_name(store: Store, tmp_path: Path) -> None:
    frame = rows(10).assign(prediction=1, reason="x")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "in.parquet")
    with pytest.raises(InvalidInput, match=r"cannot keep 'prediction': the output names a column of its own so"):
        store.score("churn", tmp_path / "in.parquet", tmp_path / "out.parquet", keep=["prediction"])
    with pytest.raises(InvalidInput, match=r"cannot keep 'reason'"):
        store.score(
            "churn", tmp_path / "in.parquet", tmp_path / "out.parquet", keep=["reason"], rejects=tmp_path / "r.csv",
            ignore_extra_columns=True,
        )  # fmt: skip
    assert leftovers(tmp_path, "in.parquet") == []


def test_where_the_output_may_go(store: Store, tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pandas(rows(10), preserve_index=False), tmp_path / "in.parquet")
    (tmp_path / "out.csv").mkdir()
    (tmp_path / "r.jsonl").write_text("an earlier job's rejects\n")
    cases = [
        (tmp_path / "out.csv", r"out\.csv is a directory"),
        (tmp_path / "missing" / "out.csv", r"no directory .*missing to write it in"),
        (store.paths("churn").history, r"history\.jsonl is inside the model store"),
        (store.root / "churn" / "scored.parquet", r"is inside the model store"),
    ]
    for target, message in cases:
        with pytest.raises(InvalidInput, match=message):
            store.score("churn", tmp_path / "in.parquet", target, rejects=tmp_path / "r.jsonl")
    assert (tmp_path / "r.jsonl").read_text() == "an earlier job's rejects\n"  # untouched
    assert leftovers(tmp_path, "in.parquet", "out.csv", "r.jsonl") == []
    assert store.history("churn")[0].action == "deploy"


def test_values_json_cannot_hold_still_reach_the_rejects_file(store: Store, tmp_path: Path) -> None:
    frame = rows(5)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    spend = pa.array([decimal.Decimal("1.50"), None, decimal.Decimal("2.25"), None, None], pa.decimal128(5, 2))
    table = table.set_column(table.schema.get_field_index("spend"), "spend", spend)
    pq.write_table(table, tmp_path / "in.parquet")
    report = store.score("churn", tmp_path / "in.parquet", tmp_path / "out.parquet", rejects=tmp_path / "r.csv")
    assert (report.rows, report.rejects) == (3, 2)
    rejected = pd.read_csv(tmp_path / "r.csv")
    assert rejected["row"].tolist() == [0, 2]
    assert json.loads(rejected["values"][0])["spend"] == "1.50"
    assert "expected a number, got Decimal('1.50')" in rejected["reason"][0]


def test_a_time_outside_the_nanosecond_range_is_named_not_wrapped(store: Store, tmp_path: Path) -> None:
    frame = rows(5)
    table = pa.Table.from_pandas(frame.drop(columns="signup"), preserve_index=False)
    days = pa.array([18000, 18001, 120000, 18003, 18004], pa.int32()).cast(pa.date32())  # 120000: in 2298
    pq.write_table(table.append_column("signup", days), tmp_path / "in.parquet")
    with pytest.raises(
        InvalidInput, match=r"column 'signup' row 2: expected a time from 1677-09-22 to 2262-04-10 \(whole days\)"
    ):
        store.score("churn", tmp_path / "in.parquet", tmp_path / "out.parquet")
    report = store.score("churn", tmp_path / "in.parquet", tmp_path / "out.parquet", rejects=tmp_path / "r.jsonl")
    assert (report.rows, report.rejects) == (4, 1)
    frame["signup"] = frame["signup"].astype(str)
    frame.loc[1, "signup"] = "2300-01-01"  # as text, online or in a file: the same refusal
    frame.to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(
        InvalidInput, match=r"row 1: expected a time from 1677-09-22 to 2262-04-10 \(whole days\), got '2300"
    ):
        store.score("churn", tmp_path / "in.csv", tmp_path / "out.parquet")


def test_csv_quoted_newlines_past_a_block_and_a_bom_are_read_and_a_ragged_row_is_named(
    store: Store, tmp_path: Path
) -> None:
    frame = rows(60_000, seed=3)
    frame["plan"] = frame["plan"].map(lambda p: None if p is None else f"{p}\nnote")  # unknown plans: still scored
    frame.to_csv(tmp_path / "in.csv", index=False, encoding="utf-8-sig")
    assert (tmp_path / "in.csv").stat().st_size > 1.5 * 2**20 and (tmp_path / "in.csv").read_bytes()[
        :3
    ] == b"\xef\xbb\xbf"
    assert store.score("churn", tmp_path / "in.csv", tmp_path / "out.parquet").rows == 60_000

    (tmp_path / "bad.csv").write_text("plan,tenure,spend,signup\npro,3,1.0,2020-01-01\npro,3\n")
    with pytest.raises(InvalidInput, match=r"bad\.csv: row 1 has 2 fields, the header 4: 'pro,3'"):
        store.score("churn", tmp_path / "bad.csv", tmp_path / "out2.parquet", rejects=tmp_path / "r.csv")
    (tmp_path / "latin.csv").write_bytes("plan,tenure,spend,signup\nbásico,3,1.0,2020-01-01\n".encode("latin-1"))
    with pytest.raises(InvalidInput, match=r"latin\.csv: "):
        store.score("churn", tmp_path / "latin.csv", tmp_path / "out3.parquet")
    assert leftovers(tmp_path, "in.csv", "out.parquet", "bad.csv", "latin.csv") == []


def test_json_lines_errors_name_their_row(store: Store, tmp_path: Path) -> None:
    lines = [json.dumps(r, default=str).replace("NaN", "null") for r in rows(600).to_dict("records")]
    lines[500] = "{not json"
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInput, match=r"row 500 is not valid JSON"):
        store.score("churn", tmp_path / "in.jsonl", tmp_path / "out.parquet")


def test_a_typed_column_of_the_wrong_type_reads_as_a_request_would(store: Store, tmp_path: Path) -> None:
    frame = rows(5).assign(tenure=[True, False, True, True, False])
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "in.parquet")
    with pytest.raises(
        InvalidInput, match=r"column 'tenure' row 0: expected a number \(booleans stay booleans\), got True$"
    ):
        store.score("churn", tmp_path / "in.parquet", tmp_path / "out.parquet")


def test_an_empty_file_still_has_to_bring_the_columns_the_model_needs(store: Store, tmp_path: Path) -> None:
    frame = rows(5).head(0).drop(columns="tenure")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "in.parquet")
    with pytest.raises(InvalidInput, match=r"in\.parquet: missing column\(s\) 'tenure'"):
        store.score("churn", tmp_path / "in.parquet", tmp_path / "out.parquet")
    pq.write_table(pa.Table.from_pandas(rows(5).head(0), preserve_index=False), tmp_path / "all.parquet")
    assert store.score("churn", tmp_path / "all.parquet", tmp_path / "out.parquet").rows == 0
    assert pq.read_table(tmp_path / "out.parquet").column_names == ["prediction"]


def test_what_a_killed_job_left_on_this_host_is_removed_by_the_next_one(store: Store, tmp_path: Path) -> None:
    rows(50).to_csv(tmp_path / "in.csv", index=False)
    dead = 2**22 + 12345  # above pid_max's default: no such process
    host = socket.gethostname()
    left = [tmp_path / f".out.csv.{host}.{dead}.partial", tmp_path / f".out.csv.meta.json.{host}.{dead}.partial"]
    other_host = tmp_path / f".out.csv.another-pod.{dead}.partial"
    for path in [*left, other_host]:
        path.write_text("half")
    store.score("churn", tmp_path / "in.csv", tmp_path / "out.csv")
    assert not any(p.exists() for p in left) and other_host.exists()
    assert (tmp_path / "out.csv").exists() and (tmp_path / "out.csv.meta.json").exists()
    assert os.listdir(tmp_path).count(other_host.name) == 1


def test_a_file_that_is_not_parquet_is_named_and_a_job_keeps_no_version_loaded(store: Store, tmp_path: Path) -> None:
    from modelswap.core.batch import pinned

    (tmp_path / "in.parquet").write_bytes(b"PAR1 but not really")
    with pytest.raises(InvalidInput, match=r"in\.parquet: not a readable Parquet file"):
        store.score("churn", tmp_path / "in.parquet", tmp_path / "out.parquet")
    pq.write_table(pa.Table.from_pandas(rows(10), preserve_index=False), tmp_path / "in.parquet")
    before = pinned.loads()
    for _ in range(3):
        store.score("churn", tmp_path / "in.parquet", tmp_path / "out.parquet")
    assert pinned.loads() == before  # the workers' cache is not where a job's version lives
