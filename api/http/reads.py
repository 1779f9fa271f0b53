"""Read endpoints: models, one model (with what THIS process serves), versions, history, fleet."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelswap.api.http.auth import require_admin
from modelswap.api.http.responses import json_response
from modelswap.api.http.state import AppState
from modelswap.core.errors import VersionNotFound
from modelswap.core.fleet import process_id
from modelswap.core.ids import validate_model_name, validate_version_id


def _reader(request: Request) -> AppState:
    state: AppState = request.app.state.modelswap
    if state.settings.protect_reads:
        require_admin(request, state.token)
    return state


def _model(request: Request) -> str:
    return validate_model_name(request.path_params["model"])


async def list_models(request: Request) -> Response:
    state = _reader(request)

    def collect() -> list[dict[str, Any]]:
        return [state.store.status(m).to_dict() for m in state.store.models()]

    return json_response({"models": await run_in_threadpool(collect)})


async def get_model(request: Request) -> Response:
    state, model = _reader(request), _model(request)

    def collect() -> dict[str, Any]:
        data = state.store.status(model).to_dict()
        slot = state.serving.slots.get(model)
        data["this_process"] = {"process": process_id(), "served": slot is not None, **(slot.info() if slot else {})}
        data["warnings"] = state.store.warnings(model, data["current"])
        return data

    return json_response(await run_in_threadpool(collect))


async def list_versions(request: Request) -> Response:
    state, model = _reader(request), _model(request)

    def collect() -> dict[str, Any]:
        status = state.store.status(model)
        versions = [r.to_dict() for r in reversed(state.store.registry(model).versions())]
        for v in versions:
            v["live"] = [m for m, hit in (("current", status.current), ("canary", status.canary)) if hit == v["id"]]
        return {"model": model, "current": status.current, "canary": status.canary, "versions": versions}

    return json_response(await run_in_threadpool(collect))


async def get_version(request: Request) -> Response:
    state, model = _reader(request), _model(request)
    version = validate_version_id(request.path_params["version"])

    def collect() -> dict[str, Any]:
        record = state.store.registry(model).get(version)
        if record is None:
            raise VersionNotFound(f"model {model} has no version {version}")
        return {
            **record.to_dict(),
            "manifest": state.store.manifest(model, version).to_dict(),
            "metrics": state.store.metrics(model, version),
        }

    return json_response(await run_in_threadpool(collect))


async def history(request: Request) -> Response:
    state, model = _reader(request), _model(request)

    def collect() -> dict[str, Any]:
        entries = [e.to_dict() for e in reversed(state.store.registry(model).history())]
        return {"model": model, "history": entries}

    return json_response(await run_in_threadpool(collect))


async def fleet(request: Request) -> Response:
    state, model = _reader(request), _model(request)
    return json_response({"model": model, **await run_in_threadpool(state.fleet, model)})
