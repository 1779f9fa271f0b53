"""The delivery policy on real servers with real traffic: a version published by anyone
walks gate, shadow and rollout and is promoted, every stage in history; the walk survives
kill -9 of the process driving it; the policy routes refuse bad input naming the field;
Alertmanager's webhook ignores and counts what it does not act on."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from modelswap.core.access import tokens
from modelswap.core.delivery.driver import read_lease
from modelswap.core.store.store import Store
from tests.api.http.test_delivery import FAST, X_IRIS, Traffic
from tests.conftest import fit_iris
from tests.server import Server, serve, wait_for

POLICY = {
    "gate": {"metric": "accuracy", "max_drop": 0.02},
    "shadow": {"seconds": 1.0, "min_requests": 20, "min_agreement": 0.8},
    # the latency gate is judged in tests/core/delivery/test_driver.py (p99 on a shared machine is noise)
    "rollout": {"steps": [50, 100], "step_seconds": 1.0, "min_requests": 10, "gates": {"max_latency_ratio": None}},
}


def publish(store: Store, estimator: Any, accuracy: float) -> str:
    return store.publish("iris", estimator, example=X_IRIS[:3], reference=X_IRIS, metrics={"accuracy": accuracy}).id


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "models")


def candidate(server: Server) -> dict[str, Any]:
    view: dict[str, Any] = server.get_json("/v1/models/iris/policy")
    return dict(view["candidate"] or {})


def ended(server: Server, version: str, timeout: float = 90) -> dict[str, Any]:
    done = wait_for(lambda: (c := candidate(server)).get("version") == version and c["state"] != "running" and c,
                    timeout=timeout, interval=0.2)  # fmt: skip
    assert done, candidate(server)
    return dict(done)


def test_a_published_version_is_gated_shadowed_rolled_out_and_promoted_with_every_stage_in_history(
    store: Store,
) -> None:
    a = publish(store, fit_iris(), 0.96)
    store.deploy("iris", a)
    with serve(store.root, env=FAST) as server:
        with server.admin() as admin:
            bad = admin.put("/v1/models/iris/policy", json={**POLICY, "shadow": {"min_agreement": 2}})
            assert bad.status_code == 400 and "shadow.min_agreement" in bad.json()["error"]["message"]
            assert server.get_json("/v1/models/iris/policy")["policy"] is None  # the refused write changed nothing
            put = admin.put("/v1/models/iris/policy", json={**POLICY, "reason": "retrains go through gates"})
            assert put.status_code == 200, put.text
            assert put.json()["policy"]["shadow"]["min_requests"] == 20
        with server.client() as anonymous:
            assert anonymous.put("/v1/models/iris/policy", json=POLICY).status_code == 401
        with Traffic(server):
            b = publish(store, fit_iris(C=0.9), 0.95)  # anyone publishes: here the test, on the volume
            final = ended(server, b)
        history = server.get_json("/v1/models/iris/history")["history"]
    assert final["state"] == "promoted", final
    assert [(s["stage"], s["verdict"]) for s in final["stages"]] == [("gate", "pass"), ("shadow", "pass"),
                                                                      ("rollout", "pass")]  # fmt: skip
    shadow_figures = final["stages"][1]["figures"]
    assert shadow_figures["requests"] >= 20 and shadow_figures["agreement"] >= 0.8
    assert store.current("iris") == b and store.canary("iris") is None
    chain = [(e["action"], e["actor"]) for e in reversed(history) if e["actor"] in ("policy", "rollout")]
    assert chain[:6] == [("policy_stage", "policy"), ("policy_pass", "policy"), ("policy_stage", "policy"),
                         ("shadow_start", "policy"), ("shadow_stop", "policy"), ("policy_pass", "policy")]  # fmt: skip
    assert ("rollout_start", "policy") in chain and ("canary_promote", "rollout") in chain
    assert chain[-1] == ("policy_pass", "policy")
    assert [e["action"] for e in history[-2:]] == ["policy_set", "deploy"]  # newest first: set after the deploy
    assert history[-2]["reason"] == "retrains go through gates" and history[-2]["actor"] == "token:admin"


def test_killing_the_process_driving_a_candidate_mid_shadow_a_second_server_finishes_its_walk(store: Store) -> None:
    a = publish(store, fit_iris(), 0.96)
    store.deploy("iris", a)
    policy = {**POLICY, "shadow": {"seconds": 3.0, "min_requests": 20, "min_agreement": 0.8}}
    with serve(store.root, env=FAST) as one, serve(store.root, env=FAST) as two:
        with one.admin() as admin:
            assert admin.put("/v1/models/iris/policy", json=policy).status_code == 200
        with Traffic(one), Traffic(two):
            b = publish(store, fit_iris(C=0.9), 0.95)
            shadowing = wait_for(lambda: candidate(one).get("stage") == "shadow", timeout=30)
            assert shadowing, candidate(one)
            lease = read_lease(store.paths("iris"))
            assert lease is not None
            holder = lease["holder"]
            pids = {int(s.get_json("/v1/models/iris")["this_process"]["process"].rsplit("-", 1)[1]): s
                    for s in (one, two)}  # fmt: skip
            survivor = next(s for pid, s in pids.items() if pid != int(holder.rsplit("-", 1)[1]))
            os.kill(int(holder.rsplit("-", 1)[1]), signal.SIGKILL)
            taken = wait_for(lambda: (read_lease(store.paths("iris")) or {}).get("holder") not in (None, holder), 30)
            assert taken
            final = ended(survivor, b)
    assert final["state"] == "promoted", final
    assert [s["stage"] for s in final["stages"]] == ["gate", "shadow", "rollout"]
    assert store.current("iris") == b


def alert(name: str, model: str | None, status: str = "firing", severity: str = "ticket") -> dict[str, Any]:
    labels = {"alertname": name, "severity": severity, **({"model": model} if model else {})}
    return {"status": status, "labels": labels, "annotations": {"summary": "drifted (PSI 1.2)"},
            "startsAt": "2026-12-06T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "abc"}  # fmt: skip


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "receiver": "modelswap", "groupKey": "{}", "alerts": list(alerts)}


def test_alertmanager_webhook_needs_a_deploy_token_refuses_bad_payloads_and_counts_what_it_ignores(
    store: Store, tmp_path: Path
) -> None:
    a = publish(store, fit_iris(), 0.96)
    store.deploy("iris", a)
    file = tmp_path / "tokens.json"
    deployer, _ = tokens.create(file, "alertmanager", "deploy")
    reader, _ = tokens.create(file, "dashboards", "read")
    with serve(store.root, env={**FAST, "MODELSWAP_TOKENS_FILE": str(file)}) as server:
        with server.client(reader) as client:
            assert client.post("/v1/alertmanager", json=payload()).status_code == 403
        with server.client() as client:
            assert client.post("/v1/alertmanager", json=payload()).status_code == 401
        with server.client(deployer) as client:
            old = client.post("/v1/alertmanager", json={**payload(), "version": "3"})
            assert old.status_code == 400 and old.json()["error"]["message"].startswith("version:")
            bad = client.post("/v1/alertmanager", json=payload({**alert("X", "iris"), "status": "pending"}))
            assert bad.status_code == 400 and "alerts[0].status" in bad.json()["error"]["message"]
            sent = payload(
                alert("ModelswapFeatureDrift", "iris", status="resolved"),
                alert("ModelswapFeatureDrift", "nosuchmodel"),
                alert("ModelswapFeatureDrift", None),
                alert("ModelswapFeatureDrift", "iris"),  # iris has no policy: no rule
            )
            answer = client.post("/v1/alertmanager", json=sent)
            assert answer.status_code == 200, answer.text
        with server.client() as client:
            metrics = client.get("/metrics").text
    outcomes = [r["outcome"] for r in answer.json()["alerts"]]
    assert outcomes == ["resolved", "unknown_model", "no_model_label", "no_rule"] and answer.json()["retrains"] == 0
    for outcome in ("resolved", "unknown_model", "no_model_label", "no_rule"):
        assert f'modelswap_alertmanager_alerts_total{{outcome="{outcome}"}} 1.0' in metrics
    assert not (store.root / ".jobs").exists()  # nothing started
