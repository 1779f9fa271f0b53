"""The OpenAPI 3.1 document served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
}
PREDICT_REQUEST = {
    "type": "object",
    "properties": {
        "instances": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}, "minItems": 1},
        "method": {"enum": ["predict", "predict_proba", "decision_function", "predict_log_proba"]},
    },
    "required": ["instances"],
}
PREDICT_RESPONSE = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "version": {"type": "string"},
        "variant": {"enum": ["stable", "canary", "pinned"]},
        "predictions": {"type": "array"},
    },
}
TRANSITION = {
    "type": "object",
    "properties": {k: {"type": ["string", "null"]} for k in ("model", "action", "previous", "current")},
}
DEPLOY_REQUEST = {
    "type": "object",
    "properties": {"version": {"type": "string"}, "reason": {"type": "string"}},
    "required": ["version"],
}
CANARY_REQUEST = {
    "type": "object",
    "properties": {
        "version": {"type": "string"},
        "fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "guard": {
            "type": "object",
            "properties": {"max_error_rate": {"type": "number"}, "min_requests": {"type": "integer"}},
        },
        "reason": {"type": "string"},
    },
    "required": ["version", "fraction"],
}
RETRAIN_REQUEST = {
    "type": "object",
    "properties": {
        "dataset": {"enum": ["iris", "wine", "breast_cancer", "digits"]},
        "estimator": {"enum": ["logreg", "random_forest", "gradient_boosting", "knn", "decision_tree"]},
        "deploy": {"type": "boolean"},
        "deploy_if_better": {"type": "string"},
        "seed": {"type": "integer"},
    },
}
GC_REQUEST = {
    "type": "object",
    "properties": {"keep": {"type": "integer", "minimum": 0}, "dry_run": {"type": "boolean"}},
    "required": ["keep"],
}
ROLLBACK_REQUEST = {"type": "object", "properties": {"to": {"type": "string"}, "reason": {"type": "string"}}}
MODEL = {
    "name": "model",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,63}$"},
}
VERSION = {
    "name": "version",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": r"^\d{8}-\d{6}-[0-9a-f]{6}$"},
}
JOB = {"name": "job", "in": "path", "required": True, "schema": VERSION["schema"]}

# path, method, summary, admin?, request schema, response schema
ROUTES: list[tuple[str, str, str, bool, dict[str, Any] | None, dict[str, Any] | None]] = [
    ("/v1/models/{model}/predict", "post", "Predict with the live version", False, PREDICT_REQUEST, PREDICT_RESPONSE),
    (
        "/v1/models/{model}/versions/{version}/predict",
        "post",
        "Predict with one pinned version",
        False,
        PREDICT_REQUEST,
        PREDICT_RESPONSE,
    ),
    ("/predict", "post", "Predict with the default model", False, PREDICT_REQUEST, PREDICT_RESPONSE),
    ("/v1/models", "get", "Every model: current, canary, versions count", False, None, None),
    ("/v1/models/{model}", "get", "Current, canary, previous, and what this process serves", False, None, None),
    ("/v1/models/{model}/versions", "get", "Versions with metrics, tags and status", False, None, None),
    ("/v1/models/{model}/versions/{version}", "get", "One version: record, manifest and metrics", False, None, None),
    ("/v1/models/{model}/versions/{version}", "delete", "Delete a version that is not live", True, None, None),
    ("/v1/models/{model}/history", "get", "Deploy history, newest first", False, None, None),
    ("/v1/models/{model}/fleet", "get", "Every live serving process and the version it serves", False, None, None),
    ("/v1/models/{model}/deploy", "post", "Validate a version and make it live", True, DEPLOY_REQUEST, TRANSITION),
    (
        "/v1/models/{model}/rollback",
        "post",
        "Roll back (no body: previous live version)",
        True,
        ROLLBACK_REQUEST,
        TRANSITION,
    ),
    ("/v1/models/{model}/reload", "post", "Re-read `current` now", True, None, None),
    ("/v1/models/{model}/canary", "get", "Canary config and this process's per-variant counts", False, None, None),
    (
        "/v1/models/{model}/canary",
        "post",
        "Start or update a canary (validated like a deploy)",
        True,
        CANARY_REQUEST,
        None,
    ),
    ("/v1/models/{model}/canary", "delete", "Stop the canary", True, None, None),
    ("/v1/models/{model}/canary/promote", "post", "Make the canary live and end the test", True, None, TRANSITION),
    (
        "/v1/models/{model}/versions",
        "post",
        "Upload a version (multipart: model, metrics, tags, example, description)",
        True,
        None,
        None,
    ),
    ("/v1/models/{model}/gc", "post", "Delete all but the newest N versions", True, GC_REQUEST, None),
    ("/v1/models/{model}/retrain", "post", "Start a retraining job (202)", True, RETRAIN_REQUEST, None),
    ("/v1/jobs/{job}", "get", "Job state, progress, log tail, resulting version", False, None, None),
    ("/v2", "get", "Open Inference Protocol: server metadata", False, None, None),
    ("/v2/health/live", "get", "Open Inference Protocol: live", False, None, None),
    ("/v2/health/ready", "get", "Open Inference Protocol: ready", False, None, None),
    ("/v2/models/{model}", "get", "Open Inference Protocol: model metadata", False, None, None),
    ("/v2/models/{model}/ready", "get", "Open Inference Protocol: model ready", False, None, None),
    ("/v2/models/{model}/infer", "post", "Open Inference Protocol: infer (canary routing applies)", False, None, None),
    ("/v2/models/{model}/versions/{version}", "get", "Open Inference Protocol: version metadata", False, None, None),
    ("/v2/models/{model}/versions/{version}/ready", "get", "Open Inference Protocol: version ready", False, None, None),
    ("/v2/models/{model}/versions/{version}/infer", "post", "Open Inference Protocol: pinned infer", False, None, None),
    ("/ping", "get", "MLflow scoring protocol: health", False, None, None),
    ("/version", "get", "MLflow scoring protocol: server version", False, None, None),
    ("/invocations", "post", "MLflow scoring protocol: predict with the default model", False, None, None),
    ("/healthz", "get", "Liveness", False, None, None),
    ("/readyz", "get", "Readiness: every served model has a loaded version", False, None, None),
    ("/metrics", "get", "Prometheus exposition", False, None, None),
]


def _operation(
    path: str, summary: str, admin: bool, request: dict[str, Any] | None, response: dict[str, Any] | None
) -> dict[str, Any]:
    params = [p for p, key in ((MODEL, "{model}"), (VERSION, "{version}"), (JOB, "{job}")) if key in path]
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": params,
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": response or {"type": "object"}}}},
            "default": {"description": "Error", "content": {"application/json": {"schema": ERROR}}},
        },
    }
    if request is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": request}}}
    if admin:
        op["security"] = [{"bearer": []}]
    return op


def build() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for path, method, summary, admin, request, response in ROUTES:
        paths.setdefault(path, {})[method] = _operation(path, summary, admin, request, response)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "modelswap",
            "version": "1",
            "description": "Filesystem-versioned model server with atomic hot-swap",
        },
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


OPENAPI = build()
