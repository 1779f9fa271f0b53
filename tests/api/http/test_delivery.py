"""Progressive delivery on real servers: stepped rollouts that promote, abort on a gate,
hold then abort on no traffic, and survive the death of the process driving them; the
shadow that never changes an answer; the watched deploy that rolls itself back."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier

from modelswap.core.store.store import Store
from tests.conftest import fit_iris
from tests.models_for_tests import RaisesAfterWarmup, SleepsOnNegative
from tests.server import Server, serve, wait_for

FAST = {
    "MODELSWAP_MONITOR_WINDOW": "5",  # buckets of 1 s: a step's window starts within a second of it
    "MODELSWAP_MONITOR_FLUSH": "0.1",
    "MODELSWAP_POLL_INTERVAL": "0.1",
    "MODELSWAP_LEASE_SECONDS": "2",
}
X_IRIS = load_iris().data
# The latency gate is judged in tests/core/delivery/test_driver.py: on a shared 2-core test machine a
# p99 over a few hundred requests is noise, and a healthy candidate must not fail on it here.
CALM = {"max_latency_ratio": None}


def publish(store: Store, estimator: Any, *, deploy: bool = False) -> str:
    version = store.publish("iris", estimator, example=X_IRIS[:3], reference=X_IRIS).id
    if deploy:
        store.deploy("iris", version)
    return version


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "models")


class Traffic:
    """Predict requests in a background thread until stopped: iris rows, a share of them
    with a negative first value (``bad``), random routing keys. Counts every answer."""

    def __init__(self, server: Server, *, bad: float = 0.0, rows: int = 1) -> None:
        self.server, self.bad, self.rows = server, bad, rows
        self.statuses: dict[int, int] = {}
        self.answers: list[tuple[list[list[float]], Any, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic")

    def _run(self) -> None:
        rng = random.Random(7)
        with self.server.client() as client:
            while not self._stop.is_set():
                picks = [list(map(float, X_IRIS[rng.randrange(len(X_IRIS))])) for _ in range(self.rows)]
                if rng.random() < self.bad:
                    picks[0][0] = -1.0
                try:
                    response = client.post(
                        "/v1/models/iris/predict",
                        json={"instances": picks},
                        headers={"X-Routing-Key": str(rng.getrandbits(32))},
                    )
                except httpx.TransportError:  # the server was killed (the takeover test)
                    self.statuses[0] = self.statuses.get(0, 0) + 1
                    time.sleep(0.05)
                    continue
                self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    self.answers.append((picks, response.json()["predictions"], response.headers["x-model-version"]))

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def metrics(server: Server) -> str:
    with server.client() as client:
        return client.get("/metrics").text


def actions(server: Server) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = server.get_json("/v1/models/iris/history")["history"]
    return history


def rollout_ended(server: Server, timeout: float = 60) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        state: dict[str, Any] = server.get_json("/v1/models/iris/rollout")
        return state if state["state"] in ("promoted", "aborted") else None

    state = wait_for(ended, timeout=timeout, interval=0.2)
    assert state, server.get_json("/v1/models/iris/rollout")
    return dict(state)


def start_rollout(server: Server, version: str, **plan: Any) -> dict[str, Any]:
    plan.setdefault("gates", CALM)
    with server.admin() as admin:
        response = admin.post("/v1/models/iris/rollout", json={"version": version, **plan})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_healthy_candidate_walks_every_step_and_is_promoted(store: Store) -> None:
    a = publish(store, fit_iris(C=1.0), deploy=True)
    b = publish(store, fit_iris(C=0.9))
    with serve(store.root, env=FAST) as server:
        with Traffic(server):
            started = start_rollout(server, b, steps=[20, 60, 100], step_seconds=0.5, min_requests=20)
            assert (started["state"], started["step_percent"], started["running"]) == ("running", 20, True)
            seen = wait_for(lambda: 'modelswap_rollout_step{model="iris"} 20.0' in metrics(server))
            assert seen
            final = rollout_ended(server)
        assert final["state"] == "promoted", final.get("ended")
        text = metrics(server)
        assert 'modelswap_admin_actions_total{action="rollout_step",model="iris",outcome="success"} 2.0' in text
        assert 'modelswap_admin_actions_total{action="rollout_promote",model="iris",outcome="success"} 1.0' in text
        status = server.get_json("/v1/models/iris")
        assert (status["current"], status["canary"]) == (b, None)
        # A step that has not yet seen min_requests canary answers holds (journaled as rollout_hold)
        # and is judged again: on a loaded machine the traffic thread may be slow. What must hold
        # is the order of what the rollout did.
        entries = [(e["action"], e["actor"]) for e in reversed(actions(server)) if e["action"] != "rollout_hold"]
        start = entries.index(("rollout_start", "token:admin"))
        assert entries[start + 1 :][:3] == [("rollout_step", "rollout"), ("rollout_step", "rollout"),
                                             ("canary_promote", "rollout")]  # fmt: skip
        promote = actions(server)[0]
        assert promote["from"] == a and promote["to"] == b
        assert promote["details"]["judgement"]["verdict"] == "pass"
        assert {g["gate"] for g in promote["details"]["judgement"]["gates"]} >= {"max_error_increase", "max_psi"}


def test_a_candidate_that_fails_on_part_of_the_input_is_aborted_at_its_first_step(store: Store) -> None:
    a = publish(store, fit_iris(), deploy=True)
    bad = publish(store, RaisesAfterWarmup())
    with serve(store.root, env=FAST) as server:
        with Traffic(server, bad=0.3) as traffic:
            start_rollout(server, bad, steps=[25, 100], step_seconds=0.5, min_requests=20)
            final = rollout_ended(server)
        abort = next(e for e in actions(server) if e["action"] == "rollout_abort")
    assert final["state"] == "aborted"
    assert "max_error_increase" in final["ended"] and final["step_percent"] == 25
    assert abort["actor"] == "rollout" and abort["from"] == bad and abort["to"] == a
    assert "max_error_increase" in abort["details"]["failed"]
    assert abort["details"]["canary"]["error_rate"] > 0.1
    assert store.current("iris") == a and store.canary("iris") is None
    assert traffic.statuses.get(200, 0) > 0


def test_a_constant_classifier_fails_agreement_in_shadow_then_psi_in_its_rollout(store: Store) -> None:
    a = publish(store, fit_iris(), deploy=True)
    constant = publish(store, DummyClassifier(strategy="constant", constant=0).fit(X_IRIS, load_iris().target))
    with serve(store.root, env=FAST) as server:
        with server.admin() as admin:
            response = admin.post("/v1/models/iris/shadow", json={"version": constant, "fraction": 1.0})
            assert response.status_code == 200, response.text
        with Traffic(server) as traffic:
            view = wait_for(lambda: (v := server.get_json("/v1/models/iris/shadow"))["stats"]["rows"] >= 50 and v)
            assert view, server.get_json("/v1/models/iris/shadow")
        assert all(version == a for _, _, version in traffic.answers)
        assert view["agreement"] < 0.5 and view["stats"]["psi"] > 0.2
        assert server.get_json("/v1/models/iris/monitor")["shadow"]["version"] == constant
        assert {"stable": "0", "shadow": "0"} in [
            {k: c[k] for k in ("stable", "shadow")} for c in view["stats"]["confusion"]
        ]
        assert f'modelswap_shadow_agreement{{model="iris",version="{constant}"}}' in metrics(server)
        with server.admin() as admin:
            assert admin.delete("/v1/models/iris/shadow").status_code == 200
        with Traffic(server):
            start_rollout(server, constant, steps=[50, 100], step_seconds=0.5, min_requests=30)
            final = rollout_ended(server)
        kinds = [e["action"] for e in actions(server)]
    assert final["state"] == "aborted", final
    failed = set(final["last_judgement"]["failed"])
    assert {"max_psi", "min_agreement"} <= failed, final["last_judgement"]
    assert kinds[0] == "rollout_abort" and {"shadow_start", "shadow_stop"} <= set(kinds)


def test_no_traffic_holds_then_aborts_at_max_hold(store: Store) -> None:
    a = publish(store, fit_iris(), deploy=True)
    b = publish(store, fit_iris(C=0.9))
    with serve(store.root, env=FAST) as server:
        start_rollout(server, b, steps=[50, 100], step_seconds=0.3, min_requests=10, max_hold_seconds=1.5)
        held = wait_for(lambda: server.get_json("/v1/models/iris/rollout")["held_since"] is not None)
        assert held
        assert store.canary("iris") == b  # holding: the step's fraction stays
        final = rollout_ended(server)
        kinds = [e["action"] for e in actions(server)]
    assert final["state"] == "aborted" and final["ended"].startswith("inconclusive: 0 canary requests")
    assert kinds[:2] == ["rollout_abort", "rollout_hold"] and kinds.count("rollout_hold") == 1
    assert store.current("iris") == a and store.canary("iris") is None


def test_killing_the_driving_process_mid_rollout_a_second_server_finishes_it(store: Store) -> None:
    publish(store, fit_iris(), deploy=True)
    b = publish(store, fit_iris(C=0.9))
    with serve(store.root, env=FAST) as one, serve(store.root, env=FAST) as two:
        with Traffic(one), Traffic(two):
            start_rollout(one, b, steps=[10, 50, 100], step_seconds=1.5, min_requests=10)
            driver = wait_for(lambda: one.get_json("/v1/models/iris/rollout")["driver"])
            assert driver
            pids = {int(s.get_json("/v1/models/iris")["this_process"]["process"].rsplit("-", 1)[1]): s
                    for s in (one, two)}  # fmt: skip
            holder = int(driver.rsplit("-", 1)[1])
            survivor = next(s for pid, s in pids.items() if pid != holder)
            os.kill(holder, signal.SIGKILL)
            new_driver = wait_for(lambda: survivor.get_json("/v1/models/iris/rollout")["driver"] not in (None, driver))
            assert new_driver
            final = rollout_ended(survivor)
    assert final["state"] == "promoted", final
    assert store.current("iris") == b


def test_the_shadow_never_changes_an_answer_and_its_errors_do_not_count_against_stable(store: Store) -> None:
    a = publish(store, fit_iris(), deploy=True)
    failing = publish(store, RaisesAfterWarmup())
    with serve(store.root, env=FAST) as server:
        with Traffic(server, rows=4) as before:
            wait_for(lambda: len(before.answers) >= 30)
        with server.admin() as admin:
            assert admin.post("/v1/models/iris/shadow", json={"version": failing}).status_code == 200
        with Traffic(server, bad=0.5, rows=4) as during:
            view = wait_for(lambda: (v := server.get_json("/v1/models/iris/shadow"))["stats"]["errors"] >= 10 and v)
            assert view, server.get_json("/v1/models/iris/shadow")
        assert set(during.statuses) == {200}
        assert all(version == a for _, _, version in during.answers)
        model = fit_iris()
        for rows, predictions, _ in during.answers[:200]:
            assert predictions == model.predict(np.asarray(rows)).tolist()
        monitored = server.get_json("/v1/models/iris/monitor")["versions"]
        stable = next(r for r in monitored if r["version"] == a and r["variant"] == "stable")
        assert stable["cumulative"]["errors"] == {"client": 0, "server": 0, "timeout": 0}
        assert view["stats"]["error_rate"] > 0


def test_a_full_shadow_queue_drops_shadow_work_never_a_request(store: Store) -> None:
    publish(store, fit_iris(), deploy=True)
    slow = publish(store, SleepsOnNegative())
    with serve(store.root, env={**FAST, "MODELSWAP_SHADOW_QUEUE": "2"}) as server:
        with server.admin() as admin:
            assert admin.post("/v1/models/iris/shadow", json={"version": slow}).status_code == 200
        with Traffic(server, bad=1.0) as traffic:
            dropped = wait_for(lambda: server.get_json("/v1/models/iris/shadow")["this_process"]["dropped"] >= 20)
            assert dropped
        assert set(traffic.statuses) == {200}
        assert 'modelswap_shadow_dropped_total{model="iris"}' in metrics(server)


def test_a_watched_deploy_of_a_failing_version_rolls_back_by_itself(store: Store) -> None:
    a = publish(store, fit_iris(), deploy=True)
    bad = publish(store, RaisesAfterWarmup())
    with serve(store.root, env=FAST) as server, Traffic(server, bad=0.3):
        with server.admin() as admin:
            watched = {"version": bad, "watch": 60, "max_error_rate": 0.05, "min_requests": 20}
            deployed = admin.post("/v1/models/iris/deploy", json=watched)
            assert deployed.status_code == 200, deployed.text
            assert deployed.json()["watch"]["watch"] == 60
            back = wait_for(lambda: server.get_json("/v1/models/iris")["current"] == a, timeout=30)
            assert back
            watch = server.get_json("/v1/models/iris/watch")
            assert 'action="watch_rollback",model="iris",outcome="success"} 1.0' in metrics(server)
            assert watch["state"] == "tripped" and watch["figures"]["error_rate"] > 0.05
            rollback = actions(server)[0]
            assert (rollback["action"], rollback["actor"], rollback["from"], rollback["to"]) == (
                "rollback",
                "watch",
                bad,
                a,
            )
            assert rollback["details"]["watch"]["requests"] >= 20
            again = admin.post("/v1/models/iris/deploy", json={"version": bad})
            assert again.status_code == 409 and "watch reset" in again.json()["error"]["message"]
            assert admin.post("/v1/models/iris/watch/reset", json={"reason": "fixed upstream"}).status_code == 200
            assert admin.post("/v1/models/iris/deploy", json={"version": bad}).status_code == 200
