"""JSON responses rendered with orjson (numpy-aware, several times faster than json)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from starlette.responses import Response

_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_OWN = {"content-length", "content-type"}


class Rendered(Response):
    """A JSON body already rendered, with the raw headers Starlette's ``Response`` would
    build for it (the caller's, then content-length, then content-type), built in one
    go: its ``__init__`` and ``init_headers`` cost more than the rendering of a small
    answer. Only for a status with a body and headers that name neither of those two."""

    media_type = "application/json"

    def __init__(self, body: bytes, status: int, headers: Mapping[str, str] | None) -> None:
        self.status_code = status
        self.background = None
        self.body = body
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()] if headers else []
        raw.append((b"content-length", b"%d" % len(body)))
        raw.append((b"content-type", b"application/json"))
        self.raw_headers = raw


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps(data, option=_OPTS)
    if status < 200 or status in (204, 304) or (headers and any(k.lower() in _OWN for k in headers)):
        return Response(body, status_code=status, media_type="application/json", headers=headers)
    return Rendered(body, status, headers)


def answer_response(data: Any, version: str, variant: str, request_id: str) -> Response:
    """An inference answer: 200 with ``data`` as JSON and the version, variant and request
    id headers, as ``json_response(data, headers={"X-Model-Version": ..., "X-Model-Variant":
    ..., "X-Request-Id": ...})`` makes it, without the dict of headers to lower-case and
    encode per request."""
    return rendered_answer(orjson.dumps(data, option=_OPTS), version, variant, request_id)


def rendered_answer(body: bytes, version: str, variant: str, request_id: str) -> Response:
    """``answer_response`` for a JSON body already rendered."""
    answer = Rendered.__new__(Rendered)
    answer.status_code = 200
    answer.background = None
    answer.body = body
    answer.raw_headers = [
        (b"x-model-version", version.encode("latin-1")),
        (b"x-model-variant", variant.encode("latin-1")),
        (b"x-request-id", request_id.encode("latin-1")),
        (b"content-length", b"%d" % len(body)),
        (b"content-type", b"application/json"),
    ]
    return answer


def json_ready(result: Any) -> list[Any]:
    """An estimator's answer as a JSON-ready list."""
    return result.tolist() if isinstance(result, np.ndarray) else list(result)
