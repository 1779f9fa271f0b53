"""Open Inference Protocol v2 (KServe / Triton / MLServer), REST side, with modelswap's
hot swap, canary routing (X-Routing-Key), version pinning and metrics."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelswap.api.http.health import server_version
from modelswap.api.http.observe import request_id
from modelswap.api.http.payload import METHODS, header_value, read_body
from modelswap.api.http.responses import answer_response, json_response, rendered_answer
from modelswap.api.http.state import AppState, app_state
from modelswap.api.http.tensors import (
    HEADER_LENGTH,
    HEADER_LENGTH_RAW,
    NAMES,
    decode_input,
    encode_outputs,
    json_tensor,
    split_body,
)
from modelswap.core.errors import InvalidInput, VersionNotFound
from modelswap.core.schema.inputs import Table
from modelswap.core.schema.signature import BOOLEAN, DATETIME, DOUBLE, LONG, STRING, Signature
from modelswap.core.serving.inference import Target
from modelswap.core.serving.snapshot import Snapshot
from modelswap.core.store.ids import validate_model_name

INPUT_NAME = "input-0"


async def _target(request: Request) -> tuple[AppState, Target]:
    state = app_state(request)
    model = validate_model_name(request.path_params["model"])
    return state, await state.inference.target(model, request.path_params.get("version"))


async def server_metadata(request: Request) -> Response:
    return json_response({"name": "modelswap", "version": server_version(), "extensions": ["binary_tensor_data"]})


async def live(request: Request) -> Response:
    return json_response({"live": True})


async def ready(request: Request) -> Response:
    ok = app_state(request).serving.ready()
    return json_response({"ready": ok}, status=200 if ok else 503)


async def model_ready(request: Request) -> Response:
    state, target = await _target(request)
    slot, pinned = target.slot, target.version
    name = slot.name
    if pinned is not None and pinned not in await run_in_threadpool(lambda: state.store.registry(name)):
        raise VersionNotFound(f"model {name} has no version {pinned}")
    loaded = slot.version is not None if pinned is None else pinned in (slot.version, slot.canary_version)
    if not loaded:
        return json_response({"error": f"{name} {pinned or ''} is not loaded".replace("  ", " ")}, status=400)
    return json_response({"name": name, "ready": True})


V2_TYPES = {DOUBLE: "FP64", LONG: "INT64", BOOLEAN: "BOOL", STRING: "BYTES", DATETIME: "BYTES"}


def input_metadata(signature: Signature) -> list[dict[str, Any]]:
    """The signature as v2 inputs: one tensor per named column, else one [rows, features]."""
    if not signature.named:
        return [{"name": INPUT_NAME, "datatype": "FP64", "shape": [-1, signature.width]}]
    return [
        {
            "name": c.name,
            "datatype": V2_TYPES[c.type],
            "shape": [-1],
            "parameters": {"nullable": c.nullable, "required": c.required},
        }
        for c in signature.columns
    ]


async def model_metadata(request: Request) -> Response:
    state, target = await _target(request)
    slot, pinned = target.slot, target.version
    snap = await run_in_threadpool(slot.pinned, pinned) if pinned else slot.snapshot()
    estimator = snap.loaded.estimator
    outputs = []
    classes = getattr(estimator, "classes_", None)
    label_type = (
        "BYTES"
        if classes is not None and np.asarray(classes).dtype.kind in "OUS"
        else ("INT64" if classes is not None else "FP64")
    )
    for method in sorted(snap.loaded.methods):
        if method == "predict":
            outputs.append({"name": "predict", "datatype": label_type, "shape": [-1]})
        else:
            width = len(classes) if classes is not None else -1
            outputs.append({"name": method, "datatype": "FP64", "shape": [-1, width]})
    versions = await run_in_threadpool(lambda: state.store.registry(slot.name).ids())
    return json_response(
        {
            "name": slot.name,
            "versions": versions,
            "platform": "sklearn",
            "inputs": input_metadata(snap.signature),
            "outputs": outputs,
            "parameters": {"version": snap.version, "estimator": snap.loaded.manifest.estimator},
        }
    )


DEFAULT_OUTPUTS = (("predict", False),)


def _requested(payload: dict[str, Any]) -> Sequence[tuple[str, bool]]:
    """(output name, as binary) of each output asked for; the first is the batched one."""
    params = payload.get("parameters")
    outputs = payload.get("outputs")
    if outputs is None and not params:
        return DEFAULT_OUTPUTS
    params = params or {}
    default_binary = bool(params.get("binary_data_output", False)) if isinstance(params, dict) else False
    if outputs is None:
        return [("predict", default_binary)]
    if not isinstance(outputs, list) or not outputs:
        raise InvalidInput("'outputs' must be a non-empty list of {\"name\": ...}")
    wanted = []
    for out in outputs:
        name = out.get("name") if isinstance(out, dict) else None
        if name not in METHODS:
            raise InvalidInput(f"unknown output {name!r}: use one of {', '.join(METHODS)}")
        out_params = out.get("parameters") or {}
        if not isinstance(out_params, dict):
            raise InvalidInput(f"output {name!r}: 'parameters' must be an object")
        wanted.append((name, bool(out_params.get("binary_data", default_binary))))
    return wanted


def input_table(signature: Signature, tensors: list[tuple[str, np.ndarray]]) -> Table:
    """One [rows, features] tensor (by position), or one tensor per column named after it."""
    if len(tensors) == 1:
        name, values = tensors[0]
        if name not in signature.name_set:
            if values.ndim == 1:
                values = values.reshape(1, -1)  # [features]: one row
            return Table(array=values) if values.dtype.kind != "O" else Table(rows=values.tolist())
    columns: dict[str, list[Any]] = {}
    for name, values in tensors:
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            shape = list(values.shape)
            raise InvalidInput(f"input {name!r}: a column tensor has shape [rows] or [rows, 1], got {shape}")
        if name in columns:
            raise InvalidInput(f"input {name!r} is sent twice")
        columns[name] = values.tolist()
    if len({len(v) for v in columns.values()}) != 1:
        raise InvalidInput("every column tensor must have the same number of rows")
    return Table(columns=columns)


@functools.lru_cache(maxsize=256)  # versions come and go: the recent ones
def _usual_head(model: str, version: str, variant: str) -> bytes:
    """What the usual answers of one version and variant share: their JSON up to the
    prediction's datatype."""
    head = orjson.dumps({"model_name": model, "model_version": version, "parameters": {"variant": variant}})
    return head[:-1] + b',"outputs":[{"name":"predict","datatype":"'


def answer_object(snap: Snapshot, tensors: list[dict[str, Any]], payload: dict[str, Any]) -> dict[str, Any]:
    """A v2 answer: the version's names, the output tensors, and the request's ``id`` if it had one."""
    answer: dict[str, Any] = {
        "model_name": snap.model,
        "model_version": snap.version,
        "parameters": {"variant": snap.variant},
        "outputs": tensors,
    }
    if "id" in payload:
        answer["id"] = payload["id"]
    return answer


# The datatypes of the predictions orjson writes from the array itself byte for byte as
# it writes their tolist: 64-bit floats, integers and booleans in the machine's byte order
# (it writes a float32 shorter than the float its tolist gives).
PLAIN = {dtype: name.encode() for dtype, name in NAMES.items() if dtype.kind in "iub" or dtype == np.float64}


def usual_answer(snap: Snapshot, result: Any, payload: dict[str, Any]) -> bytes | None:
    """The usual answer (the prediction as one JSON tensor) rendered around what its
    version's answers share, byte for byte the JSON of its ``answer_object``; None for a
    prediction of more than one dimension, or not PLAIN, or not contiguous, which takes
    the general way."""
    if type(result) is not np.ndarray or result.ndim != 1:
        return None
    datatype = PLAIN.get(result.dtype)
    if datatype is None:
        return None
    try:
        data = orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError:  # not contiguous
        return None
    end = b"}]}" if "id" not in payload else b'}],"id":' + orjson.dumps(payload["id"]) + b"}"
    head = _usual_head(snap.model, snap.version, snap.variant)
    return b"".join((head, datatype, b'","shape":[%d],"data":' % len(result), data, end))


async def infer(request: Request) -> Response:
    start = time.perf_counter()
    state = app_state(request)  # _target's work, without a coroutine of its own: this is the hot route
    params = request.scope["path_params"]
    target = await state.inference.target(validate_model_name(params["model"]), params.get("version"))
    body = await read_body(request, state.settings.max_body_bytes)
    payload, binary = split_body(body, header_value(request, HEADER_LENGTH_RAW))
    if not isinstance(payload, dict):
        raise InvalidInput("the request must be a JSON object with 'inputs'")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("'inputs' must be a list: one [rows, features] tensor, or one tensor per column")
    tensors_in, offset = [], 0
    for tensor in inputs:
        name, values, offset = decode_input(tensor, binary, offset, state.settings.max_rows)
        tensors_in.append((name, values))
    wanted = _requested(payload)
    rid = request_id(request)
    # the first output is the counted, batched prediction; further ones reuse the same rows
    answer = await state.inference.predict(
        target,
        lambda signature: input_table(signature, tensors_in),  # by name or by position, as the version takes it
        wanted[0][0],
        routing_key=header_value(request, b"x-routing-key"),
        request_id=rid,
        start=start,
    )
    snap = answer.snapshot
    if wanted is DEFAULT_OUTPUTS:  # the usual: the prediction, as JSON
        usual = usual_answer(snap, answer.result, payload)
        if usual is not None:
            return rendered_answer(usual, snap.version, snap.variant, rid)
        tensors, raw = [json_tensor("predict", answer.result)], b""
    else:
        outputs = [(wanted[0][0], np.asarray(answer.result), wanted[0][1])]
        for name, as_binary in wanted[1:]:
            outputs.append((name, np.asarray(await state.inference.also(answer, name)), as_binary))
        tensors, raw = encode_outputs(outputs)
    result = answer_object(snap, tensors, payload)
    if not raw:
        return answer_response(result, snap.version, snap.variant, rid)
    headers = {"X-Model-Version": snap.version, "X-Model-Variant": snap.variant, "X-Request-Id": rid}
    header = orjson.dumps(result)
    headers[HEADER_LENGTH] = str(len(header))
    return Response(header + raw, media_type="application/octet-stream", headers=headers)
