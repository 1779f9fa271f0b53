#!/usr/bin/env python3
"""What progressive delivery costs and how fast it acts.

    python scripts/bench_delivery.py [--duration 8] [--rounds 3] [--conc 16] [--breaches 5]

1. Shadow overhead: the live version's req/s, p50, p99 and server CPU per request with a
   100 % shadow running against the same server without one (two stores, same models:
   1-row iris, the shadow a second iris version), in one run, interleaved rounds, c=16
   and c=1.
2. Breach to rollback: a watched deploy of a version that fails on every request with a
   negative first value, with a client sending such requests; the time from the first
   failed answer to the first answer from the predecessor again, ``--breaches`` times.
Nothing is asserted; the figures are printed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from benchlib import ROOT, TOKEN, free_port, http, lua_script, modelswap, wrk

sys.path.insert(0, str(ROOT))


def make_store(root: Path, *, shadow: bool) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from modelswap.core.delivery.shadow import start_shadow
    from modelswap.core.store.store import Store

    store = Store(root)
    iris = load_iris()
    live = LogisticRegression(max_iter=1000).fit(iris.data, iris.target)
    other = LogisticRegression(max_iter=1000, C=0.1).fit(iris.data, iris.target)
    store.deploy("iris", store.publish("iris", live, example=iris.data[:2], reference=iris.data).id)
    candidate = store.publish("iris", other, example=iris.data[:2], reference=iris.data).id
    if shadow:
        start_shadow(store, "iris", candidate, 1.0, actor="bench")


def shadow_overhead(args: argparse.Namespace, tmp: Path) -> None:
    make_store(tmp / "with", shadow=True)
    make_store(tmp / "without", shadow=False)
    lua = lua_script(tmp / "p.lua", {"instances": [[6.0, 2.9, 4.5, 1.5]]})
    ports = {"shadow": free_port(), "none": free_port()}
    results: dict[int, dict[str, list[dict[str, Any]]]] = {c: {"shadow": [], "none": []} for c in (args.conc, 1)}
    with (
        modelswap(tmp / "with", ports["shadow"]) as with_server,
        modelswap(tmp / "without", ports["none"]) as without_server,
    ):
        pids = {"shadow": with_server.pid, "none": without_server.pid}
        for round_ in range(args.rounds):
            order = ["shadow", "none"] if round_ % 2 == 0 else ["none", "shadow"]
            for conc in results:
                for side in order:
                    url = f"http://127.0.0.1:{ports[side]}/v1/models/iris/predict"
                    results[conc][side].append(wrk(url, conc, args.duration, lua, pid=pids[side]))
        _, view = http("GET", f"http://127.0.0.1:{ports['shadow']}/v1/models/iris/shadow")
    stats = view["stats"]
    print(f"shadow overhead: 1-row iris, 1 worker, 100% shadowed vs no shadow, {args.rounds} interleaved rounds "
          f"of {args.duration}s, medians")  # fmt: skip
    print(f"  {'':14} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU µs':>7}   p99 ratio (shadow/none, per round)")
    for conc, sides in results.items():
        for side in ("shadow", "none"):
            med = {k: statistics.median(r[k] for r in sides[side]) for k in ("rps", "p50_ms", "p99_ms", "cpu_us")}
            print(f"  c={conc:<3} {side:8} {med['rps']:>8.0f} {med['p50_ms']:>7.2f} {med['p99_ms']:>7.2f} "
                  f"{med['cpu_us']:>7.0f}")  # fmt: skip
        ratios = [a["p99_ms"] / b["p99_ms"] for a, b in zip(sides["shadow"], sides["none"], strict=True)]
        rps = [a["rps"] / b["rps"] for a, b in zip(sides["shadow"], sides["none"], strict=True)]
        listed = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"  c={conc:<3} p99 ratio median {statistics.median(ratios):.3f} ({listed});"
              f" req/s ratio median {statistics.median(rps):.3f}")  # fmt: skip
    print(
        f"  the shadow compared {stats['compared']} requests, agreement {stats['agreement']:.3f}, "
        f"dropped {stats['dropped']} (queue full), shadow p99 {stats['shadow_p99_ms']} ms"
    )


def breach_to_rollback(args: argparse.Namespace, tmp: Path) -> None:
    from modelswap.core.store.store import Store
    from tests.models_for_tests import RaisesAfterWarmup

    root = tmp / "watch"
    make_store(root, shadow=False)
    store = Store(root)
    good = store.current("iris")
    bad = store.publish("iris", RaisesAfterWarmup(), example=[[6.0, 2.9, 4.5, 1.5]]).id
    port = free_port()
    env = {"MODELSWAP_MONITOR_FLUSH": "0.2", "PYTHONPATH": str(ROOT)}
    times: list[float] = []
    with modelswap(root, port, env=env):
        url = f"http://127.0.0.1:{port}"
        for _ in range(args.breaches):
            watched = {"version": bad, "watch": 120, "max_error_rate": 0.05, "min_requests": 20}
            code, body = http("POST", f"{url}/v1/models/iris/deploy", watched, TOKEN)
            assert code == 200, body
            first_failure = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                version, ok = predict(url)
                now = time.monotonic()
                if not ok and first_failure is None:
                    first_failure = now
                if ok and version == good and first_failure is not None:
                    times.append(now - first_failure)
                    break
            http("POST", f"{url}/v1/models/iris/watch/reset", {"reason": "bench"}, TOKEN)
    print(f"breach to rollback (watched deploy, every request failing, min_requests 20, flush 0.2 s, poll 1 s), "
          f"{len(times)} breaches: median {statistics.median(times):.2f} s, "
          f"min {min(times):.2f} s, max {max(times):.2f} s")  # fmt: skip


def predict(url: str) -> tuple[str | None, bool]:
    request = urllib.request.Request(f"{url}/v1/models/iris/predict", method="POST",
                                     data=json.dumps({"instances": [[-1.0, 2.9, 4.5, 1.5]]}).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.headers.get("X-Model-Version"), True
    except urllib.error.HTTPError as exc:
        exc.close()
        return None, False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--conc", type=int, default=16, help="concurrent connections")
    parser.add_argument("--breaches", type=int, default=5, help="watched deploys to roll back")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed for the load: apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="modelswap-bench-") as name:
        shadow_overhead(args, Path(name))
        breach_to_rollback(args, Path(name))


if __name__ == "__main__":
    main()
