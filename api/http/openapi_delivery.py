"""The OpenAPI paths and schemas of progressive delivery: shadow, stepped rollout, watched
deploy (docs/progressive-delivery.md)."""

from __future__ import annotations

from typing import Any

from modelswap.api.http.openapi_operations import body, ok, operation
from modelswap.api.http.openapi_schemas import (
    BOOLEAN,
    INTEGER,
    MAYBE_VERSION,
    NUMBER,
    STRING,
    Schema,
    array,
    mapping,
    nullable,
    obj,
    ref,
    text,
)

MAYBE_NUMBER = nullable(NUMBER)


def maybe_one_of(*values: str) -> Schema:
    return {"type": ["string", "null"], "enum": [*values, None]}


REASON = text("Why (recorded in history)")
FORCE: Schema = {"type": "boolean", "description": "Allow a version whose inputs would break live clients"}
FRACTION: Schema = {"type": "number", "exclusiveMinimum": 0, "maximum": 1}
GATES: Schema = {
    "type": "object",
    "description": "Changes to the default gates; null skips a gate",
    "properties": {
        name: nullable({"type": "number", "minimum": 0})
        for name in (
            "max_error_increase",
            "max_latency_ratio",
            "latency_slack_ms",
            "max_psi",
            "min_agreement",
            "max_quality_drop",
        )  # fmt: skip
    },
    "additionalProperties": False,
}
PLAN: dict[str, Schema] = {
    "version": ref("VersionRef"),
    "steps": array({"type": "number", "exclusiveMinimum": 0, "maximum": 100}, minItems=1),
    "step_seconds": {"type": "number", "minimum": 0.1},
    "min_requests": {"type": "integer", "minimum": 1},
    "max_hold_seconds": {"type": "number", "minimum": 0},
    "gates": ref("DeliveryGates"),
}
SHADOW_STATS: Schema = obj(
    {
        "kind": maybe_one_of("classifier", "regressor"),
        "requests": INTEGER,
        "compared": INTEGER,
        "rows": INTEGER,
        "agreement": MAYBE_NUMBER,
        "confusion": array(obj({"stable": STRING, "shadow": STRING, "rows": INTEGER})),
        "mean_abs_delta": MAYBE_NUMBER,
        "mean_rel_delta": MAYBE_NUMBER,
        "psi": MAYBE_NUMBER,
        "errors": INTEGER,
        "timeouts": INTEGER,
        "error_rate": MAYBE_NUMBER,
        "stable_p99_ms": MAYBE_NUMBER,
        "shadow_p99_ms": MAYBE_NUMBER,
        "dropped": INTEGER,
        "processes": INTEGER,
        "series": array(
            obj(
                {
                    "start": text("The bucket's start (UTC, ISO 8601)"),
                    "rows": INTEGER,
                    "agreement": MAYBE_NUMBER,
                    "mean_abs_delta": MAYBE_NUMBER,
                },
                ("start", "rows", "agreement", "mean_abs_delta"),
            ),
            description="The comparison per monitoring bucket, oldest first: agreement over time",
        ),
    },
    ("requests", "rows", "agreement", "psi", "errors", "processes"),
)
STATE: dict[str, Schema] = {
    "state": maybe_one_of("running", "paused", "promoted", "aborted"),
    "step": INTEGER,
    "step_percent": NUMBER,
    "started_at": NUMBER,
    "step_started_at": NUMBER,
    "started_by": STRING,
    "live": MAYBE_VERSION,
    "held_since": MAYBE_NUMBER,
    "last_judgement": nullable({"type": "object", "description": "verdict, gates (value, limit, passed), figures"}),
    "passed": array(
        {"type": "object", "description": "verdict, step_percent, time, gates (value, limit, passed, note), figures"},
        description="The judgement that passed each step so far, in order",
    ),
    "ended": STRING,
    "driver": nullable(text("The serving process that holds the lease and drives the rollout")),
}

DELIVERY_SCHEMAS: dict[str, Schema] = {
    "ShadowRequest": obj(
        {"version": ref("VersionRef"), "fraction": FRACTION, "reason": REASON, "force": FORCE}, ("version",)
    ),  # fmt: skip
    "ShadowStats": SHADOW_STATS,
    "Shadow": obj(
        {
            "model": STRING,
            "running": BOOLEAN,
            "live": MAYBE_VERSION,
            "version": MAYBE_VERSION,
            "fraction": MAYBE_NUMBER,
            "config": nullable({"type": "object"}),
            "agreement": MAYBE_NUMBER,
            "stats": nullable(ref("ShadowStats")),
            "this_process": nullable(obj({"dropped": INTEGER})),
        },
        ("model", "running", "version", "agreement", "stats"),
    ),
    "DeliveryGates": GATES,
    "RolloutRequest": obj({**PLAN, "reason": REASON, "force": FORCE}, ("version",)),
    "Rollout": obj(
        {
            "model": STRING,
            "running": BOOLEAN,
            **{k: v for k, v in PLAN.items() if k != "version"},
            "version": MAYBE_VERSION,
            "gates": mapping(MAYBE_NUMBER),
            **STATE,
        },
        ("model", "running", "version", "state"),
    ),  # fmt: skip
    "Watch": obj(
        {
            "model": STRING,
            "watching": BOOLEAN,
            "version": MAYBE_VERSION,
            "previous": MAYBE_VERSION,
            "state": maybe_one_of("watching", "passed", "tripped", "ended", "reset"),
            "watch": NUMBER,
            "max_error_rate": NUMBER,
            "max_latency_ratio": MAYBE_NUMBER,
            "min_requests": INTEGER,
            "started_at": NUMBER,
            "until": NUMBER,
            "ended": STRING,
            "figures": nullable({"type": "object"}),
        },
        ("model", "watching", "version", "state"),
    ),
}

WRITE_ERRORS = (400, 404, 409, 413, 422, 500, 503)


def _read(op_id: str, summary: str, schema: str) -> dict[str, Any]:
    return operation(op_id, "delivery", summary, {200: ok(schema)}, errors=(400, 404, 500), params=("Model",),
                     auth="read")  # fmt: skip


def _admin(op_id: str, summary: str, schema: str, request: str, *, required: bool = True) -> dict[str, Any]:
    return operation(op_id, "delivery", summary, {200: ok(schema)}, errors=WRITE_ERRORS, params=("Model",),
                     request=body(request, required=required), auth="admin")  # fmt: skip


DELIVERY_PATHS: dict[str, dict[str, Any]] = {
    "/v1/models/{model}/shadow": {
        "get": _read("get_shadow", "The shadow and its comparison with the live version, fleet-wide", "Shadow"),
        "post": _admin(
            "start_shadow",
            "Shadow a version on a share of live requests (off the response path)",
            "Shadow",
            "ShadowRequest",
        ),  # fmt: skip
        "delete": _admin(
            "stop_shadow",
            "Stop the shadow (returns its comparison as it stood)",
            "Shadow",
            "ReasonRequest",
            required=False,
        ),  # fmt: skip
    },
    "/v1/models/{model}/rollout": {
        "get": _read("get_rollout", "The stepped rollout: its plan, step, last judgement, driver", "Rollout"),
        "post": _admin(
            "start_rollout",
            "Start a stepped rollout (a canary moved through steps by its gates)",
            "Rollout",
            "RolloutRequest",
        ),  # fmt: skip
        "delete": _admin(
            "abort_rollout",
            "Abort the rollout: canary removed, all traffic to the live version",
            "Rollout",
            "ReasonRequest",
            required=False,
        ),  # fmt: skip
    },
    "/v1/models/{model}/rollout/pause": {
        "post": _admin("pause_rollout", "Hold the rollout at its step", "Rollout", "ReasonRequest", required=False)
    },
    "/v1/models/{model}/rollout/resume": {
        "post": _admin(
            "resume_rollout", "Go on (the step's time starts again)", "Rollout", "ReasonRequest", required=False
        )  # fmt: skip
    },
    "/v1/models/{model}/watch": {"get": _read("get_watch", "The watched deploy: its window, state, figures", "Watch")},
    "/v1/models/{model}/watch/reset": {
        "post": _admin(
            "reset_watch",
            "End a watch by hand, or clear a trip so the version may be deployed again",
            "Watch",
            "ReasonRequest",
            required=False,
        )  # fmt: skip
    },
}
