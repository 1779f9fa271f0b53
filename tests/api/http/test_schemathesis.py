"""Schemathesis against a live server: every operation of /openapi.json, generated inputs
(valid and invalid), the admin token, the model pinned to a real one. No input may
get a 5xx, and every response must be what the document says (status code, content
type, body schema, and a 405's Allow header)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from modelswap.api.http.openapi import OPENAPI
from modelswap.core.store.processes import alive
from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW
from tests.server import TOKEN, serve

# Bounded: a few examples per operation and phase keeps the run near 30 s on two cores.
MAX_EXAMPLES = 20
SEED = 20261123
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "unsupported_method",
    "allow_header_conformance",
)
METHODS = ("get", "put", "post", "delete", "patch")


def config(live: str) -> str:
    """The admin token on every request; the model is iris, versions are the live one (which
    every destructive route must refuse to delete) so the routes reach the store."""
    return "\n".join(
        [
            f'headers = {{ Authorization = "Bearer {TOKEN}" }}',
            "[parameters]",
            '"path.model" = "iris"',
            f'"path.version" = "{live}"',
            "",
        ]
    )


def stop_jobs(root: Path) -> None:
    """Retrain jobs the run started run in their own sessions: let them finish, else end them."""
    jobs = [json.loads(p.read_text()) for p in (root / ".jobs").glob("*.json")] if (root / ".jobs").is_dir() else []
    pids = [job["pid"] for job in jobs if isinstance(job.get("pid"), int)]
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_no_input_gets_a_5xx_and_every_response_matches_the_document(
    iris_pair: tuple[Store, str, str], tmp_path: Path
) -> None:
    store, a, b = iris_pair
    settings = tmp_path / "schemathesis.toml"
    settings.write_text(config(a))
    report = tmp_path / "report.json"
    operations = sum(1 for item in OPENAPI["paths"].values() for method in item if method in METHODS)
    with serve(store.root) as server:
        try:
            run = subprocess.run(
                [
                    sys.executable, "-m", "schemathesis.cli", "--config-file", str(settings),
                    "run", f"{server.url}/openapi.json",
                    "--checks", ",".join(CHECKS),
                    "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
                    "--workers", "1", "--no-color", "--generation-database", "none",
                    "--request-timeout", "30", "--max-failures", "20",
                    "--report", "json", "--report-json-path", str(report),
                ],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=180,
            )  # fmt: skip
        finally:
            stop_jobs(store.root)
        data: dict[str, Any] = json.loads(report.read_text())
        shown = run.stdout[-6000:] + run.stderr[-2000:]
        assert data["complete"] and data["operations"]["tested"] == data["operations"]["total"] == operations, shown
        assert data["test_cases"]["generated"] >= operations * MAX_EXAMPLES, shown
        assert data["failures"] == [] and data["errors"] == [], shown
        assert data["test_cases"]["with_failures"] == 0 and run.returncode == 0, shown
        # whatever the destructive routes did, the store still serves
        with server.client() as client:
            assert client.get("/healthz").status_code == 200
            answer = client.post("/v1/models/iris/predict", json={"instances": [IRIS_ROW]})
            assert answer.status_code == 200 and len(answer.json()["predictions"]) == 1, answer.text
    assert "unhandled error" not in server.output() and "Traceback" not in server.output()
