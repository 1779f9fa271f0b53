#!/usr/bin/env python3
"""Serving benchmark: modelswap next to a bare Starlette ceiling, on one machine, in one run.

    python scripts/bench.py [--duration 10] [--conc 16] [--swaps 20]

Prints: predict req/s and p50/p99 at the given concurrency for modelswap (1 worker) and
the ceiling (same uvicorn loop and parser), and their ratio; time from a deploy made on
the filesystem to every process serving it (2 workers with inotify; 3 poll-mode
processes); rollback call latency with the previous version warm; p99 during a swap
storm against steady p99. Load comes from wrk (Debian: apt-get install wrk) in a
separate process; everything binds 127.0.0.1. Nothing here is asserted: figures only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

ROW = [6.0, 2.9, 4.5, 1.5]
TOKEN = "bench-token"
WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '%s'
done = function(summary, latency, requests)
  io.write(string.format('{"requests": %%d, "seconds": %%f, "p50_ms": %%f, "p99_ms": %%f, "errors": %%d, "non2xx": %%d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@contextmanager
def process(cmd: list[str], env: dict[str, str], ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        cmd, env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as r:
                    if r.status == 200:
                        break
            except urllib.error.HTTPError as exc:
                if exc.code == 405:  # the ceiling has no GET route: it answers, so it is up
                    break
                time.sleep(0.1)
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"{cmd} did not come up")
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def modelswap(root: Path, port: int, *, workers: int = 1, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    cmd = [sys.executable, "-m", "modelswap", "serve", "--port", str(port), "--workers", str(workers)]
    full = {
        "MODELSWAP_ROOT": str(root),
        "MODELSWAP_ADMIN_TOKEN": TOKEN,
        "MODELSWAP_LOG_LEVEL": "warning",
        **(env or {}),
    }
    return process(cmd, full, f"http://127.0.0.1:{port}/readyz")


def wrk(url: str, conc: int, duration: int, lua: Path) -> dict:
    warm = ["wrk", "-t1", f"-c{conc}", "-d2s", "--timeout", "5s", "-s", str(lua), url]
    subprocess.run(warm, capture_output=True, check=True)
    cmd = ["wrk", "-t1", f"-c{conc}", f"-d{duration}s", "--timeout", "5s", "-s", str(lua), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["rps"] = result["requests"] / result["seconds"]
    return result


def make_store(tmp: Path) -> tuple[Path, Path, str, str]:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from modelswap.core.store import Store

    data = load_iris()
    model_file = tmp / "iris.joblib"
    joblib.dump(LogisticRegression(max_iter=1000).fit(data.data, data.target), model_file)
    other = LogisticRegression(max_iter=1000, C=0.5).fit(data.data, data.target)
    store = Store(tmp / "models")
    a = store.publish("iris", model_file, example=[ROW]).id
    b = store.publish("iris", other, example=[ROW]).id
    store.deploy("iris", a)
    return store.root, model_file, a, b


def fleet_lags(base: str, version: str, expected: int, timeout: float = 10) -> list[float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, fleet = http("GET", f"{base}/v1/models/iris/fleet")
        procs = fleet["processes"]
        if len(procs) >= expected and all(p["version"] == version for p in procs):
            return [p["last_swap_lag_seconds"] for p in procs]
        time.sleep(0.02)
    raise RuntimeError(f"fleet did not converge on {version}: {fleet}")


def batch_histogram(metrics_url: str) -> str:
    """How many requests each predict call answered, from the server's /metrics."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        lines = response.read().decode().splitlines()
    cumulative = []
    for line in lines:
        if line.startswith("modelswap_batch_requests_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            cumulative.append((float(le), float(line.rsplit(" ", 1)[1])))
    cumulative.sort()
    calls = cumulative[-1][1] if cumulative else 0.0
    if not calls:
        return "no predict calls"
    answered = next(float(x.rsplit(" ", 1)[1]) for x in lines if x.startswith("modelswap_batch_requests_sum"))
    parts, below, low = [], 0.0, 1
    for le, count in cumulative:
        if count > below:
            label = str(low) if le == low else (f"{low}+" if le == float("inf") else f"{low}-{int(le)}")
            parts.append(f"{label}: {(count - below) / calls:.0%}")
        below, low = count, int(le) + 1 if le != float("inf") else low
    return ", ".join(parts) + f"; mean {answered / calls:.1f} over {int(calls)} calls"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--conc", type=int, default=16)
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed for the load: apt-get install -y wrk")
    from modelswap.core.store import Store

    with tempfile.TemporaryDirectory(prefix="modelswap-bench-") as tmp_name:
        tmp = Path(tmp_name)
        root, model_file, a, b = make_store(tmp)
        lua = tmp / "post.lua"
        lua.write_text(WRK_LUA % json.dumps({"instances": [ROW]}))
        store = Store(root)

        # 1. throughput and latency: ceiling, native route, v2 route; interleaved rounds, medians
        port, ms_port = free_port(), free_port()
        ceiling_cmd = [
            sys.executable, "-m", "uvicorn", "ceiling_app:app", "--app-dir", str(HERE), "--host", "127.0.0.1",
            "--port", str(port), "--loop", "asyncio", "--http", "httptools", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        lua_v2 = tmp / "post_v2.lua"
        lua_v2.write_text(
            WRK_LUA % json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROW}]})
        )
        targets = {
            "ceiling": (f"http://127.0.0.1:{port}/predict", lua),
            "modelswap": (f"http://127.0.0.1:{ms_port}/v1/models/iris/predict", lua),
            "modelswap v2": (f"http://127.0.0.1:{ms_port}/v2/models/iris/infer", lua_v2),
        }
        runs: dict[str, list[dict]] = {name: [] for name in targets}
        with (
            process(ceiling_cmd, {"BENCH_MODEL": str(model_file)}, f"http://127.0.0.1:{port}/predict"),
            modelswap(root, ms_port),
        ):
            for round_ in range(args.rounds):
                order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
                for name in order:
                    runs[name].append(wrk(targets[name][0], args.conc, args.duration, targets[name][1]))
            histogram = batch_histogram(f"http://127.0.0.1:{ms_port}/metrics")
            lone = {name: wrk(targets[name][0], 1, args.duration, lua) for name in ("ceiling", "modelswap")}
        med = {
            name: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50_ms", "p99_ms")}
            for name, rs in runs.items()
        }
        errors = {name: sum(r["errors"] + r["non2xx"] for r in rs) for name, rs in runs.items()}
        print(
            f"predict, 1 worker, 1-row requests, concurrency {args.conc}, {args.rounds} interleaved rounds of {args.duration}s (wrk), medians:"
        )
        print(f"  {'':14} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}   req/s per round")
        for name, m in med.items():
            per_round = " / ".join(f"{r['rps']:.0f}" for r in runs[name])
            print(
                f"  {name:14} {m['rps']:>9.0f} {m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f} {errors[name]:>7}   {per_round}"
            )
        ratios = [o["rps"] / c["rps"] for o, c in zip(runs["modelswap"], runs["ceiling"], strict=True)]
        v2_ratios = [v["rps"] / o["rps"] for v, o in zip(runs["modelswap v2"], runs["modelswap"], strict=True)]
        print(
            f"  ratio modelswap / ceiling per round: {' / '.join(f'{r:.2f}' for r in ratios)} (median {statistics.median(ratios):.2f})"
        )
        print(
            f"  ratio v2 / native route per round: {' / '.join(f'{r:.2f}' for r in v2_ratios)} (median {statistics.median(v2_ratios):.2f})"
        )
        print(f"  requests answered per predict call (micro-batching, runs above): {histogram}")
        gap = lone["modelswap"]["p50_ms"] - lone["ceiling"]["p50_ms"]
        print(
            f"concurrency 1: p50 ceiling {lone['ceiling']['p50_ms']:.3f} ms, modelswap {lone['modelswap']['p50_ms']:.3f} ms "
            f"({gap:+.3f} ms); req/s {lone['ceiling']['rps']:.0f} vs {lone['modelswap']['rps']:.0f}"
        )

        # 2. deploy on the filesystem -> every process serving it
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        inotify: list[float] = []
        with modelswap(root, port, workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics")}):
            fleet_lags(base, store.current("iris") or "", 2, timeout=30)
            for _ in range(args.swaps):
                target = b if store.current("iris") == a else a
                store.deploy("iris", target, actor="bench")
                inotify += fleet_lags(base, target, 2)
        poll: list[float] = []
        interval = 1.0
        ports = [free_port() for _ in range(3)]
        env = {"MODELSWAP_WATCH": "poll", "MODELSWAP_POLL_INTERVAL": str(interval)}
        servers = [modelswap(root, p, env=env) for p in ports]
        for s in servers:
            s.__enter__()
        try:
            base = f"http://127.0.0.1:{ports[0]}"
            fleet_lags(base, store.current("iris") or "", 3, timeout=30)
            for _ in range(max(5, args.swaps // 2)):
                target = b if store.current("iris") == a else a
                store.deploy("iris", target, actor="bench")
                poll += fleet_lags(base, target, 3)
                time.sleep(0.37)  # land the next deploy at a different phase of the poll
        finally:
            for s in servers:
                s.__exit__(None, None, None)
        print("deploy on the filesystem -> process serving it (symlink mtime to in-memory swap):")
        print(f"  inotify, 2 workers: p50 {1000 * statistics.median(inotify):.1f} ms, p99 {1000 * pct(inotify, 99):.1f} ms "
              f"({len(inotify)} swaps)")  # fmt: skip
        print(f"  poll {interval:g}s, 3 processes: p50 {1000 * statistics.median(poll):.0f} ms, "
              f"p99 {1000 * pct(poll, 99):.0f} ms, max {1000 * max(poll):.0f} ms ({len(poll)} swaps)")  # fmt: skip

        # 3. rollback call latency (previous version warm) and p99 during a swap storm
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with modelswap(root, port):
            rollbacks = []
            for _ in range(args.swaps):
                current = store.current("iris")
                http("POST", f"{url}/v1/models/iris/deploy", {"version": b if current == a else a}, TOKEN)
                t0 = time.perf_counter()
                status, _ = http("POST", f"{url}/v1/models/iris/rollback", {}, TOKEN)
                rollbacks.append(time.perf_counter() - t0)
                assert status == 200
            steady = wrk(f"{url}/v1/models/iris/predict", args.conc, args.duration, lua)
            stop = threading.Event()

            def storm() -> None:
                while not stop.is_set():
                    current = store.current("iris")
                    http("POST", f"{url}/v1/models/iris/deploy", {"version": b if current == a else a}, TOKEN)
                    stop.wait(0.3)

            thread = threading.Thread(target=storm)
            thread.start()
            stormy = wrk(f"{url}/v1/models/iris/predict", args.conc, args.duration, lua)
            stop.set()
            thread.join()
        print(f"rollback call (previous version warm): p50 {1000 * statistics.median(rollbacks):.1f} ms, "
              f"p99 {1000 * pct(rollbacks, 99):.1f} ms ({len(rollbacks)} calls)")  # fmt: skip
        print(f"p99 steady {steady['p99_ms']:.2f} ms vs during a swap every 0.3 s {stormy['p99_ms']:.2f} ms: "
              f"ratio {stormy['p99_ms'] / steady['p99_ms']:.2f}; errors during storm: "
              f"{stormy['errors'] + stormy['non2xx']}")  # fmt: skip


if __name__ == "__main__":
    main()
