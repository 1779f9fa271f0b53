"""The server's own endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document,
and the version it reports."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelswap.api.http.responses import json_response
from modelswap.api.http.state import app_state
from modelswap.core.metrics import CONTENT_TYPE, render


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    state = app_state(request)
    waiting = state.serving.waiting()
    body: dict[str, object] = {
        "ready": not waiting,
        "models": {name: slot.version for name, slot in state.serving.slots.items()},
    }
    if waiting:
        body["waiting_for"] = waiting
    return json_response(body, status=503 if waiting else 200)


async def metrics(request: Request) -> Response:
    state = app_state(request)
    text = await run_in_threadpool(render, state.metrics.registry, state.settings.multiproc_dir, state.collector)
    return Response(text, media_type=CONTENT_TYPE)


async def openapi(request: Request) -> Response:
    from modelswap.api.http.openapi import OPENAPI  # built from the route table, which names this route

    return json_response(OPENAPI)


def server_version() -> str:
    try:
        return version("modelswap")
    except PackageNotFoundError:
        return "0"
