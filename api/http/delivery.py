"""Progressive delivery endpoints: shadow, stepped rollout, watched deploy (status, reset)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelswap.api.http.payload import flag_field, json_object, read_json, text_field, version_ref
from modelswap.api.http.responses import json_response
from modelswap.api.http.state import actor_of, app_state, model_of
from modelswap.core.delivery.driver import rollout_view, shadow_view, watch_view
from modelswap.core.delivery.rollout import PLAN_FIELDS
from modelswap.core.errors import InvalidInput
from modelswap.core.store import history

SHADOW_FIELDS = {"version", "fraction", "reason", "force"}
ROLLOUT_FIELDS = PLAN_FIELDS | {"reason", "force"}


def _unknown(body: dict[str, object], allowed: set[str]) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}")


# -- shadow ------------------------------------------------------------------------------
async def shadow_start(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes))
    _unknown(body, SHADOW_FIELDS)
    if "version" not in body:
        raise InvalidInput('POST {"version": "<id>", "fraction": 1.0} (version required)')
    version, fraction = version_ref(body["version"]), body.get("fraction", 1.0)
    reason, force = text_field(body, "reason"), flag_field(body, "force")
    await run_in_threadpool(
        lambda: state.ops.shadow_start(model, version, fraction, actor=actor_of(request), reason=reason, force=force)
    )
    return json_response(await _shadow(request, model))


async def shadow_status(request: Request) -> Response:
    return json_response(await _shadow(request, model_of(request)))


async def _shadow(request: Request, model: str) -> dict[str, object]:
    state = app_state(request)
    stale = state.settings.monitor_retention
    return await run_in_threadpool(lambda: shadow_view(state.store, model, stale=stale, runner=state.shadows))


async def shadow_stop(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes, allow_empty=True))
    reason = text_field(body, "reason")
    view = await _shadow(request, model)  # the comparison as it stood, returned with the stop
    config = await run_in_threadpool(lambda: state.ops.shadow_stop(model, actor=actor_of(request), reason=reason))
    return json_response({**view, "running": False, "stopped": config.version})


# -- rollout -----------------------------------------------------------------------------
async def rollout_start(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    _needs_monitoring(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes))
    _unknown(body, ROLLOUT_FIELDS)
    if "version" not in body:
        raise InvalidInput('POST {"version": "<id>", "steps": [5, 25, 50, 100], ...} (version required)')
    plan = {k: v for k, v in body.items() if k in PLAN_FIELDS}
    plan["version"] = version_ref(body["version"])
    reason, force = text_field(body, "reason"), flag_field(body, "force")
    await run_in_threadpool(
        lambda: state.ops.rollout_start(model, plan, actor=actor_of(request), reason=reason, force=force)
    )
    return json_response(await run_in_threadpool(rollout_view, state.store, model))


async def rollout_status(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    return json_response(await run_in_threadpool(rollout_view, state.store, model))


async def _rollout_change(request: Request, action: str) -> Response:
    state, model = app_state(request), model_of(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes, allow_empty=True))
    reason = text_field(body, "reason")
    await run_in_threadpool(lambda: state.ops.rollout_change(model, action, actor=actor_of(request), reason=reason))
    return json_response(await run_in_threadpool(rollout_view, state.store, model))


async def rollout_pause(request: Request) -> Response:
    return await _rollout_change(request, history.ROLLOUT_PAUSE)


async def rollout_resume(request: Request) -> Response:
    return await _rollout_change(request, history.ROLLOUT_RESUME)


async def rollout_abort(request: Request) -> Response:
    return await _rollout_change(request, history.ROLLOUT_ABORT)


# -- watch ---------------------------------------------------------------------------------
async def watch_status(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    return json_response(await run_in_threadpool(watch_view, state.store, model))


async def watch_reset(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes, allow_empty=True))
    reason = text_field(body, "reason")
    await run_in_threadpool(lambda: state.ops.watch_reset(model, actor=actor_of(request), reason=reason))
    return json_response(await run_in_threadpool(watch_view, state.store, model))


def _needs_monitoring(request: Request) -> None:
    if not app_state(request).settings.monitor:
        raise InvalidInput("rollouts and watched deploys are judged on monitoring counts: this server has "
                           "MODELSWAP_MONITOR=0")  # fmt: skip
