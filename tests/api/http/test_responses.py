"""The inference path's shortcuts give what Starlette's own objects give."""

from __future__ import annotations

import orjson
import pytest
from starlette.requests import Request
from starlette.responses import Response

from modelswap.api.http.payload import header_value
from modelswap.api.http.responses import Rendered, answer_response, json_response


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
