"""Admin endpoints (bearer token): deploy, rollback, reload, delete a version."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelswap.api.http.auth import allows
from modelswap.api.http.payload import flag_field, json_object, read_json, text_field, version_ref
from modelswap.api.http.responses import json_response
from modelswap.api.http.state import actor_of, app_state, model_of
from modelswap.core.access.roles import DEPLOY
from modelswap.core.delivery.watched_deploy import FIELDS as WATCH_FIELDS
from modelswap.core.delivery.watched_deploy import WatchPlan
from modelswap.core.errors import InvalidInput
from modelswap.core.store.aliases import validate_alias
from modelswap.core.store.ids import validate_version_id

DEPLOY_FIELDS = {"version", "reason", "force", *WATCH_FIELDS}


async def deploy(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes))
    if "version" not in body:
        raise InvalidInput('missing \'version\': POST {"version": "<id>", "reason": "..."}')
    unknown = set(body) - DEPLOY_FIELDS
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}")
    version = version_ref(body["version"])
    reason, force = text_field(body, "reason"), flag_field(body, "force")
    watch = WatchPlan.from_fields(body)
    if watch is not None and not state.settings.monitor:
        raise InvalidInput("a watched deploy is judged on monitoring counts: this server has MODELSWAP_MONITOR=0")
    transition = await run_in_threadpool(
        lambda: state.ops.deploy(model, version, actor=actor_of(request), reason=reason, force=force, watch=watch)
    )
    return json_response({**transition.to_dict(), **({"watch": watch.to_dict()} if watch else {})})


async def rollback(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes, allow_empty=True))
    to = body.get("to")
    to = version_ref(to) if to is not None else None
    reason, force = text_field(body, "reason"), flag_field(body, "force")
    transition = await run_in_threadpool(
        lambda: state.ops.rollback(
            model, to, actor=actor_of(request), reason=reason, force=force, earlier_only=not allows(request, DEPLOY)
        )
    )
    return json_response(transition.to_dict())


async def reload(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    return json_response(await run_in_threadpool(state.ops.reload, model))


async def delete_version(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    version = validate_version_id(request.path_params["version"])
    return json_response(await run_in_threadpool(state.ops.delete, model, version, actor=actor_of(request)))


async def set_alias(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    alias = validate_alias(request.path_params["alias"])
    body = json_object(await read_json(request, state.settings.max_body_bytes))
    if "version" not in body:
        raise InvalidInput('missing \'version\': PUT {"version": "<id or alias>"}')
    version = version_ref(body["version"])
    return json_response(
        await run_in_threadpool(lambda: state.ops.alias_set(model, alias, version, actor=actor_of(request)))
    )


async def delete_alias(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    alias = validate_alias(request.path_params["alias"])
    return json_response(await run_in_threadpool(lambda: state.ops.alias_delete(model, alias, actor=actor_of(request))))
