"""Monitoring endpoints: the monitoring view, its thresholds, and feedback (labels)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelswap.api.http.payload import json_object, read_json, version_ref
from modelswap.api.http.responses import json_response
from modelswap.api.http.state import app_state, model_of
from modelswap.core.errors import InvalidInput

REQUEST_ID_MAX = 128


async def view(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    ref = request.query_params.get("version")
    version = version_ref(ref) if ref is not None else None
    return json_response(await run_in_threadpool(lambda: state.monitor.view(model, version=version)))


async def get_config(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    return json_response(await run_in_threadpool(state.ops.monitor_config, model))


async def set_config(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes))
    return json_response(await run_in_threadpool(state.ops.set_monitor_config, model, body))


async def feedback(request: Request) -> Response:
    """``{"request_id": "...", "label": ...}``, or ``{"feedback": [{...}, ...]}``. A label is
    one value, or a list with one per row of a request of several rows."""
    state, model = app_state(request), model_of(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes))
    if "feedback" in body:
        if set(body) != {"feedback"} or not isinstance(body["feedback"], list) or not body["feedback"]:
            raise InvalidInput('POST {"feedback": [{"request_id": "...", "label": ...}, ...]} (a non-empty list)')
        entries = body["feedback"]
    else:
        entries = [body]
    items = [_item(entry, i) for i, entry in enumerate(entries)]
    state.serving.slot(model)  # 404 for a model this server does not serve
    return json_response(await run_in_threadpool(state.monitor.feedback, model, items))


def _item(entry: Any, index: int) -> tuple[str, Any]:
    if not isinstance(entry, dict) or set(entry) != {"request_id", "label"}:
        raise InvalidInput(
            f'feedback #{index}: an object {{"request_id": "...", "label": ...}} with exactly those fields'
        )
    rid, label = entry["request_id"], entry["label"]
    if not isinstance(rid, str) or not valid_request_id(rid):
        raise InvalidInput(f"feedback #{index}: 'request_id' must be the X-Request-Id of a prediction")
    if label is None or isinstance(label, dict) or (isinstance(label, list) and not label):
        raise InvalidInput(f"feedback #{index}: 'label' must be a value, or a non-empty list with one per row")
    return rid, label


def valid_request_id(rid: str) -> bool:
    """1-128 visible ASCII characters without spaces or quotes (safe in a header and a log)."""
    return 0 < len(rid) <= REQUEST_ID_MAX and rid.isascii() and rid.isprintable() and not any(c in rid for c in ' "\\')
