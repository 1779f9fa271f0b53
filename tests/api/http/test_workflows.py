"""ML engineers' loop over HTTP: upload, retrain jobs, gc, and the CLI through --url."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import joblib
import pytest

from modelswap.api.client import Client, RemoteError
from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, ROOT, StepClock, publish
from tests.core.store.test_store import tree
from tests.server import TOKEN, serve, wait_for


@pytest.fixture
def store(tmp_path: Path, iris_a: Any) -> Store:
    st = Store(tmp_path / "models", clock=StepClock())
    st.deploy("iris", publish(st, iris_a))
    return st


def kept(store: Store) -> dict[str, bytes | str]:
    """What an upload may add to: versions/ and the registry (not the fleet's heartbeats)."""
    return tree(store.root / "iris" / "versions") | {"registry": store.paths("iris").registry.read_bytes()}


def test_upload_publishes_201_and_refuses_bad_files_with_422_leaving_nothing(
    store: Store, iris_file: Path, tmp_path: Path
) -> None:
    with serve(store.root, env={"MODELSWAP_ALLOW_PICKLE_UPLOADS": "1"}) as server:
        client = Client(server.url, TOKEN)
        record = client.upload(
            "iris",
            iris_file,
            metrics={"accuracy": 0.99},
            tags={"owner": "ml"},
            description="hand-made",
            example=[IRIS_ROW],
        )
        assert record["metrics"] == {"accuracy": 0.99} and record["tags"] == {"owner": "ml"}
        assert record["id"] in store.registry("iris")
        manifest = store.manifest("iris", record["id"])
        assert manifest.input_example == (IRIS_ROW,)
        # probed by the validation child: a linear model takes no NaN, so no column is nullable
        assert manifest.signature is not None and not any(c.nullable for c in manifest.signature.columns)
        with pytest.raises(RemoteError) as denied:
            Client(server.url, None).upload("iris", iris_file)
        assert denied.value.status == 401
        before = kept(store)
        garbage = tmp_path / "garbage.joblib"
        garbage.write_bytes(b"\x80\x04 not a model")
        not_model = tmp_path / "dict.joblib"
        joblib.dump({"weights": [1, 2]}, not_model)
        for bad in (garbage, not_model):
            with pytest.raises(RemoteError) as refused:
                client.upload("iris", bad)
            assert refused.value.status == 422 and refused.value.code == "validation_failed"
        with pytest.raises(RemoteError) as words:
            client.upload("iris", iris_file, example=[["a", "b", "c", "d"]])
        assert words.value.status == 422 and "could not convert string to float" in str(words.value)
        assert kept(store) == before  # no staging leftovers, no new version
        with server.admin() as admin:
            assert admin.post("/v1/models/iris/versions", json={"x": 1}).status_code == 400
            junk = admin.post("/v1/models/iris/versions", files={"model": ("m.joblib", b"x" * 2000)})
            assert junk.status_code == 422  # under the size limit, so it is read and validated
    with serve(store.root, env={"MODELSWAP_MAX_UPLOAD_BYTES": "1000"}) as server, server.admin() as admin:
        r = admin.post("/v1/models/iris/versions", files={"model": ("m.joblib", iris_file.read_bytes())})
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def test_retrain_job_runs_to_a_new_version_visible_from_another_server(store: Store) -> None:
    with ExitStack() as stack:
        first = stack.enter_context(serve(store.root))
        second = stack.enter_context(serve(store.root))
        admin = stack.enter_context(first.admin())
        started = admin.post("/v1/models/iris/retrain", json={"estimator": "decision_tree", "deploy": True})
        assert started.status_code == 202, started.text
        job = started.json()["job"]
        again = admin.post("/v1/models/iris/retrain", json={})
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"

        def finished() -> Any:
            with second.admin() as reader:
                state = reader.get(f"/v1/jobs/{job}").json()
            return state if state["state"] in ("succeeded", "failed") else None

        state = wait_for(finished, 60)
        assert state and state["state"] == "succeeded", state
        result = state["result"]
        assert result["deployed"] and result["version"] in store.registry("iris")
        assert store.current("iris") == result["version"]
        assert any("progress: publishing" in line for line in state["log_tail"])
        assert admin.post("/v1/models/iris/retrain", json={"dataset": "csv:/etc/passwd"}).status_code == 400
        assert admin.get("/v1/jobs/..%2f..%2fetc").status_code == 404
        assert admin.get("/v1/jobs/nope").status_code == 400
        assert admin.get("/v1/jobs/20200101-000000-abcdef").status_code == 404


def cli(root: Path, url: str, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELSWAP_URL": url}
    env.pop("MODELSWAP_ADMIN_TOKEN", None)
    if token:
        env["MODELSWAP_ADMIN_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "modelswap", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_cli_through_url_deploys_rolls_back_and_runs_a_canary(store: Store, iris_b: Any, tmp_path: Path) -> None:
    a = store.current("iris")
    b = publish(store, iris_b, metrics={"accuracy": 0.95})
    with serve(store.root) as server, server.client() as client:
        out = cli(store.root, server.url, "deploy", "iris", b, "--reason", "remote")
        assert out.returncode == 0, out.stderr
        assert f"-> {b}" in out.stdout
        assert client.post("/v1/models/iris/predict", json={"instances": [IRIS_ROW]}).json()["version"] == b
        status = json.loads(cli(store.root, server.url, "status", "iris", "--json").stdout)
        assert status["this_process"]["serving"] == b and status["previous"] == a
        assert wait_for(lambda: "1/1 processes on" in cli(store.root, server.url, "status", "iris").stdout, 5)
        back = cli(store.root, server.url, "rollback", "iris")
        assert back.returncode == 0 and f"{b} -> {a}" in back.stdout
        assert client.post("/v1/models/iris/predict", json={"instances": [IRIS_ROW]}).json()["version"] == a
        denied = cli(store.root, server.url, "rollback", "iris", token="wrong")
        assert denied.returncode == 1 and "wrong token" in denied.stderr and "Traceback" not in denied.stderr
        assert cli(store.root, server.url, "canary", "start", "iris", b, "--fraction", "0.3").returncode == 0
        assert "on 30%" in cli(store.root, server.url, "canary", "status", "iris").stdout
        assert cli(store.root, server.url, "canary", "promote", "iris").returncode == 0
        assert store.current("iris") == b
        versions = json.loads(cli(store.root, server.url, "versions", "iris", "--sort", "accuracy", "--json").stdout)
        assert versions[0]["metrics"]["accuracy"] == 0.95
        best = cli(store.root, server.url, "best", "iris", "--metric", "accuracy")
        assert best.stdout.startswith(b)
        history = json.loads(cli(store.root, server.url, "history", "iris", "--json").stdout)
        assert history[0]["action"] == "canary_promote" and history[0]["actor"] == "token:admin"
        assert cli(store.root, server.url, "verify").returncode == 1
    gone = cli(store.root, "http://127.0.0.1:9", "status", "iris")
    assert gone.returncode == 1 and "cannot reach" in gone.stderr


def test_the_cli_through_url_runs_delivery_thresholds_and_delete_as_on_the_store(store: Store, iris_b: Any) -> None:
    a = store.current("iris")
    b, spare = publish(store, iris_b), publish(store, iris_b)
    with serve(store.root) as server:

        def ok(*args: str) -> Any:
            out = cli(store.root, server.url, *args, "--json")
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout)

        started = ok("shadow", "start", "iris", b, "--fraction", "0.5")
        assert (started["version"], started["fraction"], started["live"]) == (b, 0.5, a)
        stopped = ok("shadow", "stop", "iris", "--reason", "seen enough")
        assert (stopped["running"], stopped["stopped"]) == (False, b)
        rollout = ok("rollout", "start", "iris", b, "--steps", "10,100")
        assert (rollout["state"], rollout["step_percent"]) == ("running", 10)
        assert ok("rollout", "pause", "iris")["state"] == "paused"
        assert ok("rollout", "resume", "iris")["state"] == "running"
        assert ok("rollout", "abort", "iris", "--reason", "not today")["state"] == "aborted"
        assert ok("deploy", "iris", b, "--watch", "600")["watch"]["watch"] == 600
        assert ok("watch", "reset", "iris")["state"] == "reset"
        assert ok("monitor", "iris", "--set", "psi_warning=0.4")["psi_warning"] == 0.4
        assert ok("monitor", "iris", "--config")["psi_warning"] == 0.4
        refused = cli(store.root, server.url, "delete", "iris", b)
        assert refused.returncode == 1 and "protected (live)" in refused.stderr
        assert ok("delete", "iris", spare) == {"model": "iris", "deleted": spare}
        actions = [(e["action"], e["actor"].split(":")[0]) for e in ok("history", "iris")]
        with server.client() as client:
            metrics = client.get("/metrics").text
    assert [action for action, actor in actions if actor == "token"] == [
        "delete", "watch_reset", "deploy", "rollout_abort", "rollout_resume", "rollout_pause", "rollout_start",
        "shadow_stop", "shadow_start",
    ]  # fmt: skip
    assert spare not in store.registry("iris") and store.paths("iris").monitor_config.is_file()
    assert 'modelswap_admin_actions_total{action="set_monitor_config",model="iris",outcome="success"} 1.0' in metrics
