"""The inference path's shortcuts give what Starlette's own objects give."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import orjson
import pytest
from starlette.requests import Request
from starlette.responses import Response

from modelswap.api.http.payload import header_value
from modelswap.api.http.responses import Rendered, answer_response, json_response
from modelswap.api.http.tensors import json_tensor
from modelswap.api.http.v2 import answer_object, usual_answer


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (200, None),
        (200, {}),
        (200, {"X-Model-Version": "v1", "X-Request-Id": "r-1"}),
        (404, {"Retry-After": "1"}),
        (204, None),  # no body length for these: Starlette's own Response
        (200, {"Content-Type": "application/x-ndjson"}),  # the caller's own: Starlette's own Response
        (200, {"content-length": "7"}),
    ],
)
def test_json_responses_carry_the_headers_starlette_would_give_them(status: int, headers: dict[str, str]) -> None:
    data = {"predictions": [1, 2], "model": "iris"}
    ours = json_response(data, status, headers)
    theirs = Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)
    assert (ours.status_code, ours.body, ours.raw_headers) == (theirs.status_code, theirs.body, theirs.raw_headers)
    assert ours.headers == theirs.headers and ours.background is None
    assert isinstance(ours, Rendered) == (
        status != 204 and not any(k.lower().startswith("content-") for k in headers or {})
    )


def test_a_header_value_is_what_starlettes_headers_give() -> None:
    raw = [(b"x-routing-key", b"user-7"), (b"x-request-id", b"a"), (b"x-request-id", b"b"), (b"x-latin", b"caf\xe9")]
    request = Request({"type": "http", "method": "POST", "path": "/", "headers": raw})
    for name in ("x-routing-key", "x-request-id", "x-latin", "content-length"):
        assert header_value(request, name.encode()) == request.headers.get(name), name


@pytest.mark.parametrize("rid", ["r-1", "caf\xe9-7", "0123456789abcdef0123456789abcdef"])
def test_an_inference_answer_is_what_json_response_gives_with_its_headers(rid: str) -> None:
    data = {"model": "iris", "version": "20261123-024512-3f9a1c", "predictions": [1, 2.5, "a"]}
    ours = answer_response(data, "20261123-024512-3f9a1c", "canary", rid)
    headers = {"X-Model-Version": "20261123-024512-3f9a1c", "X-Model-Variant": "canary", "X-Request-Id": rid}
    theirs = json_response(data, headers=headers)
    assert type(ours) is type(theirs) is Rendered
    assert (ours.status_code, ours.body, ours.raw_headers, ours.background) == (
        theirs.status_code, theirs.body, theirs.raw_headers, theirs.background,
    )  # fmt: skip
    assert ours.headers == theirs.headers and ours.media_type == theirs.media_type


def general_v2_answer(result: Any, payload: dict[str, Any]) -> bytes:
    """The v2 answer as infer renders it the general way."""
    return orjson.dumps(
        answer_object(SNAP, [json_tensor("predict", result)], payload), option=orjson.OPT_SERIALIZE_NUMPY
    )


SNAP = cast(Any, SimpleNamespace(model="iris", version="20261207-101010-abcdef", variant="canary"))


@pytest.mark.parametrize(
    "result",
    [
        np.array([0, 2, 1]),
        np.array([0.1, float("nan"), float("inf"), -2.5e-300, 1e21, 3.0]),
        np.array([True, False]),
        np.array([7, 255], dtype=np.uint8),
        np.array([-3], dtype=np.int32),
        np.array([2**63 - 1], dtype=np.int64),
        np.array([], dtype=np.int64),
    ],
)
@pytest.mark.parametrize("payload", [{}, {"id": "42"}, {"id": {"a": [1, "é"]}}, {"id": None}])
def test_the_usual_v2_answer_is_byte_for_byte_the_general_one(result: np.ndarray, payload: dict[str, Any]) -> None:
    assert usual_answer(SNAP, result, payload) == general_v2_answer(result, payload)


@pytest.mark.parametrize(
    "result",
    [
        np.array(["setosa", "virginica"], dtype=object),  # labels as text
        np.array(["setosa"]),
        np.array([0.1], dtype=np.float32),  # orjson writes a float32 shorter than its tolist
        np.array([[0.2, 0.8]]),
        np.arange(6)[::2],  # not contiguous
        np.array([1.5], dtype=">f8"),
        [0, 1],
    ],
)
def test_what_the_usual_v2_answer_cannot_render_takes_the_general_way(result: Any) -> None:
    assert usual_answer(SNAP, result, {}) is None
    [tensor] = orjson.loads(general_v2_answer(result, {}))["outputs"]  # which renders it
    values = np.asarray(result)
    assert (tensor["shape"], tensor["data"]) == (list(values.shape), values.ravel().tolist())
    assert tensor["datatype"] == (
        "BYTES" if values.dtype.kind in "OU" else values.dtype.name.upper().replace("FLOAT", "FP")
    )
