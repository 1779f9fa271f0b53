"""Canary routing and guard across real processes: 2 workers plus a second server on one store."""

from __future__ import annotations

import random
import time
from contextlib import ExitStack
from typing import Any

import pytest

from modelswap.core.store.layout import MODEL_FILE
from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, publish
from tests.models_for_tests import RaisesAfterWarmup
from tests.server import serve, wait_for

PREDICT = {"instances": [IRIS_ROW]}


@pytest.fixture
def store(iris_pair: tuple[Store, str, str]) -> tuple[Store, str, str]:
    return iris_pair


def variant(client: Any, key: str) -> tuple[str, str]:
    r = client.post("/v1/models/iris/predict", json=PREDICT, headers={"X-Routing-Key": key})
    assert r.status_code == 200, r.text
    assert r.json()["variant"] == r.headers["x-model-variant"]
    return r.json()["variant"], r.json()["version"]


def test_canary_share_stickiness_promote_and_stop_across_servers(store: tuple[Store, str, str], iris_a: Any) -> None:
    st, a, b = store
    env = {"MODELSWAP_POLL_INTERVAL": "0.3"}
    with ExitStack() as stack:
        two_workers = stack.enter_context(serve(st.root, workers=2, env=env))
        other = stack.enter_context(serve(st.root, env=env))
        c1 = stack.enter_context(two_workers.admin())
        c2 = stack.enter_context(other.client())
        started = c1.post("/v1/models/iris/canary", json={"version": b, "fraction": 0.2})
        assert started.status_code == 200, started.text
        # every process loads the canary in the background; wait until all report it
        assert wait_for(
            lambda: (
                len([p for p in two_workers.get_json("/v1/models/iris/fleet")["processes"] if p["canary"] == b]) == 3
            ),
            20,
        )

        rng = random.Random(42)
        keys = [f"user-{rng.getrandbits(64):x}" for _ in range(1500)]
        seen = [variant(c1, k) for k in keys]
        share = sum(v == "canary" for v, _ in seen) / len(seen)
        assert abs(share - 0.2) <= 0.04, share
        assert all(version == (b if v == "canary" else a) for v, version in seen)
        sample = keys[:100]
        assert [variant(c1, k)[0] for k in sample] == [variant(c2, k)[0] for k in sample]
        status = c1.get("/v1/models/iris/canary").json()
        assert status["running"] and status["config"]["fraction"] == 0.2
        assert status["this_process"]["counts"]["canary"]["requests"] > 0

        stopped = c1.delete("/v1/models/iris/canary")
        assert stopped.status_code == 200 and not st.paths("iris").abtest.exists()
        assert wait_for(lambda: all(variant(c2, k)[0] == "stable" for k in sample[:20]), 5)

        c1.post("/v1/models/iris/canary", json={"version": b, "fraction": 0.5})
        promoted = c1.post("/v1/models/iris/canary/promote")
        assert promoted.status_code == 200 and promoted.json()["current"] == b
        assert st.current("iris") == b and not st.paths("iris").abtest.exists()
        assert wait_for(lambda: variant(c2, "anyone") == ("stable", b), 5)
        history = [h["action"] for h in c2.get("/v1/models/iris/history").json()["history"][:4]]
        assert history == ["canary_promote", "canary_start", "canary_stop", "canary_start"]

        bad = publish(st, iris_a)
        (st.paths("iris").version_dir(bad) / MODEL_FILE).write_bytes(b"rot")
        refused = c1.post("/v1/models/iris/canary", json={"version": bad, "fraction": 0.1})
        assert refused.status_code == 422 and not st.paths("iris").abtest.exists()


def test_the_guard_stops_a_failing_canary_in_every_process(store: tuple[Store, str, str]) -> None:
    st, a, _ = store
    flaky = st.publish("iris", RaisesAfterWarmup(), example=[IRIS_ROW]).id
    env = {"MODELSWAP_POLL_INTERVAL": "0.3"}
    with ExitStack() as stack:
        first = stack.enter_context(serve(st.root, env=env))
        second = stack.enter_context(serve(st.root, env=env))
        admin = stack.enter_context(first.admin())
        other = stack.enter_context(second.client())
        guard = {"max_error_rate": 0.2, "min_requests": 20}
        assert (
            admin.post("/v1/models/iris/canary", json={"version": flaky, "fraction": 0.5, "guard": guard}).status_code
            == 200
        )
        assert wait_for(
            lambda: other.get("/v1/models/iris/canary").json()["this_process"]["canary_loaded"] == flaky, 10
        )
        canary_keys = [k for k in (f"k{i}" for i in range(400)) if variant(admin, k)[0] == "canary"]
        negative = {"instances": [[-1.0, 2.9, 4.5, 1.5]]}
        tripped_at = None
        codes = []
        for i, key in enumerate(canary_keys[:60]):
            r = admin.post("/v1/models/iris/predict", json=negative, headers={"X-Routing-Key": key})
            codes.append(r.status_code)
            if r.status_code == 200 and r.json()["variant"] == "stable" and tripped_at is None:
                tripped_at = i
                break
            time.sleep(0.005)
        assert 500 in codes and codes.count(500) >= 20
        assert tripped_at is not None, codes
        assert not st.paths("iris").abtest.exists()
        last = st.history("iris", limit=1)[0]
        assert (last.action, last.actor, last.from_version) == ("canary_abort", "guard", flaky)
        assert wait_for(lambda: not other.get("/v1/models/iris/canary").json()["this_process"]["canary_loaded"], 5)
        assert all(variant(other, k) == ("stable", a) for k in canary_keys[:20])
        error = admin.post("/v1/models/iris/predict", json=negative, headers={"X-Routing-Key": canary_keys[0]})
        assert error.status_code == 200
