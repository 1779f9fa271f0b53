"""Canary endpoints: start/update, status, stop, promote."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelswap.api.http.admin import _admin, _text, actor_of
from modelswap.api.http.payload import json_object, read_json
from modelswap.api.http.reads import _model, _reader
from modelswap.api.http.responses import json_response
from modelswap.core.canary import Guard
from modelswap.core.errors import InvalidInput
from modelswap.core.ids import validate_version_id


async def start(request: Request) -> Response:
    state, model = _admin(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes))
    unknown = set(body) - {"version", "fraction", "guard", "reason"}
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}")
    if "version" not in body or "fraction" not in body:
        raise InvalidInput('POST {"version": "<id>", "fraction": 0.1, "guard": {...}} (version and fraction required)')
    version = validate_version_id(body["version"])
    guard = Guard.from_dict(body["guard"]) if body.get("guard") is not None else None
    config = await run_in_threadpool(
        state.start_canary,
        model,
        version,
        body["fraction"],
        guard,
        actor=actor_of(request),
        reason=_text(body, "reason"),
    )
    return json_response(config)


async def status(request: Request) -> Response:
    state, model = _reader(request), _model(request)
    return json_response(await run_in_threadpool(state.canary, model))


async def stop(request: Request) -> Response:
    state, model = _admin(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes, allow_empty=True))
    return json_response(
        await run_in_threadpool(state.stop_canary, model, actor=actor_of(request), reason=_text(body, "reason"))
    )


async def promote(request: Request) -> Response:
    state, model = _admin(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes, allow_empty=True))
    transition = await run_in_threadpool(
        state.promote_canary, model, actor=actor_of(request), reason=_text(body, "reason")
    )
    return json_response(transition.to_dict())
