"""Real ``modelswap serve`` processes on 127.0.0.1 for integration tests; always stopped."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ROOT

TOKEN = "test-admin-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def admin(self) -> httpx.Client:
        return self.client(TOKEN)

    def get_json(self, path: str) -> Any:
        """One GET on a fresh connection (closed at once), decoded."""
        with self.client() as client:
            return client.get(path).json()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serve(
    root: Path,
    *,
    workers: int = 1,
    env: dict[str, str] | None = None,
    ready: bool = True,
    log_dir: Path | None = None,
    prelude: str | None = None,
    open_files: int | None = None,
    wait: bool = True,
) -> Iterator[Server]:
    """Start ``modelswap serve``; wait for /readyz (or /healthz); stop it on exit.
    ``prelude``: Python run in the server process before the command (limits for a test).
    ``open_files``: the server's RLIMIT_NOFILE (soft and hard). ``wait=False``: return at
    once (start several servers together, then ``wait_until_up`` each)."""
    port = free_port()
    log = (log_dir or root.parent) / f"server-{port}.log"
    full_env = {
        **os.environ,
        "MODELSWAP_ROOT": str(root),
        "MODELSWAP_ADMIN_TOKEN": TOKEN,
        "PYTHONPATH": str(ROOT),
        "MODELSWAP_PREDICTION_LOG": str((log_dir or root.parent) / "prediction-log"),
        **(env or {}),
    }
    if "PROMETHEUS_MULTIPROC_DIR" not in (env or {}):
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each server gets its own, or none
    with open(log, "wb") as out:
        args = ["serve", "--port", str(port), "--workers", str(workers)]
        launch = ["-m", "modelswap"]
        if prelude is not None:
            launch = [
                "-c",
                f"{prelude}\nimport sys\nfrom modelswap.api.cli.main import main\nsys.exit(main(sys.argv[1:]))",
            ]
        proc = subprocess.Popen(
            [sys.executable, *launch, *args],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files)))
            if open_files
            else None,
        )
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        if wait:
            wait_until_up(server, "/readyz" if ready else "/healthz")
        yield server
    finally:
        stop(proc)


def wait_until_up(server: Server, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.url, timeout=2) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(f"server exited with {server.proc.returncode}:\n{server.output()}")
            try:
                if client.get(path).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"server not up after {timeout}s:\n{server.output()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the whole group already exited
    proc.wait(timeout=10)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns a truthy value; return it (or the last value)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value
