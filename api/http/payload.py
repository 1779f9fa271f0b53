"""Reading request bodies under the size limit and turning ``instances`` into a checked array."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from starlette.requests import Request

from modelswap.core.errors import InvalidInput, PayloadTooLarge

METHODS = ("predict", "predict_proba", "decision_function", "predict_log_proba")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or PayloadTooLarge as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError as exc:
            raise InvalidInput("Content-Length is not a number") from exc
        if size > limit:
            raise PayloadTooLarge(f"body of {size} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


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


def int_query(request: Request, name: str, *, minimum: int = 0) -> int | None:
    """An optional whole-number query parameter (``?limit=50``); 400 when it is not one."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < minimum:
        raise InvalidInput(f"query parameter {name!r} must be a whole number of at least {minimum}, got {raw!r}")
    return int(raw)


def parse_predict(payload: Any, max_rows: int) -> tuple[np.ndarray, str]:
    """``{"instances": [[...], ...], "method": "predict"}`` -> (float64 array, method)."""
    body = json_object(payload)
    unknown = set(body) - {"instances", "method", "inputs"}
    if unknown:
        raise InvalidInput(f"unknown field(s) {', '.join(sorted(unknown))}; expected 'instances' and optional 'method'")
    method = body.get("method", "predict")
    if method not in METHODS:
        raise InvalidInput(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    instances = body.get("instances", body.get("inputs"))
    return to_matrix(instances, max_rows), method


def to_matrix(instances: Any, max_rows: int) -> np.ndarray:
    if not isinstance(instances, list) or not instances:
        raise InvalidInput("'instances' must be a non-empty list of rows, e.g. [[5.1, 3.5, 1.4, 0.2]]")
    if len(instances) > max_rows:
        raise InvalidInput(f"{len(instances)} rows exceed the limit of {max_rows} per request")
    if not isinstance(instances[0], list):
        raise InvalidInput("each instance must be a list of numbers (a row), e.g. [[5.1, 3.5, 1.4, 0.2]]")
    try:
        raw = np.array(instances)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("instances must be rows of numbers, all of the same length") from exc
    if raw.ndim != 2:
        raise InvalidInput("instances must be a list of rows of numbers (2-D), all of the same length")
    if raw.dtype.kind not in "iuf":
        raise InvalidInput("instances must hold only numbers (found strings, booleans, nulls or huge integers)")
    X = raw.astype(np.float64, copy=False)
    if not np.isfinite(X).all():
        raise InvalidInput("instances contain NaN, infinity, null or a number too large for float64")
    return X


def check_width(X: np.ndarray, expected: int | None, model: str, version: str) -> None:
    if expected is not None and X.shape[1] != expected:
        raise InvalidInput(f"{model} {version} expects {expected} features per row, got {X.shape[1]}")
