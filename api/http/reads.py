"""Read endpoints: models, one model (with what THIS process serves), versions, history, fleet."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelswap.api.http.auth import covers, hide_model, identity_of
from modelswap.api.http.payload import int_query, parse_tag, version_ref
from modelswap.api.http.responses import json_response
from modelswap.api.http.state import app_state, model_of
from modelswap.core.access.roles import ROLES
from modelswap.core.errors import InvalidInput, NotFound


async def list_models(request: Request) -> Response:
    state = app_state(request)
    models = await run_in_threadpool(state.ops.models)
    return json_response({"models": [m for m in models if covers(request, m["model"])]})


async def get_model(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    return json_response(await run_in_threadpool(state.ops.model, model))


async def list_versions(request: Request) -> Response:
    """``?where=accuracy>0.9`` (repeatable) and ``?tag=team=ml`` (repeatable) filter."""
    state, model = app_state(request), model_of(request)
    where = request.query_params.getlist("where")
    tags = dict(parse_tag(t) for t in request.query_params.getlist("tag"))
    return json_response(await run_in_threadpool(lambda: state.ops.versions(model, where=where, tags=tags)))


async def get_version(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    version = version_ref(request.path_params["version"])
    return json_response(await run_in_threadpool(state.ops.version, model, version))


async def lineage(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    version = version_ref(request.path_params["version"])
    return json_response(await run_in_threadpool(state.ops.lineage, model, version))


async def compare(request: Request) -> Response:
    """``?a=<version or alias>&b=<version or alias>``."""
    state, model = app_state(request), model_of(request)
    a, b = request.query_params.get("a"), request.query_params.get("b")
    if a is None or b is None:
        raise InvalidInput("compare needs ?a=<version>&b=<version>")
    a, b = version_ref(a), version_ref(b)
    return json_response(await run_in_threadpool(state.ops.compare, model, a, b))


async def aliases(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    return json_response(await run_in_threadpool(state.ops.aliases, model))


async def model_id(request: Request) -> Response:
    state = app_state(request)
    model_id = request.path_params["model_id"]
    found = await run_in_threadpool(state.ops.model_id, model_id)
    hide_model(request, found["model"], NotFound(f"no version in this store has model id {model_id}"))
    return json_response(found)


async def history(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    limit = int_query(request, "limit")
    return json_response(await run_in_threadpool(lambda: state.ops.history(model, limit=limit)))


async def fleet(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    return json_response(await run_in_threadpool(state.ops.fleet, model))


async def whoami(request: Request) -> Response:
    """The token the request shows: its name, role, models and expiry (the console's
    "signed in as"); ``allowed`` lists the roles it includes."""
    identity = identity_of(request)
    assert identity is not None  # the route always asks for a token
    return json_response({**identity.describe(), "allowed": [r for r in ROLES if identity.allows(r)]})
