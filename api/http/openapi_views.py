"""The named schemas of the read views, workflows and probes, for the OpenAPI document
(their shapes are built in ``core/operations.py``; helpers in ``openapi_schemas.py``)."""

from __future__ import annotations

from modelswap.api.http.openapi_schemas import (
    ANY_LIST,
    BINARY,
    BOOLEAN,
    INTEGER,
    MAYBE_VERSION,
    NUMBER,
    SLOT_PROPERTIES,
    STRING,
    STRINGS,
    TIME,
    VERSION,
    Schema,
    array,
    described,
    mapping,
    nullable,
    obj,
    ref,
    text,
)
from modelswap.core.access.roles import ROLES
from modelswap.core.training.fit import DATASETS, ESTIMATORS
from modelswap.core.training.jobs import ACTIVE, FAILED, SUCCEEDED

LIVE_MARKS: dict[str, Schema] = {"current": MAYBE_VERSION, "canary": MAYBE_VERSION, "previous": MAYBE_VERSION}
MODEL_SUMMARY: dict[str, Schema] = {
    "model": STRING,
    **LIVE_MARKS,
    "versions": {"type": "integer", "description": "How many versions"},
}
VERSION_RECORD: dict[str, Schema] = {
    "id": VERSION,
    "model_id": text("Content id: m- and the first 32 hex digits of the manifest's sha256"),
    "created_at": TIME,
    "metrics": mapping({"type": ["number", "string"]}),
    "tags": mapping(STRING),
    "description": STRING,
    "manifest_sha256": STRING,
    "size": {"type": "integer", "description": "Bytes of the version's files"},
    "status": text("available, rolled_back, rejected or corrupt"),
    "parent": MAYBE_VERSION,
}
READS: dict[str, Schema] = {
    "ModelSummary": obj(MODEL_SUMMARY, tuple(MODEL_SUMMARY), description="previous is the rollback target"),
    "ModelList": obj({"models": array(ref("ModelSummary"))}, ("models",)),
    "ModelView": obj(
        {
            **MODEL_SUMMARY,
            "warnings": STRINGS,
            "signature": nullable(ref("Signature")),
            "aliases": mapping(VERSION),
            "this_process": nullable(
                obj(
                    {"process": text("host-pid"), "served": BOOLEAN, **SLOT_PROPERTIES},
                    ("process", "served"),
                    description="What THIS process serves; the slot fields are present only when served is true",
                )
            ),
        },
        (*MODEL_SUMMARY, "warnings", "this_process", "signature", "aliases"),
    ),
    "Version": obj(VERSION_RECORD, tuple(VERSION_RECORD), description="A version's registry record"),
    "PublishedVersion": obj({"model": STRING, **VERSION_RECORD}, ("model", *VERSION_RECORD)),
    "VersionWithMarks": obj(
        {**VERSION_RECORD, "live": array({"enum": ["current", "canary", "previous"]}), "aliases": STRINGS},
        (*VERSION_RECORD, "live", "aliases"),
    ),
    "VersionList": obj(
        {
            "model": STRING,
            **LIVE_MARKS,
            "aliases": mapping(VERSION),
            "versions": array(ref("VersionWithMarks"), description="Newest first"),
        },
        ("model", *LIVE_MARKS, "aliases", "versions"),
    ),
    "SignatureColumn": obj(
        {
            "name": nullable(text("Column name (null: the model knows positions only)")),
            "type": {"enum": ["double", "long", "boolean", "string", "datetime"]},
            "nullable": BOOLEAN,
            "required": {
                "type": "boolean",
                "description": "A request must send the column (false: left out, it is null in every row)",
            },
        },
        ("name", "type", "nullable", "required"),
    ),
    "Signature": obj(
        {
            "inputs": array(ref("SignatureColumn"), description="The columns, in the model's order"),
            "frame": described(BOOLEAN, "The model was fitted on a DataFrame and gets one"),
            "output": nullable(
                obj({"methods": STRINGS, "classes": nullable(ANY_LIST), "shape": array(INTEGER)}, ("methods",))
            ),
        },
        ("inputs",),
    ),
    "Lineage": obj(
        {
            "model": STRING,
            "version": VERSION,
            "ancestors": array(VERSION, description="Parent first"),
            "descendants": STRINGS,
        },
        ("model", "version", "ancestors", "descendants"),
    ),
    "Comparison": obj(
        {
            "model": STRING,
            "a": VERSION,
            "b": VERSION,
            "metrics": mapping(obj({"a": {}, "b": {}, "delta": nullable(NUMBER)}, ("a", "b", "delta"))),
            "schema": obj({"breaking": STRINGS, "compatible": STRINGS}, ("breaking", "compatible")),
            "size": obj({"a": INTEGER, "b": INTEGER, "delta": INTEGER}),
            "estimator": obj({"a": STRING, "b": STRING}),
            "sklearn_version": obj({"a": nullable(STRING), "b": nullable(STRING)}),
            "parent": obj({"a": MAYBE_VERSION, "b": MAYBE_VERSION}),
        },
        ("model", "a", "b", "metrics", "schema", "size"),
    ),
    "Manifest": obj(
        {
            "format": INTEGER,
            "model": STRING,
            "version": VERSION,
            "created_at": TIME,
            "files": mapping(obj({"sha256": STRING, "size": INTEGER}, ("sha256", "size"))),
            "python_version": STRING,
            "sklearn_version": nullable(STRING),
            "joblib_version": nullable(STRING),
            "numpy_version": nullable(STRING),
            "estimator": text("The estimator's class path"),
            "n_features_in": nullable(INTEGER),
            "feature_names": nullable(STRINGS),
            "input_example": array(
                {"anyOf": [ref("Row"), ref("Record")]}, description="Rows, or records for named columns"
            ),
            "tags": mapping(STRING),
            "description": STRING,
            "parent": MAYBE_VERSION,
            "signature": nullable(ref("Signature")),
            "metadata": {"type": "object", "description": "Free-form JSON given at publish"},
            "model_format": {
                "type": "string",
                "enum": ["joblib", "skops"],
                "description": "Which model file the version holds: model.joblib or model.skops",
            },
            "skops_version": nullable(STRING),
            "reference": nullable(ref("ReferenceSummary")),
        },
        ("model", "version", "files", "estimator"),
    ),
    "VersionDetail": obj(
        {
            **VERSION_RECORD,
            "model": STRING,
            "aliases": STRINGS,
            "manifest": ref("Manifest"),
            "metrics": {"type": "object", "description": "metrics.json"},
            "reference": nullable(ref("ReferenceSummary")),
        },
        (*VERSION_RECORD, "manifest"),
    ),
    "ReferenceSummary": obj(
        {
            "rows": described(INTEGER, "Reference rows profiled (at most 100,000, sampled)"),
            "features": described(STRINGS, "The columns profiled, in signature order (#0, #1... for positions)"),
        },
        ("rows", "features"),
        description="The version's reference profile (reference.json): the training data it was published with",
    ),
    "HistoryEntry": obj(
        {
            "time": TIME,
            "action": text("deploy, rollback, canary_start, canary_stop, canary_abort, canary_promote, publish, ..."),
            "actor": STRING,
            "from": MAYBE_VERSION,
            "to": MAYBE_VERSION,
            "reason": STRING,
            "details": {"type": "object", "description": "Present for some actions (canary_start, gc)"},
        },
        ("time", "action", "actor", "from", "to", "reason"),
    ),
    "History": obj(
        {"model": STRING, "history": array(ref("HistoryEntry"), description="Newest first")}, ("model", "history")
    ),
    "Heartbeat": obj(
        {
            "host": STRING,
            "pid": INTEGER,
            "time": described(NUMBER, "Unix time of the heartbeat"),
            "version": MAYBE_VERSION,
            "canary": MAYBE_VERSION,
            "last_load_error": nullable(STRING),
            "loaded_versions": STRINGS,
            "last_swap_lag_seconds": nullable(NUMBER),
            "started_at": NUMBER,
        },
        ("time",),
    ),
    "Fleet": obj(
        {
            "model": STRING,
            "current": MAYBE_VERSION,
            "processes": array(ref("Heartbeat")),
            "summary": text('e.g. "3/3 processes on <id>"'),
            "converged": BOOLEAN,
        },
        ("model", "current", "processes", "summary", "converged"),
    ),
}

WORKFLOWS: dict[str, Schema] = {
    "UploadForm": obj(
        {
            "model": {
                **BINARY,
                "description": "The model file: skops (skops.io.dump; a .skops name or a zip archive), or "
                "joblib if the server sets MODELSWAP_ALLOW_PICKLE_UPLOADS=1",
            },
            "metrics": text('JSON object of names to numbers or strings, e.g. {"accuracy": 0.97}'),
            "tags": text('JSON object, e.g. {"owner": "ml"}'),
            "example": text(
                'JSON rows or records to infer the signature from and validate with, e.g. [{"plan": "pro"}]'
            ),
            "signature": text(
                'JSON signature overriding inference: {"inputs": [{"name", "type", "nullable", "required"}]}'
            ),
            "metadata": text("JSON object of free-form metadata"),
            "reference": text(
                "JSON rows or records of the training data (send it as a file part: -F reference=@train.json); "
                "the version keeps their profile and its predictions' (reference.json)"
            ),
            "force": text("true: publish even if the inputs break clients of the live version"),
            "description": STRING,
        },
        ("model",),
        closed=True,
    ),
    "GcRequest": obj(
        {"keep": {"type": "integer", "minimum": 0}, "dry_run": {"type": "boolean", "default": False}}, ("keep",)
    ),
    "GcPlan": obj(
        {
            "model": STRING,
            "deleted": STRINGS,
            "kept": STRINGS,
            "dry_run": BOOLEAN,
            "reasons": described(mapping(STRINGS), "Why each kept version stays"),
        },
        ("model", "deleted", "kept", "dry_run", "reasons"),
    ),
    "RetrainRequest": obj(
        {
            "dataset": {"enum": list(DATASETS), "default": "iris"},
            "estimator": {"enum": list(ESTIMATORS), "default": "logreg"},
            "deploy": {"type": "boolean", "default": False},
            "deploy_if_better": {
                "type": "string",
                "pattern": "^[A-Za-z0-9_.-]{1,64}$",
                "description": "Deploy only if this metric beats the live version's (not with deploy)",
            },
            "seed": {"type": "integer", "default": 0},
        },
    ),
    "RetrainAccepted": obj(
        {"job": STRING, "id": STRING, "model": STRING, "state": {"const": "queued"}},
        ("job", "id", "model", "state"),
        description="Poll GET /v1/jobs/{job}",
    ),
    "RetrainOutcome": obj(
        {"model": STRING, "version": VERSION, "metrics": mapping(NUMBER), "deployed": BOOLEAN, "reason": STRING},
        ("model", "version", "deployed"),
    ),
    "Job": obj(
        {
            "id": STRING,
            "model": STRING,
            "state": {"enum": [*ACTIVE, SUCCEEDED, FAILED]},
            "params": {"type": "object"},
            "actor": STRING,
            "created_at": TIME,
            "host": STRING,
            "pid": nullable(INTEGER),
            "progress": STRING,
            "result": nullable(ref("RetrainOutcome")),
            "error": nullable(STRING),
            "updated": NUMBER,
            "log_tail": array(STRING, description="The last lines of the job's log"),
        },
        ("id", "model", "state", "log_tail"),
    ),
    "Whoami": obj(
        {
            "name": STRING,
            "role": {"enum": list(ROLES)},
            "models": nullable(array(STRING, description="Names or globs it covers; null: every model")),
            "expires": nullable(TIME),
            "allowed": array({"enum": list(ROLES)}, description="The roles its role includes"),
        },
        ("name", "role", "models", "expires", "allowed"),
    ),
}

OPERATIONS: dict[str, Schema] = {
    "Health": obj({"status": {"const": "ok"}}, ("status",)),
    "Readiness": obj(
        {
            "ready": BOOLEAN,
            "models": described(mapping(MAYBE_VERSION), "Each served model and the version it serves"),
            "waiting_for": array(STRING, description="Served models whose live version is not loaded yet"),
        },
        ("ready", "models"),
    ),
}


VIEW_SCHEMAS: dict[str, Schema] = {**READS, **WORKFLOWS, **OPERATIONS}
