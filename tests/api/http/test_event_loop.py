"""Model code never runs on the event loop: while one model computes for seconds, health
checks, metrics and other models keep answering, and a request past
MODELSWAP_PREDICT_TIMEOUT gets 504."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, publish
from tests.models_for_tests import BusyOnNegative
from tests.server import serve


def test_a_busy_model_leaves_health_metrics_and_other_models_answering(
    iris_pair: tuple[Store, str, str],
) -> None:
    store, a, _ = iris_pair
    store.deploy("busy", publish(store, BusyOnNegative(), model="busy"))
    env = {"MODELSWAP_PREDICT_TIMEOUT": "1.5"}
    with serve(store.root, env=env) as server:
        outcome: dict[str, Any] = {}

        def busy() -> None:
            with server.client() as client:
                t0 = time.monotonic()
                r = client.post("/v1/models/busy/predict", json={"instances": [[-4.0, 0, 0, 0]]})
                outcome.update(status=r.status_code, body=r.json(), seconds=time.monotonic() - t0)

        thread = threading.Thread(target=busy)
        thread.start()
        time.sleep(0.3)  # the busy predict is running now
        with httpx.Client(base_url=server.url, timeout=5) as client:
            for _ in range(5):
                t0 = time.monotonic()
                assert client.get("/healthz").status_code == 200
                assert client.post("/v1/models/iris/predict", json={"instances": [IRIS_ROW]}).json()["version"] == a
                assert client.get("/metrics").status_code == 200
                # generous bound: the loop is free; only the GIL is shared with the busy thread
                assert time.monotonic() - t0 < 1.0
        thread.join(timeout=30)
    assert outcome["status"] == 504 and outcome["body"]["error"]["code"] == "predict_timeout"
    assert outcome["seconds"] < 3.9  # answered at the timeout, not when the model finished
