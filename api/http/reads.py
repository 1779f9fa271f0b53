"""Read endpoints: models, one model (with what THIS process serves), versions, history, fleet."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelswap.api.http.auth import reader
from modelswap.api.http.payload import int_query
from modelswap.api.http.responses import json_response
from modelswap.api.http.state import model_of
from modelswap.core.ids import validate_version_id


async def list_models(request: Request) -> Response:
    state = reader(request)
    return json_response({"models": await run_in_threadpool(state.ops.models)})


async def get_model(request: Request) -> Response:
    state, model = reader(request), model_of(request)
    return json_response(await run_in_threadpool(state.ops.model, model))


async def list_versions(request: Request) -> Response:
    state, model = reader(request), model_of(request)
    return json_response(await run_in_threadpool(state.ops.versions, model))


async def get_version(request: Request) -> Response:
    state, model = reader(request), model_of(request)
    version = validate_version_id(request.path_params["version"])
    return json_response(await run_in_threadpool(state.ops.version, model, version))


async def history(request: Request) -> Response:
    state, model = reader(request), model_of(request)
    limit = int_query(request, "limit")
    return json_response(await run_in_threadpool(lambda: state.ops.history(model, limit=limit)))


async def fleet(request: Request) -> Response:
    state, model = reader(request), model_of(request)
    return json_response(await run_in_threadpool(state.ops.fleet, model))
