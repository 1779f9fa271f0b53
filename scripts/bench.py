#!/usr/bin/env python3
"""Serving benchmark: modelswap next to a bare Starlette ceiling, on one machine, in one run.

    python scripts/bench.py [--parts throughput,pipeline,swap,rollback,monitoring] [--duration 10] [--rounds 3]
                            [--conc 16] [--workers 1] [--other-modelswap BIN] [--mlflow BIN] [--mlserver BIN]

Parts (all by default):
  throughput  iris, 1-row requests: req/s, server CPU µs per request (every process of the
              server, from /proc) and p50/p99 for the ceiling (same uvicorn loop and parser),
              the native route and a server that never calls the model on the event loop
              (MODELSWAP_BATCH_INLINE_MS=0; and another modelswap build with --other-modelswap,
              e.g. the previous release, to measure a change), in interleaved rounds; the v2
              route and /invocations against the native route on the same server, each run
              between two native runs (2 x rounds runs of duration/2 s: benchlib.bracketed);
              concurrency 1; --workers N runs both servers with N worker processes
  pipeline    a ColumnTransformer pipeline fitted on a DataFrame, 1-row records: the ceiling
              serving the same file, modelswap, and `mlflow models serve` / MLServer serving
              the same file when --mlflow / --mlserver name their executables
  swap        a deploy on the filesystem -> every process serving it (inotify; poll)
  rollback    rollback call latency (previous version warm); p99 during a swap storm
  monitoring  req/s and server CPU per request with monitoring on (the default) and off
              (MODELSWAP_MONITOR=0): 1-row and 64-row iris, the pipeline (scripts/bench_monitoring.py)
Load comes from wrk (Debian: apt-get install wrk) in a separate process; rounds are
interleaved and medians printed; everything binds 127.0.0.1. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from benchlib import (
    CHURN_RECORD,
    ROOT,
    ROW,
    TOKEN,
    bracketed,
    ceiling,
    churn_pipeline,
    free_port,
    http,
    interleaved,
    lua_script,
    modelswap,
    pct,
    process,
    report,
    wrk,
)

sys.path.insert(0, str(ROOT))
PARTS = ("throughput", "pipeline", "swap", "rollback", "monitoring")


def make_store(tmp: Path) -> tuple[Path, Path, str, str]:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from modelswap.core.store.store import Store

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


def throughput(args: argparse.Namespace, tmp: Path, root: Path, model_file: Path) -> None:
    port, ms_port = free_port(), free_port()
    lua = lua_script(tmp / "post.lua", {"instances": [ROW]})
    lua_v2 = lua_script(
        tmp / "post_v2.lua", {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROW}]}
    )
    targets = {
        "ceiling": (f"http://127.0.0.1:{port}/predict", lua),
        "modelswap": (f"http://127.0.0.1:{ms_port}/v1/models/iris/predict", lua),
    }
    routes = {  # one server's routes, compared with each other in bracketed runs (benchlib.bracketed)
        "modelswap": targets["modelswap"],
        "modelswap v2": (f"http://127.0.0.1:{ms_port}/v2/models/iris/infer", lua_v2),
        "modelswap /invocations": (f"http://127.0.0.1:{ms_port}/invocations", lua),
    }
    workers = args.workers
    with ExitStack() as stack:
        ceiling_proc = stack.enter_context(ceiling(model_file, port, workers=workers))
        env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics-throughput")} if workers > 1 else None
        if env:
            Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(exist_ok=True)
        ms_proc = stack.enter_context(modelswap(root, ms_port, workers=workers, env=env))
        pids = {"ceiling": ceiling_proc.pid, **{name: ms_proc.pid for name in routes}}
        threads_port = free_port()  # every call on the model's worker threads, never on the loop
        threads = stack.enter_context(
            modelswap(root, threads_port, workers=workers, env={**(env or {}), "MODELSWAP_BATCH_INLINE_MS": "0"})
        )
        targets["modelswap threads"] = (f"http://127.0.0.1:{threads_port}/v1/models/iris/predict", lua)
        pids["modelswap threads"] = threads.pid
        if args.other_modelswap:
            other_port = free_port()
            other = stack.enter_context(
                modelswap(root, other_port, workers=workers, binary=args.other_modelswap, env=env)
            )
            targets["other modelswap"] = (f"http://127.0.0.1:{other_port}/v1/models/iris/predict", lua)
            pids["other modelswap"] = other.pid
        runs = interleaved(targets, args.rounds, args.conc, args.duration, pids)
        slice_s = max(2, args.duration // 2)
        on_one = bracketed(routes, "modelswap", 2 * args.rounds, args.conc, slice_s, pids)
        histogram = batch_histogram(f"http://127.0.0.1:{ms_port}/metrics")
        alone = {name: targets[name] for name in ("ceiling", "modelswap", "modelswap threads", "other modelswap")
                 if name in targets}  # fmt: skip
        lone = interleaved(alone, args.rounds, 1, args.duration, pids)
    report(
        f"iris predict, {workers} worker(s), 1-row requests, concurrency {args.conc}, {args.rounds} interleaved "
        f"rounds of {args.duration}s (wrk), medians; server CPU per request (all its processes); "
        "ratio against the ceiling in the same round:",
        runs,
        "ceiling",
    )
    for name in ("modelswap v2", "modelswap /invocations"):
        r = [run["ratio"] for run in on_one[name]]
        cpu = [statistics.median(run["cpu_us"] for run in on_one[n]) for n in (name, "modelswap")]
        p99 = [statistics.median(run["p99_ms"] for run in on_one[n]) for n in (name, "modelswap")]
        errors = sum(run["errors"] + run["non2xx"] for n in (name, "modelswap") for run in on_one[n])
        print(f"  {name} / native route, one server, {len(r)} bracketed runs of {slice_s}s: "
              f"{' / '.join(f'{x:.2f}' for x in r)} (median {statistics.median(r):.2f}; "
              f"CPU {cpu[0]:.0f} against {cpu[1]:.0f} µs/req, p99 {p99[0]:.2f} against {p99[1]:.2f} ms, "
              f"errors {errors})")  # fmt: skip
    if args.other_modelswap:
        ab = [n["rps"] / o["rps"] for n, o in zip(runs["modelswap"], runs["other modelswap"], strict=True)]
        print(f"  this modelswap / {args.other_modelswap} per round: {' / '.join(f'{r:.3f}' for r in ab)} "
              f"(median {statistics.median(ab):.3f})")  # fmt: skip
    print(f"  requests answered per predict call (micro-batching, runs above): {histogram}")
    print(
        f"concurrency 1, {args.rounds} interleaved rounds, medians (p50 ratio against the ceiling in the same round):"
    )
    for name, rs in lone.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("p50_ms", "rps", "cpu_us")}
        ratio = statistics.median(r["p50_ms"] / c["p50_ms"] for r, c in zip(rs, lone["ceiling"], strict=True))
        print(f"  {name:22} p50 {med['p50_ms']:.3f} ms ({ratio:.2f}x), {med['rps']:.0f} req/s, "
              f"{med['cpu_us']:.0f} CPU µs/req")  # fmt: skip


@contextmanager
def mlflow_server(binary: str, model_file: Path, frame: Any, port: int, tmp: Path) -> Iterator[Any]:
    """``mlflow models serve`` on the same pipeline file, saved with a signature (so MLflow
    enforces the schema as modelswap does), in the local environment."""
    python = str(Path(binary).parent / "python")
    model_dir, example = tmp / "mlflow_churn", tmp / "example.json"
    frame.head(5).to_json(example, orient="split", index=False)
    script = (
        "import sys, joblib, pandas as pd, mlflow.sklearn; from mlflow.models import infer_signature; "
        "m = joblib.load(sys.argv[1]); x = pd.read_json(sys.argv[3], orient='split'); "
        "mlflow.sklearn.save_model(m, sys.argv[2], signature=infer_signature(x, m.predict(x)))"
    )
    import subprocess

    subprocess.run(
        [python, "-c", script, str(model_file), str(model_dir), str(example)], check=True, capture_output=True
    )
    cmd = [
        binary,
        "models",
        "serve",
        "-m",
        str(model_dir),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "--env-manager",
        "local",
    ]
    env = {"PATH": f"{Path(binary).parent}:{__import__('os').environ.get('PATH', '')}"}
    with process(cmd, env, f"http://127.0.0.1:{port}/ping", cwd=tmp, timeout=180) as proc:
        yield proc


@contextmanager
def mlserver_server(binary: str, model_file: Path, port: int, tmp: Path) -> Iterator[Any]:
    """MLServer's scikit-learn runtime on the same pipeline file, default settings."""
    folder = tmp / "mlserver_churn"
    folder.mkdir()
    shutil.copy(model_file, folder / "model.joblib")
    settings = {
        "name": "churn",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"},
    }
    (folder / "model-settings.json").write_text(json.dumps(settings))
    env = {
        "MLSERVER_HOST": "127.0.0.1",
        "MLSERVER_HTTP_PORT": str(port),
        "MLSERVER_GRPC_PORT": str(free_port()),
        "MLSERVER_METRICS_PORT": str(free_port()),
    }
    ready = f"http://127.0.0.1:{port}/v2/models/churn/ready"
    with process([binary, "start", str(folder)], env, ready, cwd=tmp, timeout=180) as proc:
        yield proc


def pipeline(args: argparse.Namespace, tmp: Path) -> None:
    import joblib

    from modelswap.core.store.store import Store

    model, frame = churn_pipeline()
    model_file = tmp / "churn.joblib"
    joblib.dump(model, model_file)
    store = Store(tmp / "pipeline-models")
    store.deploy("churn", store.publish("churn", model_file, example=frame.head(5)).id)
    record = {"instances": [CHURN_RECORD]}
    lua = lua_script(tmp / "churn.lua", record)
    port, ms_port = free_port(), free_port()
    targets = {
        "ceiling (DataFrame)": (f"http://127.0.0.1:{port}/predict", lua),
        "modelswap records": (f"http://127.0.0.1:{ms_port}/v1/models/churn/predict", lua),
    }
    with ExitStack() as stack:
        stack.enter_context(ceiling(model_file, port))
        stack.enter_context(modelswap(store.root, ms_port))
        if args.mlflow:
            mlflow_port = free_port()
            stack.enter_context(mlflow_server(args.mlflow, model_file, frame, mlflow_port, tmp))
            body = {"dataframe_records": [CHURN_RECORD]}
            targets["mlflow"] = (f"http://127.0.0.1:{mlflow_port}/invocations", lua_script(tmp / "mlflow.lua", body))
        if args.mlserver:
            mlserver_port = free_port()
            stack.enter_context(mlserver_server(args.mlserver, model_file, mlserver_port, tmp))
            body = {
                "parameters": {"content_type": "pd"},
                "inputs": [
                    {"name": "plan", "datatype": "BYTES", "shape": [1], "data": ["pro"]},
                    {"name": "tenure", "datatype": "INT64", "shape": [1], "data": [14]},
                    {"name": "spend", "datatype": "FP64", "shape": [1], "data": [38.29]},
                ],
            }
            url = f"http://127.0.0.1:{mlserver_port}/v2/models/churn/infer"
            targets["mlserver"] = (url, lua_script(tmp / "mlserver.lua", body))
        for name, (url, lua_file) in targets.items():  # each must answer before it is measured
            body = json.loads(lua_file.read_text().split("wrk.body = '", 1)[1].split("'\n", 1)[0])
            status, answer = http("POST", url, body)
            if status != 200:
                raise RuntimeError(f"{name} answered {status}: {answer}")
        runs = interleaved(targets, args.rounds, args.conc, args.duration)
    report(
        f"ColumnTransformer pipeline (one-hot + scaler + logistic regression), 1 record per request, concurrency "
        f"{args.conc}, {args.rounds} interleaved rounds of {args.duration}s, medians; ratio against the ceiling:",
        runs,
        "ceiling (DataFrame)",
    )


def swap(args: argparse.Namespace, tmp: Path, root: Path, a: str, b: str) -> None:
    from modelswap.core.store.store import Store

    store = Store(root)
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
    with ExitStack() as stack:
        for p in ports:
            stack.enter_context(modelswap(root, p, env=env))
        base = f"http://127.0.0.1:{ports[0]}"
        fleet_lags(base, store.current("iris") or "", 3, timeout=30)
        for _ in range(max(5, args.swaps // 2)):
            target = b if store.current("iris") == a else a
            store.deploy("iris", target, actor="bench")
            poll += fleet_lags(base, target, 3)
            time.sleep(0.37)  # land the next deploy at a different phase of the poll
    print("deploy on the filesystem -> process serving it (symlink mtime to in-memory swap):")
    print(f"  inotify, 2 workers: p50 {1000 * statistics.median(inotify):.1f} ms, p99 {1000 * pct(inotify, 99):.1f} ms "
          f"({len(inotify)} swaps)")  # fmt: skip
    print(f"  poll {interval:g}s, 3 processes: p50 {1000 * statistics.median(poll):.0f} ms, "
          f"p99 {1000 * pct(poll, 99):.0f} ms, max {1000 * max(poll):.0f} ms ({len(poll)} swaps)")  # fmt: skip


def rollback(args: argparse.Namespace, tmp: Path, root: Path, a: str, b: str) -> None:
    from modelswap.core.store.store import Store

    store = Store(root)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    lua = lua_script(tmp / "rollback.lua", {"instances": [ROW]})
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run")
    parser.add_argument("--conc", type=int, default=16, help="concurrent connections")
    parser.add_argument("--swaps", type=int, default=20, help="deploys in the swap and rollback parts")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (throughput: both servers)")
    parser.add_argument("--other-modelswap", metavar="BIN", help="another modelswap executable to measure beside")
    parser.add_argument("--mlflow", metavar="BIN", help="an mlflow executable: serve the pipeline with it too")
    parser.add_argument("--mlserver", metavar="BIN", help="an mlserver executable: serve the pipeline with it too")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        sys.exit(f"unknown part(s): {', '.join(sorted(unknown))}")
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed for the load: apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="modelswap-bench-") as tmp_name:
        tmp = Path(tmp_name)
        root, model_file, a, b = make_store(tmp)
        if "throughput" in parts:
            throughput(args, tmp, root, model_file)
        if "pipeline" in parts:
            pipeline(args, tmp)
        if "swap" in parts:
            swap(args, tmp, root, a, b)
        if "rollback" in parts:
            rollback(args, tmp, root, a, b)
        if "monitoring" in parts:
            import bench_monitoring

            bench_monitoring.measure(args)


if __name__ == "__main__":
    main()
