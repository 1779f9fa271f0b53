"""``modelswap serve`` and ``modelswap demo``: run the HTTP server with uvicorn."""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from modelswap.api.http.workers import listening_socket, run_workers
from modelswap.core.errors import InvalidInput, ModelswapError
from modelswap.core.settings import Settings
from modelswap.core.store.clock import default_actor
from modelswap.core.store.ids import validate_model_name

logger = logging.getLogger(__name__)

Result = tuple[Any, str]


def add_commands(command: Callable[..., argparse.ArgumentParser], root: argparse.ArgumentParser) -> None:
    """Register ``serve`` and ``demo``: both run here, on the store, so neither takes --url."""
    p = command("serve", cmd_serve, "serve the store's models over HTTP", parents=[root])
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in containers)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument("--workers", type=int, default=1, help="worker processes (each its own SO_REUSEPORT socket)")
    p.add_argument("--models", help="comma-separated models to serve (default: MODELSWAP_MODELS, else all)")

    p = command(
        "demo", cmd_demo, "create a demo store (model iris, two versions) if none exists, then serve it", parents=[root]
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")


def cmd_serve(args: argparse.Namespace, settings: Settings) -> Result:
    if args.models:
        names = [validate_model_name(m.strip()) for m in args.models.split(",") if m.strip()]
        os.environ["MODELSWAP_MODELS"] = ",".join(names)
    run_server(settings, host=args.host, port=args.port, workers=args.workers)
    return None, ""


def cmd_demo(args: argparse.Namespace, settings: Settings) -> Result:
    from modelswap.core.store.store import Store
    from modelswap.core.training.fit import retrain

    store = Store.from_settings(settings)
    if not store.models():
        print(f"creating a demo store in {settings.root} ...", flush=True)
        actor = default_actor()
        first = retrain(store, "iris", dataset="iris", estimator="logreg", deploy=True, actor=actor)
        second = retrain(store, "iris", dataset="iris", estimator="random_forest", actor=actor)
        print(f"  iris {first.version}  logreg         accuracy={first.metrics['accuracy']}  (deployed)")
        print(f"  iris {second.version}  random_forest  accuracy={second.metrics['accuracy']}")
    token_file = ensure_token(settings)
    settings = replace(settings, admin_token_file=token_file) if token_file else settings
    base = f"http://{args.host}:{args.port}"
    versions = store.registry("iris").ids() if "iris" in store.models() else []
    other = next((v for v in reversed(versions) if v != store.current("iris")), "<version>")
    auth = (
        f'-H "Authorization: Bearer $(cat {token_file})"'
        if token_file
        else '-H "Authorization: Bearer $MODELSWAP_ADMIN_TOKEN"'
    )
    print(
        f"""
Try it (in another terminal):
  curl -s {base}/v1/models/iris/predict -d '{{"instances": [[6.0, 2.9, 4.5, 1.5]]}}'
  curl -s {base}/v1/models/iris
  curl -s -X POST {base}/v1/models/iris/deploy {auth} -d '{{"version": "{other}"}}'
  curl -s -X POST {base}/v1/models/iris/rollback {auth}
  curl -s {base}/metrics | grep modelswap_serving_version_info
""",
        flush=True,
    )
    run_server(settings, host=args.host, port=args.port, workers=1)
    return None, ""


def ensure_token(settings: Settings) -> Path | None:
    """With no token configured (neither an admin token nor a tokens file), generate
    ``<root>/.admin-token`` and point workers at it. On a read-only store there is none to
    generate: the server then serves predictions and reads with the admin API off
    (core.access.admin_token.admin_off), and says so in one line."""
    if settings.admin_token or settings.admin_token_file:
        return settings.admin_token_file
    if settings.tokens_file is not None or settings.tokens_path.exists():
        print(f"named tokens: {settings.tokens_path}", flush=True)
        return None
    from modelswap.core.access.admin_token import READ_ONLY, ensure_token_file

    try:
        path = ensure_token_file(settings.root).resolve()
    except OSError as exc:
        if exc.errno not in READ_ONLY:
            raise
        logger.warning(
            "admin API off: no MODELSWAP_ADMIN_TOKEN or MODELSWAP_ADMIN_TOKEN_FILE is set and the store is read-only "
            "(cannot create %s: %s); serving predictions and reads, admin routes answer 503 admin_disabled",
            exc.filename,
            exc.strerror,
        )
        return None
    os.environ["MODELSWAP_ADMIN_TOKEN_FILE"] = str(path)
    print(f"admin token: {path} (mode 0600)", flush=True)
    return path


def run_server(settings: Settings, *, host: str, port: int, workers: int) -> None:
    import uvicorn

    from modelswap.api.http.connections import ServerConfig
    from modelswap.core.metrics import reset_multiproc_dir

    if workers < 1:
        raise InvalidInput(f"--workers must be at least 1, got {workers}")
    # Bind first, not in uvicorn: a busy port is then one clear error line and exit 1,
    # before anything is written.
    sock = listening_socket(host, port) if workers == 1 else None
    ensure_token(settings)
    os.environ["MODELSWAP_ROOT"] = str(settings.root.resolve())
    if workers > 1 and settings.multiproc_dir is None:
        # Each worker writes its metrics to files here; /metrics aggregates them.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="modelswap-metrics-")
    multiproc = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc:
        reset_multiproc_dir(Path(multiproc))
    # ServerConfig: uvicorn's httptools protocol plus a header deadline and a connection
    # limit, and body timeouts (MODELSWAP_*_TIMEOUT, MODELSWAP_MAX_CONNECTIONS).
    config = ServerConfig(
        "modelswap.api.http.app:app_from_env",
        settings=settings,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # asyncio + httptools: same throughput as uvloop for CPU-bound predict,
        # without the p99 tail uvloop showed at high concurrency in our load tests.
        loop="asyncio",
        access_log=False,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=10,
    )
    if sock is not None:
        server = uvicorn.Server(config)
        server.run(sockets=[sock])
        if not server.started:
            raise ModelswapError("the server did not start; the log above says why")
        return
    run_workers(config, workers)
