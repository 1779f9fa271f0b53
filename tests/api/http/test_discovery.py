"""A running server follows the store: it serves a model created after it started once
the model has a `current`, and stops serving one that is removed."""

from __future__ import annotations

import shutil
from typing import Any

from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, publish
from tests.server import serve, wait_for

PREDICT = {"instances": [IRIS_ROW]}


def test_a_model_created_after_start_is_served_once_deployed_and_forgotten_once_removed(
    iris_pair: tuple[Store, str, str], iris_a: Any
) -> None:
    store, a, _ = iris_pair
    with serve(store.root) as server, server.client() as client:
        assert client.post("/v1/models/fresh/predict", json=PREDICT).status_code == 404
        version = publish(store, iris_a, model="fresh")  # published only: served, not ready to answer
        assert wait_for(lambda: "fresh" in client.get("/readyz").json()["models"], 10)
        assert client.get("/readyz").status_code == 200  # nothing to wait for: it has no current
        store.deploy("fresh", version)
        answered = wait_for(lambda: client.post("/v1/models/fresh/predict", json=PREDICT).status_code == 200, 10)
        assert answered, server.output()[-2000:]
        assert client.post("/v1/models/fresh/predict", json=PREDICT).json()["version"] == version
        assert client.post("/v1/models/iris/predict", json=PREDICT).json()["version"] == a
        shutil.rmtree(store.paths("fresh").dir)
        assert wait_for(lambda: client.post("/v1/models/fresh/predict", json=PREDICT).status_code == 404, 10)
        assert client.get("/readyz").status_code == 200


def test_reload_of_a_model_the_server_has_not_seen_yet_finds_it(iris_pair: tuple[Store, str, str], iris_a: Any) -> None:
    store, _, _ = iris_pair
    env = {"MODELSWAP_WATCH": "off", "MODELSWAP_POLL_INTERVAL": "60"}  # no inotify, a slow poll
    with serve(store.root, env=env) as server, server.admin() as admin:
        version = publish(store, iris_a, model="late")
        store.deploy("late", version)
        reloaded = admin.post("/v1/models/late/reload")
        assert reloaded.status_code == 200 and reloaded.json()["serving"] == version
        assert admin.post("/v1/models/late/predict", json=PREDICT).json()["version"] == version
