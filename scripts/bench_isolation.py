#!/usr/bin/env python3
"""Isolation benchmark: while one model is saturated, how fast do /healthz and a cheap
model on the same server answer?

    python scripts/bench_isolation.py [--duration 10] [--rounds 3] [--conc 12] [--rows 32]
                                      [--other-modelswap BIN]

One server process (1 worker) serves two models from one store: ``knn``, a brute-force
k-nearest-neighbours classifier over 60,000 x 32 points (``--rows`` rows per request,
about a millisecond each),
and ``iris``, a logistic regression (microseconds). wrk keeps ``--conc`` connections
busy on ``knn``; meanwhile one thread probes ``GET /healthz`` on a new connection every
100 ms, as a kubelet does, and another sends a 1-row iris predict every 100 ms. The
report gives the probes' p50/p99/max, the knn req/s and server CPU per knn request.
With --other-modelswap, the same is measured for another build in interleaved rounds.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchlib import ROOT, free_port, lua_script, modelswap, pct, server_cpu_seconds, wrk

sys.path.insert(0, str(ROOT))
IRIS_ROW = [6.0, 2.9, 4.5, 1.5]
KNN_COLUMNS = 32


def make_store(tmp: Path) -> Path:
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    from modelswap.core.store.store import Store

    store = Store(tmp / "models")
    iris = load_iris()
    store.deploy("iris", store.publish("iris", LogisticRegression(max_iter=1000).fit(iris.data, iris.target)).id)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60_000, KNN_COLUMNS))
    knn = KNeighborsClassifier(n_neighbors=5, algorithm="brute").fit(x, (x[:, 0] > 0).astype(int))
    store.deploy("knn", store.publish("knn", knn, example=x[:2]).id)
    return store.root


def probe(url: str, body: bytes | None, stop: threading.Event, out: list[float]) -> None:
    """One request every 100 ms on a new connection; latency in seconds (timeouts count as 10 s)."""
    while not stop.is_set():
        request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
        request.add_header("Content-Type", "application/json")
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
            out.append(time.perf_counter() - t0)
        except OSError:
            out.append(10.0)
        stop.wait(max(0.0, 0.1 - (time.perf_counter() - t0)))


def measure(root: Path, binary: str | None, args: argparse.Namespace, lua: Path) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with modelswap(root, port, binary=binary) as server:
        wrk(f"{base}/v1/models/knn/predict", 2, 2, lua)  # warm
        health: list[float] = []
        iris: list[float] = []
        stop = threading.Event()
        body = f'{{"instances": [{IRIS_ROW}]}}'.encode()
        threads = [
            threading.Thread(target=probe, args=(f"{base}/healthz", None, stop, health)),
            threading.Thread(target=probe, args=(f"{base}/v1/models/iris/predict", body, stop, iris)),
        ]
        cpu0 = server_cpu_seconds(server.pid)
        for t in threads:
            t.start()
        try:
            load = wrk(f"{base}/v1/models/knn/predict", args.conc, args.duration, lua)
        finally:
            stop.set()
            for t in threads:
                t.join()
        cpu = server_cpu_seconds(server.pid) - cpu0
    return {"health": health, "iris": iris, "load": load, "cpu_us": 1e6 * cpu / max(1, load["requests"])}


def summary(name: str, samples: list[float]) -> str:
    ms = [1000 * s for s in samples]
    return f"{name} p50 {statistics.median(ms):.1f} / p99 {pct(ms, 99):.1f} / max {max(ms):.1f} ms ({len(ms)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--conc", type=int, default=12, help="connections kept busy on the slow model")
    parser.add_argument("--rows", type=int, default=32, help="rows per knn request")
    parser.add_argument("--other-modelswap", metavar="BIN", help="another modelswap executable to measure beside")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed for the load: apt-get install -y wrk")
    builds: dict[str, str | None] = {"this modelswap": None}
    if args.other_modelswap:
        builds[args.other_modelswap] = args.other_modelswap
    with tempfile.TemporaryDirectory(prefix="modelswap-bench-") as tmp_name:
        tmp = Path(tmp_name)
        root = make_store(tmp)
        lua = lua_script(tmp / "knn.lua", {"instances": [[0.1] * KNN_COLUMNS] * args.rows})
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in builds}
        for round_ in range(args.rounds):
            order = list(builds) if round_ % 2 == 0 else list(reversed(builds))
            for name in order:
                runs[name].append(measure(root, builds[name], args, lua))
    print(f"one worker, {args.conc} connections saturating a brute-force KNN (60,000 x {KNN_COLUMNS}, "
          f"{args.rows} rows per request); "
          f"{args.rounds} interleaved rounds of {args.duration}s; probes every 100 ms on new connections:")  # fmt: skip
    for name, rs in runs.items():
        health = [s for r in rs for s in r["health"]]
        iris = [s for r in rs for s in r["iris"]]
        rps = statistics.median(r["load"]["rps"] for r in rs)
        cpu = statistics.median(r["cpu_us"] for r in rs)
        errors = sum(r["load"]["errors"] + r["load"]["non2xx"] for r in rs)
        print(f"  {name}")
        print(f"    {summary('/healthz', health)}; over 1 s: {sum(h > 1 for h in health)}")
        print(f"    {summary('iris 1-row predict', iris)}")
        print(f"    knn: {rps:.1f} req/s (median), server CPU {cpu:.0f} µs per request, errors {errors}")


if __name__ == "__main__":
    main()
