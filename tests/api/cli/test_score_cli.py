"""`modelswap score` as a nightly job runs it: a separate process, a deploy while it
runs, a kill -9 half way, a bad row."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from modelswap.core.store.store import Store
from tests.api.cli.test_commands import run
from tests.conftest import ROOT
from tests.models_for_tests import customers, customers_pipeline

ROWS = 300_000  # a CSV this long takes the job a few seconds at 2,000 rows a chunk


@pytest.fixture(scope="module")
def nightly(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Path, str, Any]:
    """A store whose live version is a customers pipeline, and a long CSV of customers."""
    home = tmp_path_factory.mktemp("nightly")
    pipeline, frame = customers_pipeline()
    store = Store(home / "models")
    live = store.publish("churn", pipeline, example=frame.head(20)).id
    store.deploy("churn", live)
    table, _ = customers(ROWS, seed=11)
    table.insert(0, "customer_id", np.arange(ROWS))
    table.to_csv(home / "customers.csv", index=False)
    return store, home / "customers.csv", live, pipeline.predict(table.drop(columns="customer_id"))


def start(store: Store, source: Path, target: Path) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "modelswap", "--root", str(store.root), "score", "churn", str(source)]
    argv += ["--output", str(target), "--keep", "customer_id", "--chunk-rows", "2000"]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_partial(target: Path, proc: subprocess.Popen[str]) -> Path:
    """The job's hidden partial file, once it holds some rows."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = [p for p in target.parent.glob(f".{target.name}.*.partial") if p.stat().st_size > 10_000]
        if found:
            return found[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    raise AssertionError("the job wrote nothing within 60 s")


def test_a_deploy_during_the_job_changes_neither_its_version_nor_its_answers(
    nightly: tuple[Store, Path, str, Any], tmp_path: Path
) -> None:
    store, source, live, expected = nightly
    flipped, frame = customers_pipeline(flip=True)
    newer = store.publish("churn", flipped, example=frame.head(20)).id
    target = tmp_path / "scored.parquet"
    proc = start(store, source, target)
    try:
        wait_for_partial(target, proc)
        store.deploy("churn", newer)  # while the job is half way
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
        store.deploy("churn", live)
    assert proc.returncode == 0, err
    assert f"scored {ROWS:,} rows" in out and live in out
    meta = pq.read_metadata(target).metadata
    assert meta[b"modelswap.version"] == live.encode()
    answers = pq.read_table(target).to_pandas()
    assert len(answers) == ROWS and (answers["prediction"].to_numpy() == expected).all()
    scores = [e for e in store.history("churn", limit=5) if e.action == "score"]
    assert scores[0].to_version == live and scores[0].details["rows"] == ROWS


def test_kill_9_half_way_leaves_no_file_under_the_output_and_the_next_run_clears_the_rest(
    nightly: tuple[Store, Path, str, Any], tmp_path: Path
) -> None:
    store, source, _, expected = nightly
    target = tmp_path / "scored.csv"
    before = store.history("churn")
    proc = start(store, source, target)
    try:
        partial = wait_for_partial(target, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    assert not target.exists() and not Path(f"{target}.meta.json").exists()
    assert partial.exists()  # the dead job's hidden file
    assert store.history("churn") == before  # no score entry: the job did not finish

    result = run(store.root, "score", "churn", str(source), "-o", str(target), "--keep", "customer_id", "--json")
    assert result.returncode == 0, result.stderr
    assert not partial.exists()
    report = json.loads(result.stdout)
    assert report["rows"] == ROWS and report["output"] == str(target.resolve())
    assert (pd.read_csv(target)["prediction"].to_numpy() == expected).all()


def test_a_bad_row_is_exit_1_naming_row_and_column_and_rejects_set_it_aside(
    nightly: tuple[Store, Path, str, Any], tmp_path: Path
) -> None:
    store = nightly[0]
    frame, _ = customers(50, seed=12)
    frame["spend"] = frame["spend"].astype(object)
    frame.loc[41, "spend"] = "n/a"
    frame.to_csv(tmp_path / "in.csv", index=False)

    result = run(store.root, "score", "churn", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.parquet"))
    assert result.returncode == 1
    assert result.stderr == f"error: {tmp_path / 'in.csv'}: column 'spend' row 41: expected a number, got 'n/a'\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]

    result = run(
        store.root, "score", "churn", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.parquet"),
        "--rejects", str(tmp_path / "rejects.jsonl"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "scored 49 rows" in result.stdout and "1 rows set aside" in result.stdout
    (rejected,) = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert rejected["row"] == 41 and "column 'spend' row 41" in rejected["reason"]
    assert pq.read_metadata(tmp_path / "out.parquet").metadata[b"modelswap.rejects"] == b"1"


def test_on_a_terminal_progress_shows_rows_rate_and_eta_and_the_summary_stays_one_line(
    nightly: tuple[Store, Path, str, Any], tmp_path: Path
) -> None:
    store, source, _, _ = nightly
    leader, follower = pty.openpty()  # stderr is a terminal, stdout a pipe: what `score ... | tee log` sees
    argv = [sys.executable, "-m", "modelswap", "--root", str(store.root), "score", "churn", str(source)]
    argv += ["-o", str(tmp_path / "out.parquet"), "--keep", "customer_id", "--chunk-rows", "50000"]
    with subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=follower, text=True) as proc:
        os.close(follower)
        shown = b""
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # the terminal closed: the job is done
                break
            if not data:
                break
            shown += data
        out = proc.stdout.read() if proc.stdout else ""
        assert proc.wait(timeout=120) == 0
    os.close(leader)
    lines = [line for line in shown.decode().split("\r") if line.strip()]
    assert len(lines) >= ROWS // 50_000  # one redraw per chunk
    assert re.fullmatch(r"300,000 rows  [\d,]+ rows/s  100%  ETA 0 s\s*", lines[-1].replace("\n", "")), lines[-1]
    assert re.match(r"[\d,]+ rows  [\d,]+ rows/s  \d+%  ETA [\d,]+ s", lines[0])
    assert out.count("\n") == 1 and out.startswith(f"scored {ROWS:,} rows")
