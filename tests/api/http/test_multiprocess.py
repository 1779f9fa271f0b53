"""Several serving processes on one store: swap storms, poll-mode convergence, metrics."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, ROOT
from tests.server import serve, wait_for

PREDICT = {"instances": [IRIS_ROW]}


@pytest.fixture
def store(iris_pair: tuple[Store, str, str]) -> tuple[Store, str, str]:
    return iris_pair


def test_swap_storm_on_two_workers_fails_no_request(store: tuple[Store, str, str]) -> None:
    st, a, b = store
    results: list[tuple[int, str | None]] = []
    stop = threading.Event()
    with serve(st.root, workers=2) as server:
        # both workers must be up and serving before the storm
        assert wait_for(lambda: len(server.get_json("/v1/models/iris/fleet")["processes"]) == 2, 30)

        def load() -> None:
            with server.client() as client:
                while not stop.is_set():
                    try:
                        r = client.post("/v1/models/iris/predict", json=PREDICT)
                        results.append((r.status_code, r.headers.get("x-model-version")))
                    except httpx.TransportError as exc:
                        results.append((0, repr(exc)))

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        swaps = 0
        with server.admin() as admin:
            for i in range(16):
                r = admin.post("/v1/models/iris/deploy", json={"version": b if i % 2 == 0 else a})
                assert r.status_code == 200, r.text
                swaps += 1
                time.sleep(0.25)
            final = admin.post("/v1/models/iris/rollback").json()["current"]
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
        failed = [r for r in results if r[0] != 200]
        assert failed == [], failed[:5]
        assert len(results) > 200, len(results)
        assert {v for _, v in results} == {a, b}
        fleet = wait_for(lambda: server.get_json("/v1/models/iris/fleet")["converged"], 30)
        assert fleet, server.get_json("/v1/models/iris/fleet")
        assert final == a or final == b
        processes = server.get_json("/v1/models/iris/fleet")["processes"]
        assert len(processes) == 2 and {p["version"] for p in processes} == {final}


def test_three_poll_mode_servers_follow_a_deploy_made_on_the_filesystem(store: tuple[Store, str, str]) -> None:
    st, a, b = store
    interval = 0.5
    env = {"MODELSWAP_WATCH": "poll", "MODELSWAP_POLL_INTERVAL": str(interval)}
    with ExitStack() as stack:
        servers = [stack.enter_context(serve(st.root, env=env)) for _ in range(3)]
        clients = [stack.enter_context(s.client()) for s in servers]
        assert all(c.post("/v1/models/iris/predict", json=PREDICT).json()["version"] == a for c in clients)
        deploy = subprocess.run(
            [sys.executable, "-m", "modelswap", "--root", str(st.root), "deploy", "iris", b],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert deploy.returncode == 0, deploy.stderr
        flipped = time.monotonic()
        seen: dict[int, float] = {}
        while len(seen) < 3 and time.monotonic() - flipped < interval + 3.0:
            for i, c in enumerate(clients):
                if i not in seen and c.post("/v1/models/iris/predict", json=PREDICT).json()["version"] == b:
                    seen[i] = time.monotonic() - flipped
            time.sleep(0.01)
        assert len(seen) == 3, f"converged: {seen}"
        fleet = wait_for(lambda: clients[0].get("/v1/models/iris/fleet").json(), 5)
        assert wait_for(lambda: clients[0].get("/v1/models/iris/fleet").json()["summary"] == f"3/3 processes on {b}")
        assert fleet["current"] == b


def _counter(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_are_aggregated_across_two_workers(store: tuple[Store, str, str], tmp_path: Path) -> None:
    st, a, b = store
    metrics_dir = tmp_path / "metrics"
    with serve(st.root, workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}) as server:
        assert wait_for(lambda: len(server.get_json("/v1/models/iris/fleet")["processes"]) == 2, 30)
        sent, bad = 60, 7
        pids = set()
        for _ in range(sent):
            with server.client() as fresh:  # a new connection each time: both workers get some
                r = fresh.post("/v1/models/iris/predict", json=PREDICT)
                assert r.status_code == 200
        for _ in range(bad):
            with server.client() as fresh:
                assert fresh.post("/v1/models/iris/predict", json={"instances": [[1.0]]}).status_code == 400
        with server.client() as client:
            text = client.get("/metrics").text
            pids = {p["pid"] for p in client.get("/v1/models/iris/fleet").json()["processes"]}
        assert len(pids) == 2
        ok = _counter(text, "modelswap_predictions_total", model="iris", version=a, outcome="success")
        assert ok == sent
        assert _counter(text, "modelswap_prediction_latency_seconds_count", model="iris", variant="stable") == sent
        assert re.search(rf'modelswap_serving_version_info{{model="iris",variant="stable",version="{a}"}} 1\.0', text)
        assert _counter(text, "modelswap_model_loads_total", model="iris", outcome="success") >= 2


def test_a_killed_worker_is_replaced_and_both_workers_take_connections(store: tuple[Store, str, str]) -> None:
    import os
    import signal

    st, a, _ = store
    with serve(st.root, workers=2) as server:
        assert wait_for(lambda: len(server.get_json("/v1/models/iris/fleet")["processes"]) == 2, 30)
        # every connection lands on some worker's own SO_REUSEPORT socket: both get some
        pids = set()
        for _ in range(40):
            with server.client() as fresh:
                assert fresh.post("/v1/models/iris/predict", json=PREDICT).status_code == 200
                pids.add(fresh.get("/v1/models/iris").json()["this_process"]["process"])
        assert len(pids) == 2
        victim = server.get_json("/v1/models/iris/fleet")["processes"][0]["pid"]
        os.kill(victim, signal.SIGKILL)

        def replaced() -> bool:
            try:
                procs = server.get_json("/v1/models/iris/fleet")["processes"]
            except httpx.TransportError:
                # a connection the kernel had queued on the dead worker's own socket is
                # reset when it dies; the supervisor's replacement is what is waited for
                return False
            live = [p for p in procs if p["pid"] != victim]
            return len(live) == 2

        assert wait_for(replaced, 30)
        for _ in range(20):
            with server.client() as fresh:  # new connections reach the new worker too
                r = fresh.post("/v1/models/iris/predict", json=PREDICT)
                assert r.status_code == 200, r.text
