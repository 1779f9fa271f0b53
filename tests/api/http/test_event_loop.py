"""Model code never runs on the event loop unless proven cheap: while one model computes
for seconds, health checks, metrics and other models keep answering, and a request past
MODELSWAP_PREDICT_TIMEOUT gets 504."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, publish
from tests.models_for_tests import BusyOnNegative, Constant
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


def test_a_cheap_model_goes_on_the_loop_once_proven_and_leaves_it_for_good_after_one_stall(store: Store) -> None:
    """MODELSWAP_BATCH_INLINE_MS: a numeric model's calls go on the event loop after 32
    cheap ones on its worker threads; a call there that turns out slow stalls the loop that
    once, and the model's calls stay on its threads after it, however cheap again. A model
    of text never goes on the loop. (A 5 ms budget here, so a stall is a call past 20 ms:
    a cheap call on a machine this busy with tests may pause for 4.)"""
    import pandas as pd

    from tests.models_for_tests import NamesItsThread, NamesItsThreadForText

    store.deploy("numbers", publish(store, NamesItsThread(), model="numbers"))
    text = pd.DataFrame({"text": ["short", "a longer text"]})
    store.deploy("text", publish(store, NamesItsThreadForText(), model="text", example=text))
    with serve(store.root, env={"MODELSWAP_BATCH_INLINE_MS": "5"}) as server, server.client() as client:

        def where(model: str, row: Any) -> str:
            r = client.post(f"/v1/models/{model}/predict", json={"instances": [row]})
            assert r.status_code == 200, r.text
            return str(r.json()["predictions"][0])

        assert all(where("text", {"text": "words"}).startswith("predict-text") for _ in range(100))
        cheap = [1.0, 0.0, 0.0, 0.0]
        seen = [where("numbers", cheap)]
        while seen[-1] != "MainThread" and len(seen) < 300:
            seen.append(where("numbers", cheap))
        assert seen[0].startswith("predict-numbers")  # a new version is measured on its threads first
        assert seen[-1] == "MainThread" and len(seen) > 32  # then on the loop, once 32 calls in a row were cheap
        assert where("numbers", [-0.5, 0.0, 0.0, 0.0]) == "MainThread"  # proven cheap: on the loop, for 0.5 s
        after = [where("numbers", cheap) for _ in range(100)]
        assert all(name.startswith("predict-numbers") for name in after)  # never on the loop again, though cheap
        assert "numbers" in server.output() and "its calls stay on the worker threads" in server.output()

        outcome: dict[str, Any] = {}

        def busy() -> None:
            with server.client() as other:
                r = other.post("/v1/models/numbers/predict", json={"instances": [[-2.0, 0, 0, 0]]})
                outcome.update(status=r.status_code, on_loop=r.json()["predictions"][0] == "MainThread")

        thread = threading.Thread(target=busy)
        thread.start()
        time.sleep(0.3)  # the busy call is running now, on the model's thread
        with httpx.Client(base_url=server.url, timeout=5) as probe:
            for _ in range(5):
                t0 = time.monotonic()
                assert probe.get("/healthz").status_code == 200
                assert time.monotonic() - t0 < 1.0  # the loop is free; only the GIL is shared
        thread.join(timeout=30)
    assert outcome == {"status": 200, "on_loop": False}


def test_another_thread_holding_the_gil_is_made_to_switch_within_1_ms(store: Store) -> None:
    """The serving process's switch interval: a thread holding the GIL (a model on its
    worker thread, monitoring's counting) gives it back to the loop within 1 ms of the loop
    asking, not Python's 5."""
    from tests.models_for_tests import ReportsSwitchInterval

    store.deploy("gil", publish(store, ReportsSwitchInterval(), model="gil"))
    with serve(store.root) as server, server.client() as client:
        r = client.post("/v1/models/gil/predict", json={"instances": [IRIS_ROW]})
        assert r.status_code == 200 and r.json()["predictions"] == [0.001]


def embedded_app(store: Store) -> Any:
    """The app as a process embedding it makes it (a user's tests), serving iris."""
    from modelswap.api.http.app import create_app
    from modelswap.core.settings import Settings

    store.deploy("iris", publish(store, Constant(0)))
    return create_app(Settings.from_env({"MODELSWAP_ROOT": str(store.root)}))


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """The app's lifespan as uvicorn drives it: started on entry, stopped on exit."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    yield
    await inbox.put({"type": "lifespan.shutdown"})
    assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
    await task


def test_an_app_embedded_in_a_process_gives_the_switch_interval_and_the_collector_back_when_it_stops(
    store: Store,
) -> None:
    """An app embedded in another process (a user's tests, say) sets the 1 ms switch
    interval, freezes what was imported and collects its youngest generation after 10,000
    containers while it serves; the process has its own interval and thresholds back
    after, and what was frozen is the collector's again."""
    app = embedded_app(store)
    before = sys.getswitchinterval()
    assert before != 0.001
    thresholds = gc.get_threshold()
    gc.set_threshold(500, *thresholds[1:])  # the process's own, not Python's default
    gc.unfreeze()  # a process that froze nothing itself

    async def main() -> tuple[int, float, bool, int]:
        """A prediction while the app serves, and what the process is set to meanwhile."""
        async with lifespan(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
                r = await client.post("/v1/models/iris/predict", json={"instances": [IRIS_ROW]})
            return r.status_code, sys.getswitchinterval(), gc.get_freeze_count() > 0, gc.get_threshold()[0]

    try:
        assert asyncio.run(main()) == (200, 0.001, True, 10_000)
        assert sys.getswitchinterval() == before
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == (500, *thresholds[1:])
    finally:
        gc.set_threshold(*thresholds)


def test_an_app_leaves_frozen_what_the_process_froze_itself(store: Store) -> None:
    """A process that froze objects of its own before the app started keeps them frozen
    when the app stops (unfreezing would give the collector theirs too)."""
    app = embedded_app(store)
    gc.freeze()
    try:
        theirs = gc.get_freeze_count()
        assert theirs > 0

        async def main() -> None:
            async with lifespan(app):
                pass

        asyncio.run(main())
        assert gc.get_freeze_count() >= theirs
    finally:
        gc.unfreeze()
