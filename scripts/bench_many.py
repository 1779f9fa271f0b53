#!/usr/bin/env python3
"""One server, many models: startup time, memory, idle CPU of the watcher and poller, and
the swap lag of one deploy among them, in every worker.

    python scripts/bench_many.py [--models 100] [--workers 2] [--idle 20] [--deploys 20]

The store holds ``--models`` iris models (a logistic regression each, published with a
reference). Measured on a server with ``--workers`` workers, next to one serving a single
model (the baseline for idle CPU and memory):
- startup: from spawn to /readyz answering 200 (every model loaded in every worker);
- memory: RSS and PSS of every process of the server (from /proc/PID/smaps_rollup);
- idle CPU: the server's CPU over ``--idle`` seconds with no request, as % of one core;
- swap lag: ``--deploys`` deploys of randomly chosen models, each alternating between two
  versions; after each, every worker's own figure (symlink change to in-memory swap, from
  its heartbeat in GET /v1/models/{m}/fleet) once the fleet converged.
Nothing is asserted; the figures are printed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import ROOT, free_port, http, modelswap, server_cpu_seconds, session_memory

sys.path.insert(0, str(ROOT))


def make_store(root: Path, models: int) -> dict[str, list[str]]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from modelswap.core.store.store import Store

    store = Store(root)
    iris = load_iris()
    fits = [LogisticRegression(max_iter=1000, C=c).fit(iris.data, iris.target) for c in (1.0, 0.5)]
    versions: dict[str, list[str]] = {}
    for i in range(models):
        name = f"m{i:03d}"
        versions[name] = [store.publish(name, f, example=iris.data[:2], reference=iris.data).id for f in fits]
        store.deploy(name, versions[name][0])
    return versions


def measure(root: Path, models: list[str], versions: dict[str, list[str]], args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    env = {"MODELSWAP_MODELS": ",".join(models)}
    start = time.monotonic()
    with modelswap(root, port, workers=args.workers, env=env) as server:
        startup = time.monotonic() - start
        time.sleep(3)  # let the workers settle (first heartbeats, monitoring's first flush)
        rss, pss, processes = session_memory(server.pid)
        cpu0, t0 = server_cpu_seconds(server.pid), time.monotonic()
        time.sleep(args.idle)
        idle = 100 * (server_cpu_seconds(server.pid) - cpu0) / (time.monotonic() - t0)
        lags: list[float] = []
        rng = random.Random(1)
        url = f"http://127.0.0.1:{port}"
        from modelswap.core.store.store import Store

        store = Store(root)
        for _ in range(args.deploys if len(models) > 1 else 0):
            model = rng.choice(models)
            target = next(v for v in versions[model] if v != store.current(model))
            store.deploy(model, target)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                _, fleet = http("GET", f"{url}/v1/models/{model}/fleet")
                procs = fleet["processes"]
                if len(procs) >= args.workers and all(p.get("version") == target for p in procs):
                    lags += [p["last_swap_lag_seconds"] for p in procs]
                    break
                time.sleep(0.05)
    return {"startup": startup, "rss": rss, "pss": pss, "processes": processes, "idle": idle, "lags": lags}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100, help="models in the store")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers")
    parser.add_argument("--idle", type=float, default=20, help="seconds of idle CPU measurement")
    parser.add_argument("--deploys", type=int, default=20, help="deploys to time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelswap-bench-") as name:
        root = Path(name) / "models"
        began = time.monotonic()
        versions = make_store(root, args.models)
        print(f"store: {args.models} models, 2 versions each, published in {time.monotonic() - began:.0f} s")
        one = measure(root, ["m000"], versions, args)
        many = measure(root, sorted(versions), versions, args)
    print(f"{args.workers} workers, {args.idle:g} s idle, {args.deploys} deploys among {args.models} models:")
    print(f"  {'':12} {'startup s':>9} {'RSS MiB':>8} {'PSS MiB':>8} {'idle CPU % of a core':>21}")
    for label, r in (("1 model", one), (f"{args.models} models", many)):
        print(f"  {label:12} {r['startup']:>9.1f} {r['rss']:>8.0f} {r['pss']:>8.0f} {r['idle']:>21.2f}")
    lags = sorted(1000 * x for x in many["lags"])
    if lags:
        p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))]
        print(f"  swap lag, every worker, {len(lags)} swaps: median {statistics.median(lags):.1f} ms, "
              f"p99 {p99:.1f} ms, max {lags[-1]:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
