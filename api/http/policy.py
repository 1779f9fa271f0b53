"""The delivery policy's endpoints, and Alertmanager's webhook that acts on its ``on_alert`` rule."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelswap.api.http.auth import covers
from modelswap.api.http.payload import json_object, read_json, text_field
from modelswap.api.http.responses import json_response
from modelswap.api.http.state import actor_of, app_state, model_of


async def get_policy(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    return json_response(await run_in_threadpool(state.ops.policy, model))


async def set_policy(request: Request) -> Response:
    """PUT the policy object itself; a ``reason`` beside it goes into history."""
    state, model = app_state(request), model_of(request)
    body = dict(json_object(await read_json(request, state.settings.max_body_bytes)))
    reason = text_field(body, "reason")
    body.pop("reason", None)
    actor = actor_of(request)
    return json_response(await run_in_threadpool(lambda: state.ops.policy_set(model, body, actor=actor, reason=reason)))


async def clear_policy(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes, allow_empty=True))
    reason, actor = text_field(body, "reason"), actor_of(request)
    return json_response(await run_in_threadpool(lambda: state.ops.policy_clear(model, actor=actor, reason=reason)))


async def alertmanager(request: Request) -> Response:
    """Alertmanager's webhook (payload version 4). Always 200 for a well-formed payload, so
    Alertmanager does not retry an alert that was deliberately ignored."""
    state = app_state(request)
    body = await read_json(request, state.settings.max_body_bytes)
    caller = actor_of(request)
    result = await run_in_threadpool(
        lambda: state.ops.alertmanager(body, caller=caller, covers=lambda model: covers(request, model))
    )
    return json_response(result)
