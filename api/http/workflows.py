"""ML engineers' workflows over HTTP: upload a version, gc, start a retrain job, read a job."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from modelswap.api.http.auth import allows, hide_model
from modelswap.api.http.payload import flag_field, json_object, read_json
from modelswap.api.http.responses import json_response
from modelswap.api.http.state import actor_of, app_state, model_of
from modelswap.core.access.roles import ADMIN
from modelswap.core.errors import InvalidInput, JobNotFound, PayloadTooLarge
from modelswap.core.schema.signature import Signature
from modelswap.core.training.jobs import RetrainRequest, validate_job_id

FORM_FIELDS = {"model", "metrics", "tags", "description", "example", "metadata", "signature", "force", "reference"}


def limited(request: Request, limit: int) -> Request:
    """The same request, whose body raises PayloadTooLarge once past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"upload of {declared} bytes exceeds the limit of {limit} bytes")
    seen = 0

    async def receive() -> Message:
        nonlocal seen
        message = await request.receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise PayloadTooLarge(f"upload exceeds the limit of {limit} bytes")
        return message

    return Request(request.scope, receive)


def _json_field(value: Any, name: str) -> Any:
    if value is None:
        return None
    raw = value.file.read() if isinstance(value, UploadFile) else str(value).encode()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"form field {name!r} is not valid JSON: {exc}") from exc


async def upload(request: Request) -> Response:
    """Multipart: ``model`` (a skops file; joblib only if allowed) [+ ``metrics``, ``tags``,
    ``example`` JSON, ``reference`` JSON (best sent as a file part: a plain field is limited
    to 1 MiB), ``description``]; validated in a limited child process."""
    state, model = app_state(request), model_of(request)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidInput("upload as multipart/form-data with a 'model' file field (curl -F model=@model.skops)")
    form = await limited(request, state.settings.max_upload_bytes).form(max_files=4, max_fields=12)
    try:
        unknown = set(form.keys()) - FORM_FIELDS
        if unknown:
            raise InvalidInput(f"unknown form field(s): {', '.join(sorted(unknown))}")
        file = form.get("model")
        if not isinstance(file, UploadFile):
            raise InvalidInput("missing the 'model' file field (curl -F model=@model.skops)")
        metrics = _json_field(form.get("metrics"), "metrics") or {}
        tags = _json_field(form.get("tags"), "tags") or {}
        example = _json_field(form.get("example"), "example")
        metadata = _json_field(form.get("metadata"), "metadata") or {}
        declared = _json_field(form.get("signature"), "signature")
        signature = Signature.from_dict(declared) if declared is not None else None
        if not isinstance(tags, dict):
            raise InvalidInput('tags must be a JSON object, e.g. {"owner": "ml"}')
        force = _json_field(form.get("force"), "force") or False
        if not isinstance(force, bool):
            raise InvalidInput("force must be true or false")
        description = form.get("description")
        description = description if isinstance(description, str) else ""
        # the training rows can be large: parsed off the event loop
        reference = await run_in_threadpool(_json_field, form.get("reference"), "reference")
        record = await run_in_threadpool(
            lambda: state.ops.upload(
                model,
                file.file,
                filename=file.filename,
                metrics=metrics,
                tags=tags,
                description=description,
                example=example,
                metadata=metadata,
                signature=signature,
                reference=reference,
                actor=actor_of(request),
                pickle_allowed=allows(request, ADMIN),
                against_live=True,
                force=force,
            )
        )
    finally:
        await form.close()
    return json_response({"model": model, **record.to_dict()}, status=201)


async def gc(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes))
    keep = body.get("keep")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise InvalidInput("'keep' must be a whole number of versions to keep, 0 or more")
    dry_run = flag_field(body, "dry_run")
    plan = await run_in_threadpool(state.ops.gc, model, keep, dry_run=dry_run, actor=actor_of(request))
    return json_response(plan.to_dict())


async def retrain(request: Request) -> Response:
    state, model = app_state(request), model_of(request)
    body = json_object(await read_json(request, state.settings.max_body_bytes, allow_empty=True))
    params = RetrainRequest.from_dict(model, body)
    job = await run_in_threadpool(state.ops.retrain, params, actor=actor_of(request))
    return json_response({"job": job.id, **job.to_dict()}, status=202)


async def get_job(request: Request) -> Response:
    state = app_state(request)  # a job's log names server paths: for who may start one
    job_id = validate_job_id(request.path_params["job"])
    job = await run_in_threadpool(state.ops.job, job_id)
    hide_model(request, job["model"], JobNotFound(f"no retrain job {job_id}"))
    return json_response(job)
