"""JSON Schema helpers and the named schemas of modelswap's own routes, for the OpenAPI
document (``openapi.py``; the Open Inference Protocol and MLflow bodies are in
``openapi_protocols.py``).

Each shape is the one the handlers really send (read views are built in
``core/operations.py``, verbs' bodies are their ``to_dict()``). Response objects stay
open (no ``additionalProperties: false``) so a field added later does not break a
client; request bodies are closed where the server refuses unknown fields.
"""

from __future__ import annotations

from typing import Any

from modelswap.api.http.payload import METHODS

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(
    properties: dict[str, Schema], required: tuple[str, ...] = (), *, closed: bool = False, description: str = ""
) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


def array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def mapping(values: Schema) -> Schema:
    """A JSON object used as a map: any key, values of one shape."""
    return {"type": "object", "additionalProperties": values}


def nullable(schema: Schema) -> Schema:
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    return {**schema, "type": [schema["type"], "null"]}


def one_of_keys(keys: tuple[str, ...], *, at_most_one: bool) -> Schema:
    """``not`` that says: at least one of ``keys`` (and at most one, if asked). Written
    with ``not`` rather than ``oneOf``/``anyOf`` of ``required`` lists, which client
    generators read as a union and turn into an untyped body."""
    absent: Schema = {"not": {}}  # the schema nothing matches (the generator cannot read a bare ``false``)
    none: Schema = {"properties": {key: absent for key in keys}}
    pairs = [{"required": [a, b]} for i, a in enumerate(keys) for b in keys[i + 1 :]] if at_most_one else []
    return {"not": {"anyOf": [none, *pairs]}}


def described(schema: Schema, description: str) -> Schema:
    return {**schema, "description": description}


def text(description: str) -> Schema:
    return {"type": "string", "description": description}


STRING: Schema = {"type": "string"}
NUMBER: Schema = {"type": "number"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
BINARY: Schema = {"type": "string", "format": "binary"}
ANY_LIST = array({})
STRINGS = array(STRING)
MODEL_NAME: Schema = {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,63}$", "examples": ["iris"]}
VERSION = text("A version id")
MAYBE_VERSION = nullable(text("A version id, or null when there is none"))
REASON = text("Why, for the history (cut to 1000 characters)")
FORCE = {
    "type": "boolean",
    "default": False,
    "description": "Go ahead even if the inputs break the live version's clients",
}
TIME = text("ISO 8601 UTC time")

ERRORS: dict[str, Schema] = {
    "Error": obj(
        {
            "error": obj(
                {"code": text("snake_case error code, e.g. invalid_input, version_not_found"), "message": STRING},
                ("code", "message"),
            )
        },
        ("error",),
        description="modelswap's error body (native routes, and any route's unexpected 500)",
    ),
    "V2Error": obj({"error": text("What went wrong")}, ("error",), description="Open Inference Protocol error body"),
    "MlflowError": obj(
        {
            "error_code": {"enum": ["BAD_REQUEST", "RESOURCE_DOES_NOT_EXIST", "SERVICE_UNAVAILABLE", "INTERNAL_ERROR"]},
            "message": STRING,
        },
        ("error_code", "message"),
        description="MLflow scoring protocol error body",
    ),
}

INFERENCE: dict[str, Schema] = {
    "VersionRef": {
        "anyOf": [ref("VersionId"), {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,63}$"}],
        "description": "A version id, or an alias such as champion",
    },
    "VersionId": {
        "type": "string",
        "pattern": r"^\d{8}-\d{6}-[0-9a-f]{6}$",
        "description": "A version id, YYYYMMDD-HHMMSS-xxxxxx (UTC publishing time and 6 hex digits)",
        "examples": ["20261123-024512-3f9a1c"],
    },
    "Value": {
        "type": ["number", "string", "boolean", "null"],
        "description": "One cell of its column's type (the model's signature); null where the column takes nulls",
    },
    "Row": array(ref("Value"), minItems=1, description="One row of feature values, in the signature's column order"),
    "Rows": array(ref("Row"), minItems=1, description="Rows, all of one length (at most MODELSWAP_MAX_ROWS)"),
    "Record": {
        "type": "object",
        "additionalProperties": ref("Value"),
        "description": 'One row by column name, e.g. {"plan": "pro", "tenure": 14}',
    },
    "Records": array(ref("Record"), minItems=1, description="Rows by column name (records)"),
    "Columns": {
        "type": "object",
        "additionalProperties": array(ref("Value")),
        "minProperties": 1,
        "description": 'Values by column, all of one length, e.g. {"plan": ["pro"], "tenure": [14]}',
    },
    "PredictRequest": obj(
        {
            "instances": {"anyOf": [ref("Rows"), ref("Records")], "description": "Rows or records"},
            "inputs": {
                "anyOf": [ref("Rows"), ref("Columns")],
                "description": "Rows, or columns by name (send instances or inputs, not both)",
            },
            "method": {"enum": list(METHODS), "default": "predict", "description": "The estimator method to call"},
        },
        closed=True,
        description='{"instances": [[5.1, 3.5, 1.4, 0.2]], "method": "predict"}; instances or inputs is required',
    )
    | one_of_keys(("instances", "inputs"), at_most_one=True),
    "Variant": {"enum": ["stable", "canary", "pinned"], "description": "Which variant answered"},
    "PredictResponse": obj(
        {
            "model": STRING,
            "version": VERSION,
            "variant": ref("Variant"),
            "predictions": described(
                ANY_LIST, "One answer per row: a label (number or string), or a row of numbers for predict_proba"
            ),
            "classes": described(
                ANY_LIST, "predict_proba, predict_log_proba and decision_function: the class of each column"
            ),
        },
        ("model", "version", "variant", "predictions"),
    ),
}

SLOT_PROPERTIES: dict[str, Schema] = {
    "serving": MAYBE_VERSION,
    "serving_since": nullable({"type": "number", "description": "Unix time of the last swap"}),
    "loaded_versions": STRINGS,
    "warnings": STRINGS,
    "last_load_error": nullable(ref("LoadError")),
    "last_swap_lag_seconds": nullable(NUMBER),
    "canary": MAYBE_VERSION,
    "shadow": MAYBE_VERSION,
}
ADMIN: dict[str, Schema] = {
    "DeployRequest": obj(
        {
            "version": ref("VersionRef"),
            "reason": REASON,
            "force": FORCE,
            "watch": described(
                {"type": "number", "exclusiveMinimum": 0, "maximum": 604800},
                "Seconds to watch the new version; a breach rolls back by itself",
            ),
            "max_error_rate": described(
                {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                "Watch: allowed server-error rate above the predecessor's (0.02)",
            ),
            "max_latency_ratio": described(
                {"type": "number", "minimum": 1}, "Watch: roll back when p99 exceeds this times the predecessor's"
            ),
            "min_requests": described({"type": "integer", "minimum": 1}, "Watch: requests before judging (50)"),
        },
        ("version",),
    ),  # fmt: skip
    "RollbackRequest": obj(
        {
            "to": {**ref("VersionRef"), "description": "Default: the previous live version"},
            "reason": REASON,
            "force": FORCE,
        }
    ),
    "ReasonRequest": obj({"reason": REASON}),
    "PromoteRequest": obj({"reason": REASON, "force": FORCE}),
    "AliasRequest": obj({"version": ref("VersionRef")}, ("version",)),
    "Aliases": obj({"model": STRING, "aliases": mapping(VERSION)}, ("model", "aliases")),
    "Transition": obj(
        {
            "model": STRING,
            "action": {"enum": ["deploy", "rollback", "canary_promote"]},
            "previous": MAYBE_VERSION,
            "current": VERSION,
            "watch": {"type": "object", "description": "The watch a deploy started"},
        },
        ("model", "action", "previous", "current"),
        description="The outcome of a deploy, rollback or promote; this process already serves `current`",
    ),
    "DeleteResult": obj({"model": STRING, "deleted": VERSION}, ("model", "deleted")),
    "LoadError": obj(
        {"version": STRING, "message": STRING, "code": STRING, "at": described(NUMBER, "Unix time")},
        ("version", "message", "code", "at"),
    ),
    "ReloadResult": obj(
        {"model": STRING, **SLOT_PROPERTIES},
        ("model", *SLOT_PROPERTIES),
        description="What this process serves after re-reading `current` and abtest.json",
    ),
}

CANARY: dict[str, Schema] = {
    "Guard": obj(
        {
            "max_error_rate": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
            "min_requests": {"type": "integer", "minimum": 1, "default": 100},
        },
        ("max_error_rate",),
        closed=True,
        description="Stop the canary when its error rate over at least min_requests exceeds max_error_rate",
    ),
    "CanaryRequest": obj(
        {
            "version": ref("VersionRef"),
            "fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "description": "Share of traffic"},
            "guard": nullable(ref("Guard")),
            "reason": REASON,
            "force": FORCE,
        },
        ("version", "fraction"),
        closed=True,
    ),
    "CanaryConfig": obj(
        {
            "version": VERSION,
            "fraction": NUMBER,
            "guard": nullable(ref("Guard")),
            "started_by": STRING,
            "started_at": TIME,
        },
        ("version", "fraction", "guard", "started_by", "started_at"),
    ),
    "VariantCounts": obj(
        {"requests": INTEGER, "errors": INTEGER, "error_rate": NUMBER}, ("requests", "errors", "error_rate")
    ),
    "CanaryStatus": obj(
        {
            "model": STRING,
            "running": BOOLEAN,
            "config": nullable(ref("CanaryConfig")),
            "this_process": nullable(
                obj(
                    {"canary_loaded": MAYBE_VERSION, "counts": mapping(ref("VariantCounts"))},
                    ("canary_loaded", "counts"),
                    description="This process's per-variant counts since the canary config changed (null: not served)",
                )
            ),
        },
        ("model", "running", "config", "this_process"),
    ),
    "CanaryStopped": obj({"model": STRING, "stopped": VERSION}, ("model", "stopped")),
}

SCHEMAS: dict[str, Schema] = {**ERRORS, **INFERENCE, **ADMIN, **CANARY}
