"""Canary endpoints: start/update, status, stop, promote."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelswap.api.http.payload import flag_field, json_object, read_json, text_field, version_ref
from modelswap.api.http.responses import json_response
from modelswap.api.http.state import actor_of, app_state, model_of
from modelswap.core.delivery.abtest import Guard
from modelswap.core.errors import InvalidInput

START_FIELDS = {"version", "fraction", "guard", "reason", "force"}


async def start(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes))
    unknown = set(body) - START_FIELDS
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}")
    if "version" not in body or "fraction" not in body:
        raise InvalidInput('POST {"version": "<id>", "fraction": 0.1, "guard": {...}} (version and fraction required)')
    version = version_ref(body["version"])
    guard = Guard.from_dict(body["guard"]) if body.get("guard") is not None else None
    reason, force = text_field(body, "reason"), flag_field(body, "force")
    config = await run_in_threadpool(
        lambda: state.ops.canary_start(
            model, version, body["fraction"], guard=guard, actor=actor_of(request), reason=reason, force=force
        )
    )
    return json_response(config.to_dict())


async def status(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    return json_response(await run_in_threadpool(state.ops.canary, model))


async def stop(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes, allow_empty=True))
    reason = text_field(body, "reason")
    config = await run_in_threadpool(state.ops.canary_stop, model, actor=actor_of(request), reason=reason)
    return json_response({"model": model, "stopped": config.version})


async def promote(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes, allow_empty=True))
    reason, force = text_field(body, "reason"), flag_field(body, "force")
    transition = await run_in_threadpool(
        lambda: state.ops.canary_promote(model, actor=actor_of(request), reason=reason, force=force)
    )
    return json_response(transition.to_dict())
