"""Admin endpoints (bearer token): deploy, rollback, reload, delete a version."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelswap.api.http.auth import require_admin
from modelswap.api.http.payload import json_object, read_json
from modelswap.api.http.responses import json_response
from modelswap.api.http.state import AppState
from modelswap.core.errors import InvalidInput
from modelswap.core.ids import validate_model_name, validate_version_id


def _admin(request: Request) -> tuple[AppState, str]:
    state: AppState = request.app.state.modelswap
    require_admin(request, state.token)
    return state, validate_model_name(request.path_params["model"])


def actor_of(request: Request) -> str:
    client = request.client.host if request.client else "unknown"
    return f"api:{client}"


def _text(body: dict[str, object], key: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise InvalidInput(f"'{key}' must be a string")
    return value[:1000]


async def deploy(request: Request) -> Response:
    state, model = _admin(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes))
    if "version" not in body:
        raise InvalidInput('missing \'version\': POST {"version": "<id>", "reason": "..."}')
    version = validate_version_id(body["version"])
    transition = await run_in_threadpool(
        state.deploy, model, version, actor=actor_of(request), reason=_text(body, "reason")
    )
    return json_response(transition.to_dict())


async def rollback(request: Request) -> Response:
    state, model = _admin(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes, allow_empty=True))
    to = body.get("to")
    if to is not None:
        to = validate_version_id(to)
    transition = await run_in_threadpool(
        state.rollback, model, to, actor=actor_of(request), reason=_text(body, "reason")
    )
    return json_response(transition.to_dict())


async def reload(request: Request) -> Response:
    state, model = _admin(request)
    return json_response(await run_in_threadpool(state.reload, model))


async def delete_version(request: Request) -> Response:
    state, model = _admin(request)
    version = validate_version_id(request.path_params["version"])
    await run_in_threadpool(state.store.delete_version, model, version, actor=actor_of(request))
    state.metrics.admin_actions.labels(model, "delete", "success").inc()
    return json_response({"model": model, "deleted": version})
