#!/usr/bin/env python3
"""What monitoring costs: predict req/s and server CPU per request with monitoring on (the
default: online counts into the reference bins, the prediction log with inputs) and off
(MODELSWAP_MONITOR=0), in one run, interleaved rounds.

    python scripts/bench_monitoring.py [--duration 8] [--rounds 3] [--conc 16]

Payloads: 1-row iris (the cheapest model, where a fixed per-request cost shows most),
64-row iris, and the ColumnTransformer pipeline with 1 record (string and number
columns). Every version is published with its training data as the reference, so the
monitored servers count every feature. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchlib import ROOT, churn_pipeline, free_port, lua_script, modelswap, server_cpu_seconds, wrk

sys.path.insert(0, str(ROOT))


def make_store(tmp: Path) -> Path:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from modelswap.core.store.store import Store

    store = Store(tmp / "models")
    iris = load_iris()
    model = LogisticRegression(max_iter=1000).fit(iris.data, iris.target)
    store.deploy("iris", store.publish("iris", model, example=iris.data[:2], reference=iris.data).id)
    pipeline, churn = churn_pipeline()
    store.deploy("churn", store.publish("churn", pipeline, example=churn.head(3), reference=churn).id)
    return store.root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--conc", type=int, default=16, help="concurrent connections")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed for the load: apt-get install -y wrk")
    measure(args)


def measure(args: argparse.Namespace) -> None:
    """Run the comparison and print it (also ``scripts/bench.py --parts monitoring``)."""
    from sklearn.datasets import load_iris

    rows = load_iris().data
    with tempfile.TemporaryDirectory(prefix="modelswap-bench-") as tmp_name:
        tmp = Path(tmp_name)
        root = make_store(tmp)
        _, churn = churn_pipeline()
        payloads = {
            "iris, 1 row": ("iris", {"instances": [list(rows[0])]}),
            "iris, 64 rows": ("iris", {"instances": [list(r) for r in rows[:64]]}),
            "pipeline, 1 record": ("churn", {"instances": churn.head(1).to_dict(orient="records")}),
        }
        luas = {name: lua_script(tmp / f"p{i}.lua", body) for i, (name, (_, body)) in enumerate(payloads.items())}
        on_port, off_port = free_port(), free_port()
        on_env = {"MODELSWAP_PREDICTION_LOG": str(tmp / "log")}
        results: dict[str, dict[str, list[dict[str, Any]]]] = {name: {"on": [], "off": []} for name in payloads}
        with (
            modelswap(root, on_port, env=on_env) as on_server,
            modelswap(root, off_port, env={"MODELSWAP_MONITOR": "0"}) as off_server,
        ):
            servers = {"on": (on_port, on_server.pid), "off": (off_port, off_server.pid)}
            for round_ in range(args.rounds):
                order = ["on", "off"] if round_ % 2 == 0 else ["off", "on"]
                for name, (model, _) in payloads.items():
                    for side in order:
                        port, pid = servers[side]
                        cpu0 = server_cpu_seconds(pid)
                        run = wrk(f"http://127.0.0.1:{port}/v1/models/{model}/predict", args.conc, args.duration,
                                  luas[name])  # fmt: skip
                        run["cpu_us"] = 1e6 * (server_cpu_seconds(pid) - cpu0) / max(1, run["requests"])
                        results[name][side].append(run)
        log_bytes = sum(p.stat().st_size for p in (tmp / "log").glob("*"))
    print(f"monitoring on (counts + prediction log with inputs) vs off, 1 worker, c={args.conc}, "
          f"{args.rounds} interleaved rounds of {args.duration}s, medians:")  # fmt: skip
    print(f"  {'':20} {'on req/s':>9} {'off req/s':>10} {'on/off':>7}  {'on CPU µs':>9} {'off CPU µs':>10}  errors")
    for name, sides in results.items():
        on, off = sides["on"], sides["off"]
        ratio = statistics.median(a["rps"] / b["rps"] for a, b in zip(on, off, strict=True))
        errors = sum(r["errors"] + r["non2xx"] for r in on + off)
        on_rps, off_rps = statistics.median(r["rps"] for r in on), statistics.median(r["rps"] for r in off)
        print(
            f"  {name:20} {on_rps:>9.0f} {off_rps:>10.0f}"
            f" {ratio:>7.3f}  {statistics.median(r['cpu_us'] for r in on):>9.0f}"
            f" {statistics.median(r['cpu_us'] for r in off):>10.0f}  {errors}"
        )
    print(f"  prediction log written by the monitored server: {log_bytes / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
