"""A real ``modelswap serve`` process: predict, rollback, auth, a corrupt live version, metrics."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from modelswap.core.store.layout import MODEL_FILE
from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, publish
from tests.server import serve, wait_for

PREDICT = {"instances": [IRIS_ROW]}


@pytest.fixture
def two_versions(iris_pair: tuple[Store, str, str]) -> tuple[Store, str, str]:
    """a deployed, then b: b live, a the rollback target."""
    store, a, b = iris_pair
    store.deploy("iris", b)
    return store, a, b


def test_predict_names_model_version_and_variant_in_body_and_headers(two_versions: tuple[Store, str, str]) -> None:
    store, a, b = two_versions
    with serve(store.root) as server, server.client() as client:
        r = client.post("/v1/models/iris/predict", json={"instances": [IRIS_ROW, IRIS_ROW]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["model"], body["version"], body["variant"]) == ("iris", b, "stable")
        assert body["predictions"] == [1, 1]
        assert (r.headers["x-model-version"], r.headers["x-model-variant"]) == (b, "stable")
        proba = client.post("/predict", json={"instances": [IRIS_ROW], "method": "predict_proba"}).json()
        assert len(proba["predictions"][0]) == 3 and abs(sum(proba["predictions"][0]) - 1) < 1e-6
        pinned = client.post(f"/v1/models/iris/versions/{a}/predict", json=PREDICT)
        assert pinned.status_code == 200 and pinned.json()["version"] == a


def test_rollback_with_empty_body_serves_the_previous_version_at_once(two_versions: tuple[Store, str, str]) -> None:
    store, a, b = two_versions
    with serve(store.root) as server, server.client() as anon, server.admin() as admin:
        with server.client("wrong-token") as wrong:
            for client in (anon, wrong):
                denied = client.post("/v1/models/iris/rollback")
                assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
        assert store.current("iris") == b
        r = admin.post("/v1/models/iris/rollback")
        assert r.status_code == 200, r.text
        assert r.json() == {"model": "iris", "action": "rollback", "previous": b, "current": a}
        # the call returns only after this process serves it: no waiting needed
        assert anon.post("/v1/models/iris/predict", json=PREDICT).json()["version"] == a
        assert store.current("iris") == a and store.registry("iris").status_of(b) == "rolled_back"
        nothing = admin.post("/v1/models/iris/rollback")
        assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "nothing_to_roll_back"
        deployed = admin.post("/v1/models/iris/deploy", json={"version": b, "reason": "fixed"})
        assert deployed.status_code == 200 and deployed.json()["current"] == b
        assert anon.post("/v1/models/iris/predict", json=PREDICT).json()["version"] == b
        history = anon.get("/v1/models/iris/history").json()["history"]
        assert [h["action"] for h in history[:2]] == ["deploy", "rollback"] and history[0]["reason"] == "fixed"


def test_a_corrupt_version_made_live_by_hand_keeps_the_old_one_serving(
    two_versions: tuple[Store, str, str], iris_a: Any
) -> None:
    store, a, b = two_versions
    bad = publish(store, iris_a)
    model_file = store.paths("iris").version_dir(bad) / MODEL_FILE
    model_file.write_bytes(b"\x80garbage" + model_file.read_bytes()[8:])
    with serve(store.root, env={"MODELSWAP_POLL_INTERVAL": "0.2"}) as server, server.client() as client:
        link = store.paths("iris").current
        os.unlink(link)
        os.symlink(f"versions/{bad}", link)  # flipped outside modelswap
        info = wait_for(lambda: client.get("/v1/models/iris").json()["this_process"]["last_load_error"])
        assert info and info["version"] == bad and "corrupt" in info["message"]
        r = client.post("/v1/models/iris/predict", json=PREDICT)
        assert r.status_code == 200 and r.json()["version"] == b
        metrics = client.get("/metrics").text
        assert 'modelswap_model_loads_total{model="iris",outcome="failure"}' in metrics
        assert f'modelswap_serving_version_info{{model="iris",variant="stable",version="{b}"}} 1.0' in metrics
        # fixing the link is a change: it loads and serves again, error cleared
        os.unlink(link)
        os.symlink(f"versions/{a}", link)
        assert wait_for(lambda: client.post("/v1/models/iris/predict", json=PREDICT).json()["version"] == a)
        assert client.get("/v1/models/iris").json()["this_process"]["last_load_error"] is None


def test_deploying_a_corrupt_version_through_the_api_is_refused_with_422(
    two_versions: tuple[Store, str, str], iris_a: Any
) -> None:
    store, a, b = two_versions
    bad = publish(store, iris_a)
    (store.paths("iris").version_dir(bad) / MODEL_FILE).write_bytes(b"rot")
    with serve(store.root) as server, server.admin() as admin:
        r = admin.post("/v1/models/iris/deploy", json={"version": bad})
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_failed"
        assert store.current("iris") == b
        assert admin.post("/v1/models/iris/predict", json=PREDICT).json()["version"] == b


def test_reads_and_operations_endpoints(two_versions: tuple[Store, str, str]) -> None:
    store, a, b = two_versions
    with serve(store.root) as server, server.client() as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").json() == {"ready": True, "models": {"iris": b}}
        models = client.get("/v1/models").json()["models"]
        assert models == [{"model": "iris", "current": b, "canary": None, "previous": a, "versions": 2}]
        model = client.get("/v1/models/iris").json()
        assert model["this_process"]["serving"] == b and model["previous"] == a
        versions = client.get("/v1/models/iris/versions").json()["versions"]
        assert [v["id"] for v in versions] == [b, a] and versions[0]["live"] == ["current"]
        detail = client.get(f"/v1/models/iris/versions/{a}").json()
        assert detail["manifest"]["n_features_in"] == 4 and detail["metrics"] == {"accuracy": 0.9}
        fleet = wait_for(lambda: client.get("/v1/models/iris/fleet").json()["converged"])
        assert fleet
        processes = client.get("/v1/models/iris/fleet").json()["processes"]
        assert len(processes) == 1 and processes[0]["version"] == b
        spec = client.get("/openapi.json").json()
        assert "/v1/models/{model}/rollback" in spec["paths"]


def test_a_model_never_deployed_keeps_no_server_unready(tmp_path: Path, iris_a: Any) -> None:
    store = Store(tmp_path / "models")
    publish(store, iris_a)  # published, never deployed: nothing to wait for
    with serve(store.root, ready=False) as server, server.client() as client:
        r = client.get("/readyz")
        assert r.status_code == 200 and r.json() == {"ready": True, "models": {"iris": None}}
        p = client.post("/v1/models/iris/predict", json=PREDICT)
        assert p.status_code == 503 and p.json()["error"]["code"] == "not_ready"


def test_readyz_is_503_while_a_deployed_model_cannot_load(tmp_path: Path, iris_a: Any) -> None:
    store = Store(tmp_path / "models")
    store.deploy("iris", publish(store, iris_a))
    (store.paths("iris").version_dir(store.current("iris") or "") / "model.joblib").write_bytes(b"rot")
    with serve(store.root, ready=False) as server, server.client() as client:
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["waiting_for"] == ["iris"]


def test_json_log_format_names_model_version_and_variant(two_versions: tuple[Store, str, str]) -> None:
    store, a, b = two_versions
    env = {"MODELSWAP_LOG_FORMAT": "json", "MODELSWAP_LOG_LEVEL": "debug"}
    with serve(store.root, env=env) as server, server.client() as client:
        client.post("/v1/models/iris/predict", json=PREDICT)
        line = wait_for(lambda: next((ln for ln in server.output().splitlines() if "predict model=" in ln), None))
        import json

        record = json.loads(line)
        assert record["logger"] == "modelswap.predict"
        assert f"model=iris version={b} variant=stable" in record["message"]
