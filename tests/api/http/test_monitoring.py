"""Monitoring on real servers: drift against each version's reference, counts merged across
workers and servers, feedback and live quality, the error-rate alert after a breaking
deploy, HTTP metrics, and the prediction log."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelswap.core.store.store import Store
from tests.server import Server, serve, wait_for

FAST = {
    "MODELSWAP_MONITOR_WINDOW": "30",  # buckets of 6 s: every test's traffic lands in one window
    "MODELSWAP_MONITOR_FLUSH": "0.1",
    "MODELSWAP_POLL_INTERVAL": "0.1",
}
NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris_frame() -> tuple[pd.DataFrame, np.ndarray]:
    data = load_iris()
    return pd.DataFrame(data.data, columns=NAMES), data.target


def publish_iris(store: Store, model: str, *, accuracy: float = 0.95) -> str:
    frame, target = iris_frame()
    estimator = LogisticRegression(max_iter=1000).fit(frame, target)
    version = store.publish(model, estimator, example=frame.head(3), reference=frame, metrics={"accuracy": accuracy})
    store.deploy(model, version.id)
    return version.id


def send(server: Server, model: str, rows: np.ndarray, *, per_request: int = 25, fresh: bool = False) -> list[str]:
    """POST the rows as records, ``per_request`` at a time; the request ids the server gave.
    ``fresh``: each request on a new connection (spread over a server's workers)."""
    ids = []
    client = server.client()
    try:
        for start in range(0, len(rows), per_request):
            chunk = rows[start : start + per_request]
            records = [dict(zip(NAMES, map(float, row), strict=True)) for row in chunk]
            if fresh:
                client.close()
                client = server.client()
            response = client.post(f"/v1/models/{model}/predict", json={"instances": records})
            assert response.status_code == 200, response.text
            ids.append(response.headers["x-request-id"])
    finally:
        client.close()
    return ids


def monitor(server: Server, model: str, *, requests: int) -> dict[str, Any]:
    """The monitoring view once the fleet's counts hold ``requests`` requests."""

    def counted() -> dict[str, Any] | None:
        view: dict[str, Any] = server.get_json(f"/v1/models/{model}/monitor")
        total = sum(row["window"]["requests"] for row in view["versions"])
        return view if total >= requests else None

    view = wait_for(counted, timeout=15)
    assert view, server.get_json(f"/v1/models/{model}/monitor")
    return view


def metrics_text(server: Server) -> str:
    with server.client() as client:
        return client.get("/metrics").text


def drift_by_feature(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["feature"]: d for d in view["versions"][0]["window"]["drift"]["features"]}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Store]]:
    store = Store(tmp_path_factory.mktemp("monitoring") / "models")
    for model in ("calm", "shifted", "few", "labelled"):
        publish_iris(store, model)
    with serve(store.root, env=FAST) as server:
        yield server, store


def test_traffic_like_the_reference_shows_no_drift(running: tuple[Server, Store]) -> None:
    server, _ = running
    frame, _ = iris_frame()
    rows = frame.to_numpy()[np.random.default_rng(1).integers(0, len(frame), 600)]
    send(server, "calm", rows)
    view = monitor(server, "calm", requests=24)
    window = view["versions"][0]["window"]
    assert window["rows"] == 600 and window["error_rate"] == 0
    drifts = drift_by_feature(view)
    assert set(drifts) == set(NAMES)
    assert all(d["severity"] == "none" and d["psi"] < 0.1 for d in drifts.values()), drifts
    assert window["drift"]["prediction"]["severity"] == "none"
    assert window["drift"]["dataset"]["severity"] == "none"
    assert not [a for a in view["alerts"] if a["kind"].endswith("drift")]


def test_one_shifted_feature_drifts_alone_and_moves_the_predictions(running: tuple[Server, Store]) -> None:
    server, _ = running
    frame, _ = iris_frame()
    rows = frame.to_numpy()[np.random.default_rng(2).integers(0, len(frame), 600)]
    rows[:, 2] += 3.0  # petal length: every flower looks like a virginica
    send(server, "shifted", rows)
    view = monitor(server, "shifted", requests=24)
    drifts = drift_by_feature(view)
    assert drifts["petal_length"]["severity"] == "warning" and drifts["petal_length"]["psi"] >= 0.25
    assert all(drifts[name]["severity"] == "none" for name in NAMES if name != "petal_length"), drifts
    prediction = view["versions"][0]["window"]["drift"]["prediction"]
    assert prediction["severity"] == "warning", prediction
    # the distributions side by side, as the console draws them: the shifted rows left the reference's bins
    petal = drifts["petal_length"]["histogram"]
    assert petal["kind"] == "numeric" and len(petal["reference"]) == len(petal["observed"]) == len(petal["edges"]) + 2
    assert sum(petal["observed"]) == 600 and petal["observed"][-2] > 300 and petal["reference"][-2] < 0.15
    assert prediction["histogram"]["kind"] == "classes" and sum(prediction["histogram"]["observed"]) == 600
    series = view["versions"][0]["series"]
    assert len(series) == 5 and sum(p["requests"] for p in series) == 24  # the window's five buckets
    alerts = {(a["kind"], a["feature"]): a for a in view["alerts"]}
    alert = alerts[("feature_drift", "petal_length")]
    assert alert["severity"] == "WARNING" and "petal_length" in alert["message"] and "shifted" in alert["message"]
    assert alert["version"] == view["live"] and alert["first_seen"] <= alert["last_seen"]
    assert alerts[("prediction_drift", "prediction")]["severity"] == "WARNING"
    assert not [k for k in alerts if k[0] == "feature_drift" and k[1] not in ("petal_length", "*")]
    metrics = metrics_text(server)
    psi = re.search(
        r'modelswap_feature_drift\{feature="petal_length",method="psi",model="shifted",variant="stable",'
        r'version="[^"]+"\} ([0-9.e+-]+)',
        metrics,
    )
    assert psi and float(psi.group(1)) >= 0.25, metrics[-3000:]
    assert re.search(r'modelswap_alerts\{kind="feature_drift",model="shifted",severity="WARNING"\} 1', metrics)


def test_under_min_samples_there_is_no_verdict(running: tuple[Server, Store]) -> None:
    server, _ = running
    frame, _ = iris_frame()
    rows = frame.to_numpy()[:50].copy()
    rows[:, 0] += 5  # shifted far, but too few rows to judge
    send(server, "few", rows)
    view = monitor(server, "few", requests=2)
    drifts = drift_by_feature(view)
    assert all(d["severity"] == "insufficient_data" and d["samples"] == 50 for d in drifts.values()), drifts
    assert not [a for a in view["alerts"] if a["kind"] == "feature_drift"]


def test_wrong_labels_raise_a_performance_alert(running: tuple[Server, Store]) -> None:
    server, _ = running
    frame, target = iris_frame()
    ids = send(server, "labelled", frame.to_numpy()[:60], per_request=1)
    predicted = LogisticRegression(max_iter=1000).fit(frame, target).predict(frame.head(60)).tolist()
    wrong = {rid: (label + 1) % 3 for rid, label in zip(ids, predicted, strict=True)}
    with server.client() as client:
        answer = client.post("/v1/models/labelled/feedback", json={"feedback": [
            {"request_id": rid, "label": label} for rid, label in wrong.items()
        ] + [{"request_id": "never-seen", "label": 1}]}).json()  # fmt: skip
        assert answer["matched"] == 60 and answer["unmatched"] == ["never-seen"]
        again = client.post("/v1/models/labelled/feedback", json={"request_id": ids[0], "label": 0}).json()
        assert again["duplicates"] == [ids[0]] and again["matched"] == 0
        bad = client.post("/v1/models/labelled/feedback", json={"request_id": ids[1]})
        assert bad.status_code == 400 and "label" in bad.json()["error"]["message"]
    view = monitor(server, "labelled", requests=60)
    quality = view["versions"][0]["window"]["quality"]
    assert quality == {"metric": "accuracy", "value": 0.0, "labelled": 60, "published": 0.95}
    [alert] = [a for a in view["alerts"] if a["kind"] == "performance"]
    assert alert["severity"] == "CRITICAL" and "accuracy 0.000 on 60" in alert["message"]


def test_counts_of_two_workers_and_two_servers_merge(tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    publish_iris(store, "iris")
    frame, _ = iris_frame()
    rows = frame.to_numpy()
    with serve(store.root, env=FAST, workers=2) as a, serve(store.root, env=FAST) as b:
        sent = send(a, "iris", rows[:100], per_request=1, fresh=True) + send(b, "iris", rows[100:], per_request=1)
        view = monitor(b, "iris", requests=150)
        window = view["versions"][0]["window"]
        assert window["requests"] == 150 and window["rows"] == 150
        assert view["processes"] == 3  # two workers of one server, one of the other
        counted = sum(d["samples"] for d in window["drift"]["features"])
        assert counted == 4 * 150
        # feedback reaches a prediction another process answered: found in the shared log
        with b.client() as client:
            shared = client.post("/v1/models/iris/feedback", json={"request_id": sent[0], "label": 0}).json()
        assert shared["matched"] == 1, shared


def test_a_breaking_deploy_shows_in_http_metrics_and_raises_the_error_rate_alert(tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    frame, target = iris_frame()
    publish_iris(store, "iris")
    renamed = frame.rename(columns={"petal_width": "petal_w"})
    breaking = store.publish("iris", LogisticRegression(max_iter=1000).fit(renamed, target), example=renamed.head(3))
    with serve(store.root, env=FAST) as server:
        send(server, "iris", frame.to_numpy()[:60], per_request=1)  # the old version's baseline: no errors
        with server.admin() as admin:
            assert admin.post("/v1/models/iris/deploy", json={"version": breaking.id, "force": True}).status_code == 200
        wait_for(lambda: server.get_json("/v1/models/iris")["this_process"]["serving"] == breaking.id)
        with server.client() as client:
            for row in frame.to_numpy()[:60]:
                response = client.post(
                    "/v1/models/iris/predict", json={"instances": [dict(zip(NAMES, row, strict=False))]}
                )
                assert response.status_code == 400 and "petal_w" in response.json()["error"]["message"]
        metrics = metrics_text(server)
        line = re.search(
            r'modelswap_http_requests_total\{method="POST",route="/v1/models/\{model\}/predict",status="400"\} (\S+)',
            metrics,
        )
        assert line and float(line.group(1)) == 60
        assert re.search(r'modelswap_http_requests_total\{method="POST",route="/v1/models/\{model\}/predict",'
                         r'status="200"\} 60', metrics)  # fmt: skip
        assert "process_resident_memory_bytes" in metrics and "/v1/models/iris" not in metrics
        view = wait_for(
            lambda: [a for a in server.get_json("/v1/models/iris/monitor")["alerts"] if a["kind"] == "error_rate"]
        )
        assert view and view[0]["severity"] == "CRITICAL" and view[0]["version"] == breaking.id, view
        assert "100.0%" in view[0]["message"] and "baseline 0.0%" in view[0]["message"]
        [row] = [r for r in server.get_json("/v1/models/iris/monitor")["versions"] if r["version"] == breaking.id]
        # refused as the clients' (their columns no longer fit): none of it is the model's failing
        assert (row["window"]["client_error_rate"], row["window"]["server_error_rate"]) == (1.0, 0.0)


def test_the_prediction_log_holds_exactly_the_requests_and_rotates(tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    version = publish_iris(store, "iris")
    log_dir = tmp_path / "log"
    env = {**FAST, "MODELSWAP_PREDICTION_LOG": str(log_dir), "MODELSWAP_PREDICTION_LOG_MAX_BYTES": "4096",
           "MODELSWAP_PREDICTION_LOG_FILES": "3"}  # fmt: skip
    frame, _ = iris_frame()
    with serve(store.root, env=env) as server:
        mine = [f"req-{i}" for i in range(30)]
        with server.client() as client:
            for rid, row in zip(mine, frame.to_numpy(), strict=False):
                response = client.post("/v1/models/iris/predict", json={"instances": [list(row)]},
                                       headers={"X-Request-Id": rid})  # fmt: skip
                assert response.headers["x-request-id"] == rid

        def lines() -> list[dict[str, Any]]:
            import json

            return [
                json.loads(line) for p in sorted(log_dir.glob("predictions-*")) for line in p.read_text().splitlines()
            ]

        logged = wait_for(lambda: (got := lines()) and len(got) >= 30 and got)
        assert sorted(r["request_id"] for r in logged) == sorted(mine)
        assert {r["version"] for r in logged} == {version} and {r["variant"] for r in logged} == {"stable"}
        first = next(r for r in logged if r["request_id"] == "req-0")
        assert first["inputs"] == [list(frame.to_numpy()[0])] and first["outputs"] == [0] and first["latency_ms"] > 0
        assert len(list(log_dir.glob("predictions-*.jsonl.1"))) == 1  # 30 lines are over 4 KiB: rotated
        send(server, "iris", np.repeat(frame.to_numpy(), 3, axis=0), per_request=1)
        time.sleep(1.5)
        files = list(log_dir.glob("predictions-*"))
        assert len(files) == 3 and all(p.stat().st_size <= 4096 for p in files), files
