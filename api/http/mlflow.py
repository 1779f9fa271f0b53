"""MLflow's scoring protocol for the default model: ``/ping``, ``/version``, ``/invocations``
(JSON ``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs``, or ``text/csv``)."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from modelswap.api.http.health import server_version
from modelswap.api.http.observe import request_id
from modelswap.api.http.payload import header_value, read_body
from modelswap.api.http.responses import answer_response, json_ready
from modelswap.api.http.state import app_state
from modelswap.core.errors import InvalidInput
from modelswap.core.schema.inputs import Table, columns_table, records_table, rows_table

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


async def ping(request: Request) -> Response:
    ok = app_state(request).serving.ready()
    return PlainTextResponse("\n", status_code=200 if ok else 503)


async def version_text(request: Request) -> Response:
    return PlainTextResponse(server_version())


def parse_json(payload: Any) -> Table:
    """One of MLflow's JSON forms as a table; the signature decides names and types."""
    if not isinstance(payload, dict) or len(set(payload) & set(FORMATS)) != 1:
        raise InvalidInput(f"the body must have exactly one of {', '.join(FORMATS)}")
    key = next(k for k in FORMATS if k in payload)
    value = payload[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise InvalidInput('dataframe_split needs {"columns": [...], "data": [[...], ...]}')
        columns = value.get("columns")
        if columns is not None and (not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)):
            raise InvalidInput("dataframe_split 'columns' must be a list of names")
        if not value["data"] or not all(isinstance(r, list) for r in value["data"]):
            raise InvalidInput("dataframe_split 'data' must be a non-empty list of rows")
        return Table(rows=value["data"], names=columns)
    if key == "dataframe_records":
        return records_table(value, what=key)
    if key == "inputs" and isinstance(value, dict):  # column-oriented: {"col": [values]}
        return columns_table(value, what=key)
    return rows_table(value, what=key)


def parse_csv(body: bytes) -> Table:
    """``text/csv`` with a header row; values stay text until the signature types them."""
    try:
        rows = list(csv.reader(io.StringIO(body.decode())))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"the CSV body cannot be read: {exc}") from exc
    if len(rows) < 2:
        raise InvalidInput("the CSV body needs a header row and at least one data row")
    return Table(rows=[r for r in rows[1:] if r], names=rows[0], text=True)


async def invocations(request: Request) -> Response:
    start = time.perf_counter()
    state = app_state(request)
    target = await state.inference.target(state.inference.default_model())
    body = await read_body(request, state.settings.max_body_bytes)
    kind = (header_value(request, b"content-type") or "application/json").split(";")[0].strip().lower()
    if kind == "text/csv":
        table = parse_csv(body)
    elif kind in ("application/json", ""):
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"the body is not valid JSON: {exc}") from exc
        table = parse_json(payload)
    else:
        raise InvalidInput(f"unsupported content type {kind!r}: use application/json or text/csv")
    rid = request_id(request)
    answer = await state.inference.predict(
        target, table, routing_key=header_value(request, b"x-routing-key"), request_id=rid, start=start
    )
    snap = answer.snapshot
    return answer_response({"predictions": json_ready(answer.result)}, snap.version, snap.variant, rid)
