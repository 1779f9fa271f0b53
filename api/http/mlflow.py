"""MLflow's scoring protocol for the default model: ``/ping``, ``/version``, ``/invocations``
(JSON ``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs``, or ``text/csv``)."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from modelswap.api.http.errors import status_for
from modelswap.api.http.payload import read_body, to_matrix
from modelswap.api.http.predict import default_model, run_snapshot
from modelswap.api.http.responses import json_response
from modelswap.api.http.state import app_state
from modelswap.api.http.v2 import server_version
from modelswap.core.errors import InvalidInput, ModelswapError

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
MLFLOW_CODES = {400: "BAD_REQUEST", 404: "RESOURCE_DOES_NOT_EXIST", 413: "BAD_REQUEST", 503: "SERVICE_UNAVAILABLE"}


async def ping(request: Request) -> Response:
    ok = app_state(request).serving.ready()
    return PlainTextResponse("\n", status_code=200 if ok else 503)


async def version_text(request: Request) -> Response:
    return PlainTextResponse(server_version())


def _ordered(columns: Sequence[str], rows: list[list[Any]], names: tuple[str, ...] | None) -> list[list[Any]]:
    """Rows with columns in the model's feature order when it has feature names."""
    if names is None or list(columns) == list(names):
        return rows
    missing = [n for n in names if n not in columns]
    if missing:
        raise InvalidInput(f"missing column(s) {', '.join(missing)}; the model takes {', '.join(names)}")
    index = [list(columns).index(n) for n in names]
    try:
        return [[row[i] for i in index] for row in rows]
    except (TypeError, IndexError, KeyError) as exc:
        raise InvalidInput(f"every row must be a list with one value per column ({exc})") from exc


def parse_json(payload: Any, names: tuple[str, ...] | None) -> list[list[Any]]:
    if not isinstance(payload, dict) or len(set(payload) & set(FORMATS)) != 1:
        raise InvalidInput(f"the body must have exactly one of {', '.join(FORMATS)}")
    key = next(k for k in FORMATS if k in payload)
    value = payload[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise InvalidInput('dataframe_split needs {"columns": [...], "data": [[...], ...]}')
        columns = value.get("columns")
        return _ordered(columns, value["data"], names) if isinstance(columns, list) else value["data"]
    if key == "inputs" and isinstance(value, dict):  # column-oriented: {"col": [values]}
        columns = list(value)
        if not all(isinstance(v, list) for v in value.values()) or len({len(v) for v in value.values()}) != 1:
            raise InvalidInput("inputs as columns must map each name to a list, all of one length")
        return _ordered(columns, [list(r) for r in zip(*value.values(), strict=True)], names)
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"{key} must be a non-empty list")
    if all(isinstance(r, dict) for r in value):  # records
        columns = list(value[0])
        if any(list(r) != columns and set(r) != set(columns) for r in value):
            raise InvalidInput(f"every record in {key} must have the same fields")
        return _ordered(columns, [[r[c] for c in columns] for r in value], names)
    return value


def parse_csv(body: bytes, names: tuple[str, ...] | None) -> list[list[Any]]:
    try:
        rows = list(csv.reader(io.StringIO(body.decode())))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"the CSV body cannot be read: {exc}") from exc
    if len(rows) < 2:
        raise InvalidInput("the CSV body needs a header row and at least one data row")
    header, data = rows[0], [r for r in rows[1:] if r]
    try:
        values = [[float(v) for v in r] for r in data]
    except ValueError as exc:
        raise InvalidInput(f"the CSV body must hold numbers under its header: {exc}") from exc
    return _ordered(header, values, names)


async def invocations(request: Request) -> Response:
    start = time.perf_counter()
    state = app_state(request)
    try:
        slot = state.serving.slot(default_model(state))
        body = await read_body(request, state.settings.max_body_bytes)
        snap = slot.route(request.headers.get("x-routing-key"))
        names = snap.loaded.manifest.feature_names
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if kind == "text/csv":
            rows = parse_csv(body, names)
        elif kind in ("application/json", ""):
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"the body is not valid JSON: {exc}") from exc
            rows = parse_json(payload, names)
        else:
            raise InvalidInput(f"unsupported content type {kind!r}: use application/json or text/csv")
        X = to_matrix(rows, state.settings.max_rows)
        predictions = await run_snapshot(state, slot, snap, X, "predict", start)
    except ModelswapError as exc:
        status = status_for(exc)
        return json_response({"error_code": MLFLOW_CODES.get(status, "INTERNAL_ERROR"), "message": exc.message}, status)
    headers = {"X-Model-Version": snap.version, "X-Model-Variant": snap.variant}
    return json_response({"predictions": predictions}, headers=headers)
