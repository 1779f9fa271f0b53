"""Reading request bodies under the size limit and turning ``instances`` into a checked array."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from modelswap.core.errors import InvalidInput, PayloadTooLarge
from modelswap.core.schema.inputs import Table, columns_table, rows_table
from modelswap.core.store.aliases import validate_ref

METHODS = ("predict", "predict_proba", "decision_function", "predict_log_proba")


def header_value(request: Request, name: bytes) -> str | None:
    """The first value of one request header (``name`` in lower case, as the ASGI scope
    holds names), as ``request.headers.get`` gives it, without building Starlette's
    Headers and raising KeyError inside Mapping.get for each header that is absent."""
    headers: list[tuple[bytes, bytes]] = request.scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or PayloadTooLarge as soon as it passes ``limit`` bytes."""
    declared = header_value(request, b"content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError as exc:
            raise InvalidInput("Content-Length is not a number") from exc
        if size > limit:
            raise PayloadTooLarge(f"body of {size} bytes exceeds the limit of {limit} bytes")
    # Straight from the ASGI receive (Request.stream is an async generator around it).
    receive = request.receive
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)  # one chunk: the same object, not a copy


async def read_json(request: Request, limit: int, *, allow_empty: bool = False) -> Any:
    body = await read_body(request, limit)
    if not body.strip():
        if allow_empty:
            return {}
        raise InvalidInput("the request body is empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from exc


def json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput("the body must be a JSON object")
    return value


def text_field(body: dict[str, Any], key: str, *, limit: int = 1000) -> str:
    """An optional string field (a reason, a description), cut to ``limit`` characters."""
    value = body.get(key, "")
    if not isinstance(value, str):
        raise InvalidInput(f"'{key}' must be a string")
    return value[:limit]


def flag_field(body: dict[str, Any], key: str) -> bool:
    """An optional true/false field (``force``); anything but a JSON boolean is a 400."""
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"'{key}' must be true or false")
    return value


def version_ref(value: Any) -> str:
    """A version id or an alias, as a request names a version (resolved by the store)."""
    return validate_ref(value)


def parse_tag(pair: str) -> tuple[str, str]:
    """``team=ml`` -> ("team", "ml")."""
    key, sep, value = pair.partition("=")
    if not sep or not key:
        raise InvalidInput(f"tag filter {pair!r}: expected KEY=VALUE")
    return key, value


def int_query(request: Request, name: str, *, minimum: int = 0) -> int | None:
    """An optional whole-number query parameter (``?limit=50``); 400 when it is not one."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < minimum:
        raise InvalidInput(f"query parameter {name!r} must be a whole number of at least {minimum}, got {raw!r}")
    return int(raw)


def parse_predict(payload: Any) -> tuple[Table, str]:
    """The native body: ``{"instances": rows | records, "method": ...}`` or
    ``{"inputs": rows | {"column": [...]}}`` -> (a table for the signature, the method)."""
    body = json_object(payload)
    unknown = set(body) - {"instances", "method", "inputs"}
    if unknown:
        raise InvalidInput(
            f"unknown field(s) {', '.join(sorted(unknown))}; expected 'instances' or 'inputs', and optional 'method'"
        )
    if "instances" in body and "inputs" in body:
        raise InvalidInput("send 'instances' or 'inputs', not both")
    method = body.get("method", "predict")
    if method not in METHODS:
        raise InvalidInput(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    if "inputs" in body:
        inputs = body["inputs"]
        return (columns_table(inputs) if isinstance(inputs, dict) else rows_table(inputs, what="inputs")), method
    return rows_table(body.get("instances")), method
