"""Building blocks of the OpenAPI document's operations: responses, error responses per
protocol, request bodies, and the shared headers and parameters they reference.

Errors have one body shape per protocol: native ``{"error": {"code", "message"}}``,
Open Inference Protocol ``{"error": "..."}``, MLflow ``{"error_code", "message"}``;
an unexpected 500 is always in the native shape (``errors.unexpected_error``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from modelswap.api.http.openapi_schemas import INTEGER, MODEL_NAME, STRING, VERSION, Schema, ref

NATIVE, V2, MLFLOW = "native", "v2", "mlflow"
ERROR_SCHEMAS: dict[str, Schema] = {NATIVE: ref("Error"), V2: ref("V2Error"), MLFLOW: ref("MlflowError")}
STATUS_TEXT = {
    400: "Malformed request: bad JSON, a missing, unknown or ill-typed field, an invalid model name or version id",
    401: "Missing, wrong or expired token (or no token configured: admin is disabled)",
    403: "The token does not hold the role this route needs (x-modelswap-role), or does not cover the model",
    404: "No such model, version or job, or the model is not served by this server",
    409: "The store's state forbids it: the version is live or protected, nothing to roll back, no canary, a job "
    "already runs, or (incompatible_schema) the version's inputs would break clients of the live one",
    413: "The body exceeds MODELSWAP_MAX_BODY_BYTES (uploads: MODELSWAP_MAX_UPLOAD_BYTES)",
    415: "A pickle (joblib) model upload, refused unless the server sets MODELSWAP_ALLOW_PICKLE_UPLOADS=1: "
    "upload a skops file",
    422: "The version failed validation (digests, load, a predict on its input example: for an upload in a child "
    "process, which timed out, exceeded its memory or crashed), holds types the server does not trust "
    "(untrusted_types: MODELSWAP_TRUSTED_TYPES), or a stored file is damaged",
    500: "Internal error: the model raised while predicting, versions.json is damaged, or an unexpected failure",
    503: "Not ready (no version of the model loaded yet), the store's writer lock is busy, the store is read-only "
    "or refuses this server's reads or writes (store_read_only, store_not_readable, store_not_writable), or the "
    "admin API is off: no token is configured and the store is read-only (admin_disabled)",
    429: "Too many failed authentications from this address: retry after Retry-After seconds",
    507: "Not enough memory left under this process's limit to load the version",
}
READ_401 = "Only when MODELSWAP_PROTECT_READS=1: missing, wrong or expired token"
PREDICT_401 = "Only when MODELSWAP_PROTECT_PREDICT=1: missing, wrong or expired token"
NO_DEFAULT = "No default model: the server has several and MODELSWAP_DEFAULT_MODEL is not set"
PREDICT_ERRORS = (400, 404, 413, 500, 503)
PINNED_ERRORS = (400, 404, 413, 422, 500, 507)  # a pinned version is loaded on demand


def header(name: str) -> Schema:
    return {"$ref": f"#/components/headers/{name}"}


PREDICTION_HEADERS = {name: header(name) for name in ("X-Model-Version", "X-Model-Variant", "X-Request-Id")}
HEADERS: dict[str, Schema] = {
    "X-Model-Version": {"description": "The version that answered", "required": True, "schema": VERSION},
    "X-Model-Variant": {"description": "stable, canary or pinned", "required": True, "schema": ref("Variant")},
    "X-Request-Id": {
        "description": "The request's id (the client's X-Request-Id when it sent a sane one): for feedback",
        "required": True,
        "schema": STRING,
    },
    "Inference-Header-Content-Length": {
        "description": "Bytes of the JSON part before the binary tensor data",
        "schema": INTEGER,
    },
    "WWW-Authenticate": {"description": "Bearer", "schema": STRING},
}


def path_param(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def optional_param(name: str, where: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": where, "required": False, "schema": schema, "description": description}


PARAMETERS: dict[str, Schema] = {
    "Model": path_param("model", MODEL_NAME, "Model name"),
    "Version": path_param("version", ref("VersionRef"), "Version id, or an alias"),
    "Alias": path_param("alias", {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,63}$"}, "Alias name"),
    "ModelId": path_param("model_id", {"type": "string"}, "Model id: m- and 32 hex digits"),
    "Where": {
        "name": "where",
        "in": "query",
        "required": False,
        "schema": {"type": "array", "items": STRING},
        "style": "form",
        "explode": True,
        "description": "Keep versions whose metric passes, e.g. accuracy>0.9 (repeatable)",
    },
    "Tag": {
        "name": "tag",
        "in": "query",
        "required": False,
        "schema": {"type": "array", "items": STRING},
        "style": "form",
        "explode": True,
        "description": "Keep versions with this tag, e.g. team=ml (repeatable)",
    },
    "CompareA": {"name": "a", "in": "query", "required": True, "schema": ref("VersionRef"), "description": "Version A"},
    "CompareB": {"name": "b", "in": "query", "required": True, "schema": ref("VersionRef"), "description": "Version B"},
    "Job": path_param("job", ref("VersionId"), "Job id (same shape as a version id)"),
    "RoutingKey": optional_param(
        "X-Routing-Key", "header", STRING, "Sticky canary routing: the same key gets the same variant in every process"
    ),
    "HistoryLimit": optional_param("limit", "query", {"type": "integer", "minimum": 0}, "At most this many entries"),
    "InferenceHeaderLength": optional_param(
        "Inference-Header-Content-Length",
        "header",
        {"type": "integer", "minimum": 1},
        "Binary tensor extension: bytes of the JSON part at the start of the body",
    ),
}


def json_content(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def ok(schema: str, description: str = "OK", *, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": json_content(ref(schema))}
    if headers:
        response["headers"] = headers
    return response


def plain_text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


def error(protocol: str, status: int, description: str | None = None) -> dict[str, Any]:
    schema = ERROR_SCHEMAS[protocol]
    if status == 500 and protocol != NATIVE:
        schema = {"anyOf": [schema, ERROR_SCHEMAS[NATIVE]]}
    response: dict[str, Any] = {"description": description or STATUS_TEXT[status], "content": json_content(schema)}
    if status == 401:
        response["headers"] = {"WWW-Authenticate": header("WWW-Authenticate")}
    if status == 429:
        response["headers"] = {"Retry-After": {"schema": INTEGER, "description": "Seconds until it may retry"}}
    return response


def body(schema: str, *, required: bool = True, media: str = "application/json") -> dict[str, Any]:
    return {"required": required, "content": {media: {"schema": ref(schema)}}}


def operation(
    op_id: str,
    tag: str,
    summary: str,
    responses: dict[int, dict[str, Any]],
    *,
    errors: Iterable[int] = (),
    protocol: str = NATIVE,
    params: Iterable[str] = (),
    request: dict[str, Any] | None = None,
    auth: str | None = None,
    description: str = "",
    notes: dict[int, str] | None = None,
) -> dict[str, Any]:
    """One operation. ``errors`` are the error statuses it answers, in its protocol's
    shape (``notes`` overrides their descriptions). ``auth`` is "admin" (bearer required)
    or "read" (bearer only when MODELSWAP_PROTECT_READS=1); either adds its 401, and its 503
    (the store refuses the read or write, or the admin API is off: admin_disabled)."""
    notes = {**({401: READ_401} if auth == "read" else {}), **(notes or {})}
    all_responses = {str(status): response for status, response in responses.items()}
    for status in sorted(set(errors) | ({401, 503} if auth else set())):
        all_responses[str(status)] = error(protocol, status, notes.get(status))
    op: dict[str, Any] = {"operationId": op_id, "tags": [tag], "summary": summary}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = [{"$ref": f"#/components/parameters/{p}"} for p in params]
    if request is not None:
        op["requestBody"] = request
    op["responses"] = dict(sorted(all_responses.items()))
    if auth == "admin":
        op["security"] = [{"bearer": []}]
    elif auth == "read":
        op["security"] = [{}, {"bearer": []}]
    return op
