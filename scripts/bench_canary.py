#!/usr/bin/env python3
"""Canary figures: measured traffic share per fraction (keyed and unkeyed), key agreement
between two servers, and the guard's reaction time (from the request that trips it to
abtest.json gone, and to another server serving stable only).

    python scripts/bench_canary.py [--requests 5000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench import ROW, TOKEN, free_port, http, make_store, modelswap  # noqa: E402


def predict(url: str, key: str | None, row: list[float] = ROW) -> tuple[int, str]:
    req = urllib.request.Request(f"{url}/v1/models/iris/predict", data=json.dumps({"instances": [row]}).encode())
    if key is not None:
        req.add_header("X-Routing-Key", key)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers["X-Model-Variant"]
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    from modelswap.core.store.store import Store
    from tests.models_for_tests import RaisesAfterWarmup

    with tempfile.TemporaryDirectory(prefix="modelswap-canary-") as tmp_name:
        tmp = Path(tmp_name)
        root, _, a, b = make_store(tmp)
        store = Store(root)
        flaky = store.publish("iris", RaisesAfterWarmup(), example=[ROW]).id
        env = {"MODELSWAP_POLL_INTERVAL": "1.0", "PYTHONPATH": str(HERE.parent)}
        p1, p2 = free_port(), free_port()
        u1, u2 = f"http://127.0.0.1:{p1}", f"http://127.0.0.1:{p2}"
        with modelswap(root, p1, workers=2, env=env), modelswap(root, p2, env=env):
            rng = random.Random(1)
            print(f"canary share over {args.requests} requests (2-worker server):")
            for fraction in (0.05, 0.2, 0.5):
                http("POST", f"{u1}/v1/models/iris/canary", {"version": b, "fraction": fraction}, TOKEN)
                time.sleep(2.5)  # every process loads the canary
                keyed = sum(predict(u1, f"user-{rng.getrandbits(64):x}")[1] == "canary" for _ in range(args.requests))
                free = sum(predict(u1, None)[1] == "canary" for _ in range(args.requests))
                print(
                    f"  fraction {fraction:.2f}: keyed {keyed / args.requests:.4f}, no key {free / args.requests:.4f}"
                )
            keys = [f"k{i}" for i in range(500)]
            agree = sum(predict(u1, k)[1] == predict(u2, k)[1] for k in keys)
            print(f"  same variant for a key on both servers: {agree}/{len(keys)}")
            http("DELETE", f"{u1}/v1/models/iris/canary", {}, TOKEN)

            guard = {"max_error_rate": 0.1, "min_requests": 50}
            http("POST", f"{u1}/v1/models/iris/canary", {"version": flaky, "fraction": 0.5, "guard": guard}, TOKEN)
            time.sleep(2.5)
            canary_keys = [k for k in (f"g{i}" for i in range(600)) if predict(u2, k)[1] == "canary"]
            bad_row = [-1.0, 2.9, 4.5, 1.5]
            trip = None
            for key in canary_keys:
                status, variant = predict(u2, key, bad_row)
                if status == 200 and variant == "stable":
                    break
                trip = time.monotonic()
            abtest = root / "iris" / "abtest.json"
            while abtest.exists():
                time.sleep(0.001)
            gone = time.monotonic()
            while predict(u1, canary_keys[0])[1] != "stable":
                time.sleep(0.005)
            other = time.monotonic()
            assert trip is not None
            print(
                f"guard (min_requests 50, max rate 0.1): abtest.json removed {1000 * (gone - trip):.0f} ms after "
                f"the tripping request; the other server all-stable after {1000 * (other - trip):.0f} ms "
                "(poll 1.0 s, inotify on)"
            )
            deadline = time.monotonic() + 5
            while store.history("iris", limit=1)[0].action != "canary_abort" and time.monotonic() < deadline:
                time.sleep(0.01)  # abtest.json goes first, the history entry right after
            last = store.history("iris", limit=1)[0]
            print(f"history: {last.action} by {last.actor}: {last.reason}")


if __name__ == "__main__":
    main()
