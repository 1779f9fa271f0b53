"""Micro-batching in a real server under concurrent load: rows, versions and variants
never get mixed up between requests."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from modelswap.core.delivery.canary import start_canary
from modelswap.core.store.store import Store
from tests.conftest import StepClock
from tests.models_for_tests import Constant, RowSum
from tests.server import serve, wait_for

EXAMPLE = [[1.0, 2.0, 3.0, 4.0]]


def hammer(url_client: Any, threads: int, per_thread: int, make_body: Any, check: Any) -> list[str]:
    problems: list[str] = []

    def run(seed: int) -> None:
        rng = random.Random(seed)
        with url_client() as client:
            for i in range(per_thread):
                body, headers = make_body(rng, seed, i)
                r = client.post("/v1/models/m/predict", json=body, headers=headers)
                problem = check(body, r)
                if problem:
                    problems.append(problem)

    workers = [threading.Thread(target=run, args=(s,)) for s in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return problems


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(tmp_path: Path) -> None:
    store = Store(tmp_path / "models", clock=StepClock())
    store.deploy("m", store.publish("m", RowSum(), example=EXAMPLE).id)

    def body(rng: random.Random, seed: int, i: int) -> tuple[dict[str, Any], dict[str, str]]:
        n = rng.randint(1, 3)
        return {"instances": [[rng.uniform(0, 9) for _ in range(4)] for _ in range(n)]}, {}

    def check(sent: dict[str, Any], r: Any) -> str | None:
        if r.status_code != 200:
            return r.text
        expected = np.asarray(sent["instances"]).sum(axis=1)
        return None if np.allclose(r.json()["predictions"], expected) else f"wrong rows: {sent} -> {r.text}"

    with serve(store.root) as server:
        assert hammer(server.client, 8, 50, body, check) == []
        text = server_metrics(server)
    calls = metric(text, "modelswap_batch_requests_count")
    answered = metric(text, "modelswap_batch_requests_sum")
    assert answered == 400 and calls < answered  # some predict calls answered several requests


def server_metrics(server: Any) -> str:
    with server.client() as client:
        return str(client.get("/metrics").text)


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


def test_one_bad_request_in_a_batch_fails_alone(tmp_path: Path) -> None:
    store = Store(tmp_path / "models", clock=StepClock())
    store.deploy("m", store.publish("m", RowSum(), example=EXAMPLE).id)

    def body(rng: random.Random, seed: int, i: int) -> tuple[dict[str, Any], dict[str, str]]:
        bad = (seed + i) % 7 == 0
        return {"instances": [[-1.0 if bad else 1.0, 2.0, 3.0, 4.0]]}, {}

    def check(sent: dict[str, Any], r: Any) -> str | None:
        bad = sent["instances"][0][0] < 0
        if bad:
            return None if r.status_code == 500 and r.json()["error"]["code"] == "prediction_failed" else r.text
        return None if r.status_code == 200 and r.json()["predictions"] == [10.0] else r.text

    with serve(store.root) as server:
        assert hammer(server.client, 6, 40, body, check) == []


def test_a_response_always_names_the_version_that_predicted_it_across_swaps(tmp_path: Path) -> None:
    store = Store(tmp_path / "models", clock=StepClock())
    zero = store.publish("m", Constant(0), example=EXAMPLE).id
    seven = store.publish("m", Constant(7), example=EXAMPLE).id
    store.deploy("m", zero)
    expected = {zero: 0, seven: 7}
    stop = threading.Event()

    def body(rng: random.Random, seed: int, i: int) -> tuple[dict[str, Any], dict[str, str]]:
        return {"instances": EXAMPLE * rng.randint(1, 3)}, {}

    def check(sent: dict[str, Any], r: Any) -> str | None:
        if r.status_code != 200:
            return r.text
        data = r.json()
        return None if set(data["predictions"]) == {expected[data["version"]]} else f"mixed: {r.text}"

    with serve(store.root) as server:

        def swap() -> None:
            with server.admin() as admin:
                while not stop.is_set():
                    target = seven if store.current("m") == zero else zero
                    admin.post("/v1/models/m/deploy", json={"version": target})
                    time.sleep(0.05)

        swapper = threading.Thread(target=swap)
        swapper.start()
        try:
            assert hammer(server.client, 6, 80, body, check) == []
        finally:
            stop.set()
            swapper.join()


def test_canary_and_stable_batch_apart(tmp_path: Path) -> None:
    store = Store(tmp_path / "models", clock=StepClock())
    zero = store.publish("m", Constant(0), example=EXAMPLE).id
    seven = store.publish("m", Constant(7), example=EXAMPLE).id
    store.deploy("m", zero)
    start_canary(store, "m", seven, 0.5)

    def body(rng: random.Random, seed: int, i: int) -> tuple[dict[str, Any], dict[str, str]]:
        return {"instances": EXAMPLE}, {"X-Routing-Key": f"user-{rng.getrandbits(32)}"}

    def check(sent: dict[str, Any], r: Any) -> str | None:
        data = r.json()
        want = 7 if data["variant"] == "canary" else 0
        return None if data["predictions"] == [want] and data["version"] == (seven if want else zero) else r.text

    with serve(store.root) as server:
        assert wait_for(lambda: server.get_json("/v1/models/m/canary")["this_process"]["canary_loaded"] == seven, 10)
        assert hammer(server.client, 6, 60, body, check) == []
