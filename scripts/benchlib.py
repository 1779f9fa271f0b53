"""Shared parts of the benchmarks: servers on 127.0.0.1 that are always stopped, wrk runs,
small HTTP calls, the models the benchmarks serve, and the statistics they print."""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOKEN = "bench-token"
ROW = [6.0, 2.9, 4.5, 1.5]
CHURN_RECORD = {"plan": "pro", "tenure": 14, "spend": 38.29}
WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%s
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


def lua_script(path: Path, body: Any, headers: dict[str, str] | None = None) -> Path:
    extra = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items())
    path.write_text(WRK_LUA % (extra, json.dumps(body)))
    return path


def http(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
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
def process(
    cmd: list[str], env: dict[str, str], ready_url: str, *, cwd: Path = ROOT, timeout: float = 120
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process, up once ``ready_url`` answers (a 405 counts: it answers), always stopped."""
    proc = subprocess.Popen(
        cmd, env={**os.environ, **env}, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as r:
                    if r.status == 200:
                        break
            except urllib.error.HTTPError as exc:
                if exc.code == 405:
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


def modelswap(
    root: Path, port: int, *, workers: int = 1, env: dict[str, str] | None = None, binary: str | None = None
) -> Any:
    """``modelswap serve`` on the store ``root`` (``binary``: another installed modelswap)."""
    cmd = [binary] if binary else [sys.executable, "-m", "modelswap"]
    cmd += ["serve", "--port", str(port), "--workers", str(workers)]
    full = {
        "MODELSWAP_ROOT": str(root),
        "MODELSWAP_ADMIN_TOKEN": TOKEN,
        "MODELSWAP_LOG_LEVEL": "warning",
        **(env or {}),
    }
    return process(cmd, full, f"http://127.0.0.1:{port}/readyz")


def ceiling(model_file: Path, port: int, *, workers: int = 1) -> Any:
    """The thinnest Starlette app around the same model file (scripts/ceiling_app.py);
    several workers share one socket (uvicorn's own supervisor)."""
    cmd = [
        sys.executable, "-m", "uvicorn", "ceiling_app:app", "--app-dir", str(HERE), "--host", "127.0.0.1",
        "--port", str(port), "--loop", "asyncio", "--http", "httptools", "--no-access-log", "--log-level", "warning",
        "--workers", str(workers),
    ]  # fmt: skip
    return process(cmd, {"BENCH_MODEL": str(model_file)}, f"http://127.0.0.1:{port}/predict")


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU of a server: every process of its session (``process`` starts
    each server as a session leader, so its workers and their children are in it), plus
    what exited children left in their parents' cutime/cstime."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[3]) == pid:  # the session id (field 6 of stat)
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / tick


def session_memory(leader: int) -> tuple[float, float, int]:
    """(RSS MiB, PSS MiB, processes) summed over every process in the server's session."""
    rss = pss = 0
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3]) != leader:
                continue
            rollup = (entry / "smaps_rollup").read_text()
        except (OSError, IndexError, ValueError):
            continue
        fields = {line.split(":")[0]: int(line.split()[1]) for line in rollup.splitlines()[1:] if "kB" in line}
        rss += fields.get("Rss", 0)
        pss += fields.get("Pss", 0)
        count += 1
    return rss / 1024, pss / 1024, count


def wrk(url: str, conc: int, duration: int, lua: Path, *, pid: int | None = None, warm: bool = True) -> dict[str, Any]:
    """One wrk run, after a 2 s warm-up unless ``warm`` is False; with ``pid`` (a server
    started by ``process``), also the server's CPU µs per answered request during the
    measured run."""
    if warm:
        warm_up = ["wrk", "-t1", f"-c{conc}", "-d2s", "--timeout", "5s", "-s", str(lua), url]
        subprocess.run(warm_up, capture_output=True, check=True)
    cmd = ["wrk", "-t1", f"-c{conc}", f"-d{duration}s", "--timeout", "5s", "-s", str(lua), url]
    cpu0 = server_cpu_seconds(pid) if pid is not None else 0.0
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cpu = server_cpu_seconds(pid) - cpu0 if pid is not None else float("nan")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["rps"] = result["requests"] / result["seconds"]
    result["cpu_us"] = 1e6 * cpu / max(1, result["requests"])
    return result


def interleaved(
    targets: dict[str, tuple[str, Path]],
    rounds: int,
    conc: int,
    duration: int,
    pids: dict[str, int] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every target once per round; odd rounds in reverse order, so a pair sees the same
    noise, and every second round starts one target later, so no target keeps the ends
    or its neighbours (a run pays for what the one before left behind: with a fixed order,
    one target measured twice on the same server differed by 13 %).
    ``pids`` names each target's server process, for its CPU per request."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    names = list(targets)
    for round_ in range(rounds):
        shift = (round_ // 2) % len(names)
        order = names[shift:] + names[:shift]
        if round_ % 2:
            order.reverse()
        for name in order:
            url, lua = targets[name]
            runs[name].append(wrk(url, conc, duration, lua, pid=(pids or {}).get(name)))
    return runs


def bracketed(
    targets: dict[str, tuple[str, Path]],
    base: str,
    slices: int,
    conc: int,
    seconds: int,
    pids: dict[str, int] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Targets on one server against ``base``, in short runs after a warm-up of each:
    base, the others (in turned order every slice), base again, and so on. Each run of another target gets
    ``ratio``: its req/s over the mean of the two base runs either side of it.

    The machine's speed drifts: one route alone, in consecutive 5 s runs, went 20.3k,
    15.4k, 19.7k req/s, its server spending 25 % more CPU per request in the slow
    stretch. Runs 8 s apart (interleaved) see different machines; a run bracketed by
    base runs seconds away sees the same one, and a steady drift cancels."""
    others = [name for name in targets if name != base]

    def run(name: str) -> dict[str, Any]:
        url, lua = targets[name]
        return wrk(url, conc, seconds, lua, pid=(pids or {}).get(name), warm=False)

    for name in targets:  # warm, unmeasured
        url, lua = targets[name]
        wrk(url, conc, 2, lua, warm=False)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    before = run(base)
    runs[base].append(before)
    for slice_ in range(slices):
        now = {name: run(name) for name in (others if slice_ % 2 == 0 else others[::-1])}
        after = run(base)
        runs[base].append(after)
        for name, result in now.items():
            result["ratio"] = result["rps"] / ((before["rps"] + after["rps"]) / 2)
            runs[name].append(result)
        before = after
    return runs


def report(title: str, runs: dict[str, list[dict[str, Any]]], baseline: str) -> None:
    """Medians per target and the per-round ratio against ``baseline``."""
    print(title)
    print(
        f"  {'':22} {'req/s':>9} {'CPU µs/req':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'ratio':>6}"
        "   req/s per round"
    )
    for name, rs in runs.items():
        med = {k: statistics.median(r.get(k, float("nan")) for r in rs) for k in ("rps", "cpu_us", "p50_ms", "p99_ms")}
        errors = sum(r["errors"] + r["non2xx"] for r in rs)
        ratio = statistics.median(r["rps"] / b["rps"] for r, b in zip(rs, runs[baseline], strict=True))
        per_round = " / ".join(f"{r['rps']:.0f}" for r in rs)
        print(
            f"  {name:22} {med['rps']:>9.0f} {med['cpu_us']:>10.0f} {med['p50_ms']:>8.2f} {med['p99_ms']:>8.2f} {errors:>7} {ratio:>6.2f}"
            f"   {per_round}"
        )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def churn_pipeline() -> tuple[Any, Any]:
    """A ColumnTransformer pipeline fitted on a DataFrame: one-hot plan, scaled tenure
    and spend, logistic regression. Returns (pipeline, frame)."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    plans = rng.choice(["basic", "pro", "enterprise"], size=2000)
    tenure = rng.integers(1, 60, size=2000)
    spend = np.round(rng.gamma(2.0, 20.0, size=2000), 2)
    frame = pd.DataFrame({"plan": plans, "tenure": tenure, "spend": spend})
    labels = np.where(((plans == "basic") & (tenure < 20)) | (spend > 80), "churned", "stayed")
    encode = ColumnTransformer(
        [("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]), ("num", StandardScaler(), ["tenure", "spend"])]
    )
    return make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(frame, labels), frame
