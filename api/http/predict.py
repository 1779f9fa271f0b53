"""Inference endpoints: parse -> snapshot -> predict -> render. The hot path."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelswap.api.http.observe import request_id
from modelswap.api.http.payload import header_value, parse_predict, read_json, version_ref
from modelswap.api.http.responses import json_response
from modelswap.api.http.state import AppState, app_state
from modelswap.core.errors import InvalidInput, ModelNotFound, PredictionFailed, PredictTimeout
from modelswap.core.monitoring.counts import Observation
from modelswap.core.schema.inputs import Table, prepare
from modelswap.core.serving.slots import ModelSlot
from modelswap.core.serving.snapshot import STABLE, Snapshot
from modelswap.core.store.aliases import resolve
from modelswap.core.store.ids import is_version_id, validate_model_name

logger = logging.getLogger("modelswap.predict")


async def predict(request: Request) -> Response:
    state = app_state(request)
    return await _predict(request, state, validate_model_name(request.path_params["model"]), None)


async def predict_pinned(request: Request) -> Response:
    state = app_state(request)
    model = validate_model_name(request.path_params["model"])
    return await _predict(request, state, model, await pinned_version(state, model, request.path_params["version"]))


async def pinned_version(state: AppState, model: str, ref: str) -> str:
    """The version a pinned route names: an id as it is, an alias looked up in the store."""
    if is_version_id(ref):
        return ref
    alias = version_ref(ref)
    return await run_in_threadpool(resolve, state.store, model, alias)


async def predict_default(request: Request) -> Response:
    state = app_state(request)
    return await _predict(request, state, default_model(state), None)


def default_model(state: AppState) -> str:
    if state.settings.default_model:
        return state.settings.default_model
    if len(state.serving.slots) == 1:
        return next(iter(state.serving.slots))
    raise ModelNotFound(
        f"POST /predict needs MODELSWAP_DEFAULT_MODEL: this server has {len(state.serving.slots)} models"
    )


async def _predict(request: Request, state: AppState, model: str, version: str | None) -> Response:
    start = time.perf_counter()
    slot = state.serving.slot(model)
    payload = await read_json(request, state.settings.max_body_bytes)
    table, method = parse_predict(payload)
    if version is None:
        snap = slot.route(header_value(request, b"x-routing-key"))
    else:
        snap = await run_in_threadpool(slot.pinned, version)
    X = prepare_for(state, snap, table)
    rid = request_id(request)
    predictions = await run_snapshot(state, slot, snap, X, method, start, rid)
    headers = {"X-Model-Version": snap.version, "X-Model-Variant": snap.variant, "X-Request-Id": rid}
    body: dict[str, Any] = {"model": model, "version": snap.version, "variant": snap.variant}
    body["predictions"] = predictions
    classes = snap.signature.output.classes if snap.signature.output is not None else None
    if method != "predict" and classes is not None:
        body["classes"] = list(classes)
    return json_response(body, headers=headers)


def prepare_for(state: AppState, snap: Snapshot, table: Table) -> np.ndarray:
    """The request checked against the snapshot's signature (errors name the version;
    monitoring counts them against it: a deploy that breaks clients shows)."""
    try:
        return prepare(snap.signature, table, max_rows=state.settings.max_rows, extra=state.settings.extra_columns)
    except InvalidInput as exc:
        state.monitor.failure(snap.model, snap.version, snap.variant, "client")
        raise InvalidInput(f"{snap.model} {snap.version}: {exc.message}") from exc


async def run_snapshot(
    state: AppState, slot: ModelSlot, snap: Snapshot, X: np.ndarray, method: str, start: float, rid: str = ""
) -> Any:
    """Predict with one snapshot (batched), count it in metrics and in the slot's
    per-variant stats (the canary guard), log it; PredictionFailed if the model raises.
    Returns a JSON-ready list."""
    result = await predict_array(state, slot, snap, X, method, start, rid)
    return result.tolist() if isinstance(result, np.ndarray) else list(result)


def failure(exc: Exception) -> str:
    """What a client is told of a model's failure: the exception's type (its message may
    hold anything), or, for an answer the server refused (core.serving.snapshot.encodable), why."""
    return exc.message if isinstance(exc, PredictionFailed) else type(exc).__name__


async def predict_array(
    state: AppState, slot: ModelSlot, snap: Snapshot, X: np.ndarray, method: str, start: float, rid: str = ""
) -> Any:
    """As run_snapshot, returning what the estimator returned (usually an ndarray).
    Hands the request to monitoring (one append; counted off the request path)."""
    fn = snap.methods.get(method)
    if fn is None:
        raise InvalidInput(f"{snap.model} {snap.version} does not support {method!r}")
    try:
        result = await state.batching.batcher(snap, method, fn).submit(X)
    except PredictTimeout:
        state.metrics.prediction(snap.model, snap.version, snap.variant, "timeout", None)
        slot.record(snap, ok=False)
        state.monitor.failure(snap.model, snap.version, snap.variant, "timeout")
        logger.warning("predict timed out model=%s version=%s variant=%s", snap.model, snap.version, snap.variant)
        raise
    except Exception as exc:  # the model's own code failed on valid input
        state.metrics.prediction(snap.model, snap.version, snap.variant, "error", None)
        slot.record(snap, ok=False)
        state.monitor.failure(snap.model, snap.version, snap.variant, "server")
        logger.warning(
            "predict failed model=%s version=%s variant=%s rows=%d: %s: %s",
            snap.model,
            snap.version,
            snap.variant,
            len(X),
            type(exc).__name__,
            exc,
        )
        raise PredictionFailed(f"{snap.model} {snap.version} failed to predict: {failure(exc)}") from exc
    elapsed = time.perf_counter() - start
    state.metrics.prediction(snap.model, snap.version, snap.variant, "success", elapsed)
    slot.record(snap, ok=True)
    shadow = slot.shadow
    if shadow is not None and snap.variant == STABLE:  # a copy for the shadow, off the response path
        state.shadows.offer(snap, shadow[0], shadow[1].started_at, shadow[1].fraction, X, result, method, elapsed)
    output = snap.signature.output
    state.monitor.observe(
        Observation(
            snap.model,
            snap.version,
            snap.variant,
            X,
            result,
            elapsed,
            method,
            output.classes if output is not None else None,
            rid,
            time.time(),
        )  # fmt: skip
    )
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "predict model=%s version=%s variant=%s rows=%d ms=%.2f",
            snap.model,
            snap.version,
            snap.variant,
            len(X),
            elapsed * 1000,
        )
    return result
