"""The native inference routes: parse the body, ask the inference plane, render the answer."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from modelswap.api.http.observe import request_id
from modelswap.api.http.payload import header_value, parse_predict, read_json
from modelswap.api.http.responses import answer_response, json_ready
from modelswap.api.http.state import AppState, app_state
from modelswap.core.serving.inference import Target
from modelswap.core.store.ids import validate_model_name


async def predict(request: Request) -> Response:
    state = app_state(request)
    model = validate_model_name(request.path_params["model"])
    return await _predict(request, state, await state.inference.target(model))


async def predict_pinned(request: Request) -> Response:
    state = app_state(request)
    model = validate_model_name(request.path_params["model"])
    return await _predict(request, state, await state.inference.target(model, request.path_params["version"]))


async def predict_default(request: Request) -> Response:
    state = app_state(request)
    return await _predict(request, state, await state.inference.target(state.inference.default_model()))


async def _predict(request: Request, state: AppState, target: Target) -> Response:
    start = time.perf_counter()
    payload = await read_json(request, state.settings.max_body_bytes)
    table, method = parse_predict(payload)
    rid = request_id(request)
    answer = await state.inference.predict(
        target, table, method, routing_key=header_value(request, b"x-routing-key"), request_id=rid, start=start
    )
    snap, result = answer.snapshot, answer.result
    body: dict[str, Any] = {"model": snap.model, "version": snap.version, "variant": snap.variant}
    body["predictions"] = json_ready(result)
    classes = snap.signature.output.classes if snap.signature.output is not None else None
    if method != "predict" and classes is not None:
        body["classes"] = list(classes)
    return answer_response(body, snap.version, snap.variant, rid)
