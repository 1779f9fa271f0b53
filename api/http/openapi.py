"""The OpenAPI 3.1 document served at ``/openapi.json``: every route in ``app.ROUTES``
(but this one), with its operationId, bodies, headers and the statuses it really returns.

The schemas of modelswap's own routes are in ``openapi_schemas.py``, the building
blocks of operations in ``openapi_operations.py``, and the Open Inference Protocol and
MLflow routes in ``openapi_protocols.py``; this module holds the native routes and
assembles the document.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from modelswap.api.http.openapi_delivery import DELIVERY_PATHS, DELIVERY_SCHEMAS
from modelswap.api.http.openapi_monitoring import MONITOR_PARAMETERS, MONITOR_PATHS, MONITOR_SCHEMAS
from modelswap.api.http.openapi_operations import (
    HEADERS,
    MLFLOW,
    NATIVE,
    NO_DEFAULT,
    PARAMETERS,
    PINNED_ERRORS,
    PREDICT_401,
    PREDICT_ERRORS,
    PREDICTION_HEADERS,
    READ_401,
    V2,
    body,
    error,
    ok,
    operation,
    plain_text,
)
from modelswap.api.http.openapi_policy import POLICY_PATHS, POLICY_SCHEMAS
from modelswap.api.http.openapi_protocols import PROTOCOL_PATHS, PROTOCOL_SCHEMAS
from modelswap.api.http.openapi_schemas import SCHEMAS
from modelswap.api.http.openapi_views import VIEW_SCHEMAS
from modelswap.core.access.roles import PREDICT, READ


def html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


MOVE_ERRORS = (400, 401, 404, 409, 413, 422, 500, 503, 507)  # verbs that validate and load a version


def native_predict(
    op_id: str, summary: str, params: tuple[str, ...], errors: tuple[int, ...], notes: dict[int, str] | None = None
) -> dict[str, Any]:
    return operation(
        op_id,
        "inference",
        summary,
        {200: ok("PredictResponse", "Predictions", headers=PREDICTION_HEADERS)},
        errors=errors,
        params=(*params, "RoutingKey"),
        request=body("PredictRequest"),
        notes=notes,
    )


def admin_verb(
    op_id: str, summary: str, response: str, errors: Iterable[int], request: dict[str, Any] | None, tag: str = "admin"
) -> dict[str, Any]:
    return operation(
        op_id, tag, summary, {200: ok(response)}, errors=errors, params=("Model",), request=request, auth="admin"
    )


def read(op_id: str, summary: str, response: str, params: tuple[str, ...], errors: Iterable[int]) -> dict[str, Any]:
    return operation(op_id, "models", summary, {200: ok(response)}, errors=(*errors, 500), params=params, auth="read")


MODEL, VERSION = ("Model",), ("Model", "Version")
NATIVE_PATHS: dict[str, dict[str, dict[str, Any]]] = {
    # -- native inference
    "/v1/models/{model}/predict": {
        "post": native_predict(
            "predict", "Predict with the live version (or the canary, for its share)", MODEL, PREDICT_ERRORS
        )
    },
    "/v1/models/{model}/versions/{version}/predict": {
        "post": native_predict("predict_pinned", "Predict with one pinned version", VERSION, PINNED_ERRORS)
    },
    "/predict": {
        "post": native_predict(
            "predict_default", "Predict with the default model", (), PREDICT_ERRORS, notes={404: NO_DEFAULT}
        )
    },
    # -- reads
    "/v1/models": {
        "get": read("list_models", "Every model: current, canary, previous, versions count", "ModelList", (), ())
    },
    "/v1/models/{model}": {
        "get": read(
            "get_model", "One model, its warnings, and what this process serves", "ModelView", MODEL, (400, 404, 422)
        )
    },
    "/v1/models/{model}/versions": {
        "get": read(
            "list_versions",
            "Every version, newest first, with its live marks and aliases",
            "VersionList",
            (*MODEL, "Where", "Tag"),
            (400, 404),
        ),
        "post": operation(
            "upload_version",
            "workflows",
            "Publish a version from an uploaded skops file (a joblib file only if the server allows pickles), "
            "validated in a child process with a time and a memory limit: load and a predict on the example",
            {201: ok("PublishedVersion", "Published")},
            errors=(400, 409, 413, 415, 422, 500, 503),
            params=MODEL,
            request=body("UploadForm", media="multipart/form-data"),
            auth="admin",
        ),
    },
    "/v1/models/{model}/versions/{version}": {
        "get": read(
            "get_version", "One version: record, manifest and metrics", "VersionDetail", VERSION, (400, 404, 422)
        ),
        "delete": operation(
            "delete_version",
            "admin",
            "Delete a version that is not live",
            {200: ok("DeleteResult")},
            errors=(400, 404, 409, 500, 503),
            params=VERSION,
            auth="admin",
        ),
    },
    "/v1/models/{model}/versions/{version}/lineage": {
        "get": read("get_lineage", "A version's ancestors and descendants", "Lineage", VERSION, (400, 404))
    },
    "/v1/models/{model}/compare": {
        "get": read(
            "compare_versions",
            "Two versions side by side: metric deltas, input-schema diff, size, libraries",
            "Comparison",
            (*MODEL, "CompareA", "CompareB"),
            (400, 404, 422),
        )
    },
    "/v1/models/{model}/aliases": {"get": read("list_aliases", "Every alias of a model", "Aliases", MODEL, (400, 404))},
    "/v1/models/{model}/aliases/{alias}": {
        "put": operation(
            "set_alias",
            "admin",
            "Point an alias at a version (moving it if it exists; recorded in history)",
            {200: ok("Aliases")},
            errors=(400, 404, 413, 500, 503),
            params=(*MODEL, "Alias"),
            request=body("AliasRequest"),
            auth="admin",
        ),
        "delete": operation(
            "delete_alias",
            "admin",
            "Remove an alias (recorded in history)",
            {200: ok("Aliases")},
            errors=(400, 404, 500, 503),
            params=(*MODEL, "Alias"),
            auth="admin",
        ),
    },
    "/v1/model-ids/{model_id}": {
        "get": read(
            "get_model_id",
            "The version a model id names, wherever it is",
            "VersionDetail",
            ("ModelId",),
            (400, 404, 422),
        )
    },
    "/v1/models/{model}/history": {
        "get": read("get_history", "Deploy history, newest first", "History", (*MODEL, "HistoryLimit"), (400, 404))
    },
    "/v1/models/{model}/fleet": {
        "get": read("get_fleet", "Every live serving process and the version it serves", "Fleet", MODEL, (400, 404))
    },
    # -- admin
    "/v1/models/{model}/deploy": {
        "post": admin_verb(
            "deploy", "Validate a version and make it live", "Transition", MOVE_ERRORS, body("DeployRequest")
        )
    },
    "/v1/models/{model}/rollback": {
        "post": admin_verb(
            "rollback",
            "Roll back to `to`, or with no body to the previous live version",
            "Transition",
            MOVE_ERRORS,
            body("RollbackRequest", required=False),
        )
    },
    "/v1/models/{model}/reload": {
        "post": admin_verb(
            "reload", "Re-read `current` now (retries a failed load)", "ReloadResult", (400, 404, 500), None
        )
    },
    # -- canary
    "/v1/models/{model}/canary": {
        "get": operation(
            "get_canary",
            "canary",
            "Canary config and this process's per-variant counts",
            {200: ok("CanaryStatus")},
            errors=(400, 404, 500),
            params=MODEL,
            auth="read",
        ),
        "post": admin_verb(
            "start_canary",
            "Start or update a canary (validated like a deploy)",
            "CanaryConfig",
            MOVE_ERRORS,
            body("CanaryRequest"),
            tag="canary",
        ),
        "delete": admin_verb(
            "stop_canary",
            "Stop the canary: all traffic back to stable",
            "CanaryStopped",
            (400, 404, 409, 413, 500, 503),
            body("ReasonRequest", required=False),
            tag="canary",
        ),
    },
    "/v1/models/{model}/canary/promote": {
        "post": admin_verb(
            "promote_canary",
            "Make the canary live and end the test",
            "Transition",
            MOVE_ERRORS,
            body("PromoteRequest", required=False),
            tag="canary",
        )
    },
    # -- workflows
    "/v1/models/{model}/gc": {
        "post": admin_verb(
            "gc",
            "Delete all but the newest `keep` versions (never a live one or the rollback target)",
            "GcPlan",
            (400, 404, 413, 500, 503),
            body("GcRequest"),
            tag="workflows",
        )
    },
    "/v1/models/{model}/retrain": {
        "post": operation(
            "retrain",
            "workflows",
            "Start a retraining job in its own process",
            {202: ok("RetrainAccepted", "Job started")},
            errors=(400, 409, 413, 500, 503),
            params=MODEL,
            request=body("RetrainRequest", required=False),
            auth="admin",
        )
    },
    "/v1/whoami": {
        "get": operation(
            "whoami",
            "models",
            "The token this request shows: name, role, models, expiry, and the roles it includes",
            {200: ok("Whoami")},
            errors=(500,),
            auth="admin",  # always asks for a token: it is about the token
        )
    },
    "/v1/jobs/{job}": {
        "get": operation(
            "get_job",
            "workflows",
            "Job state, progress, log tail, resulting version",
            {200: ok("Job")},
            errors=(400, 404, 500),
            params=("Job",),
            auth="admin",  # a job's log names server paths: the handler asks for the token
        )
    },
    # -- operations
    "/healthz": {"get": operation("healthz", "operations", "Liveness", {200: ok("Health")})},
    "/readyz": {
        "get": operation(
            "readyz",
            "operations",
            "Readiness: every served model that has a live version has it loaded",
            {200: ok("Readiness", "Ready"), 503: ok("Readiness", "Not ready")},
        )
    },
    "/metrics": {
        "get": operation(
            "metrics", "operations", "Prometheus metrics", {200: plain_text("Prometheus text exposition format")}
        )
    },
    # -- the on-call console: a page over the routes above
    "/": {"get": operation("console", "console", "The on-call console (HTML)", {200: html("The console page")})},
    "/ui": {
        "get": operation("console_ui", "console", "The console, at its other address", {200: html("The console page")})
    },
    "/console/{name}": {
        "get": operation(
            "console_asset",
            "console",
            "The console's script and style",
            {
                200: {
                    "description": "console.js or console.css",
                    "content": {
                        "text/javascript": {"schema": {"type": "string"}},
                        "text/css": {"schema": {"type": "string"}},
                    },
                }
            },
            errors=(404,),
            params=("ConsoleFile",),
        )
    },
}

TAGS = [
    {"name": "inference", "description": "modelswap's own predict routes"},
    {"name": "models", "description": "Read views (open unless MODELSWAP_PROTECT_READS=1)"},
    {"name": "admin", "description": "Deploy, rollback, reload, delete (bearer token)"},
    {"name": "canary", "description": "A/B test of a second version on a share of traffic"},
    {"name": "delivery", "description": "Shadow, stepped rollout, watched deploy (progressive delivery)"},
    {"name": "workflows", "description": "Upload, gc, retrain jobs"},
    {"name": "open-inference-protocol", "description": "KServe / Triton / MLServer v2 REST protocol"},
    {"name": "mlflow", "description": "MLflow scoring protocol, for the default model"},
    {"name": "operations", "description": "Probes and metrics"},
    {"name": "console", "description": "The on-call web console"},
]


def with_roles(paths: dict[str, Any]) -> dict[str, Any]:
    """Each guarded operation gets the role its route declares (``x-modelswap-role``), its
    403 and 429; a ``predict`` one its optional bearer (MODELSWAP_PROTECT_PREDICT=1)."""
    from modelswap.api.http.app import ROUTES  # the one place each route's role is declared

    for route in ROUTES:
        role = getattr(route.endpoint, "role", None)
        if role is None:
            continue
        protocol = V2 if route.path.startswith("/v2/") else MLFLOW if route.path == "/invocations" else NATIVE
        for method in sorted((route.methods or set()) - {"HEAD"}):
            op = paths[route.path][method.lower()]
            op["x-modelswap-role"] = role
            responses = op["responses"]
            if role == PREDICT or (role == READ and "security" not in op):
                op["security"] = [{}, {"bearer": []}]
                responses["401"] = error(protocol, 401, PREDICT_401 if role == PREDICT else READ_401)
            responses["403"] = error(protocol, 403)
            responses["429"] = error(protocol, 429)
            op["responses"] = dict(sorted(responses.items()))
    return paths


def build() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "modelswap",
            "version": "1",
            "description": "Filesystem-versioned scikit-learn model server with atomic hot-swap",
        },
        "tags": TAGS,
        "paths": with_roles({**NATIVE_PATHS, **MONITOR_PATHS, **DELIVERY_PATHS, **POLICY_PATHS, **PROTOCOL_PATHS}),
        "components": {
            "schemas": {
                **SCHEMAS,
                **VIEW_SCHEMAS,
                **MONITOR_SCHEMAS,
                **DELIVERY_SCHEMAS,
                **POLICY_SCHEMAS,
                **PROTOCOL_SCHEMAS,
            },
            "parameters": {
                **PARAMETERS,
                **MONITOR_PARAMETERS,
                "ConsoleFile": {
                    "name": "name",
                    "in": "path",
                    "required": True,
                    "schema": {"enum": ["console.js", "console.css"]},
                },
            },
            "headers": HEADERS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A named token (modelswap token create) or MODELSWAP_ADMIN_TOKEN",
                }
            },
        },
    }


OPENAPI = build()
