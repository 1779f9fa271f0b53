"""The OpenAPI paths and schemas of the delivery policy and of Alertmanager's webhook
(docs/progressive-delivery.md#delivery-policy)."""

from __future__ import annotations

from typing import Any

from modelswap.api.http.openapi_delivery import REASON, WRITE_ERRORS
from modelswap.api.http.openapi_operations import body, ok, operation
from modelswap.api.http.openapi_schemas import (
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
)

ANY_OBJECT: Schema = {"type": "object"}
STAGES = ("gate", "shadow", "rollout")
POLICY_RULES: dict[str, Schema] = {
    "gate": nullable(obj({"metric": STRING, "max_drop": {"type": "number", "minimum": 0}}, ("metric",))),
    "shadow": nullable(
        obj(
            {
                "seconds": {"type": "number", "minimum": 0.1},
                "min_requests": {"type": "integer", "minimum": 1},
                "min_agreement": nullable({"type": "number", "minimum": 0, "maximum": 1}),
                "max_error_rate": nullable({"type": "number", "minimum": 0, "maximum": 1}),
                "fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "max_hold_seconds": {"type": "number", "minimum": 0},
            }
        )
    ),
    "rollout": nullable(
        {
            "type": "object",
            "description": "A rollout plan without its version: steps, step_seconds, min_requests, "
            "max_hold_seconds, gates (absent: the defaults)",
        }  # fmt: skip
    ),
    "on_alert": nullable(
        obj(
            {
                "alerts": array(STRING, minItems=1),
                "min_severity": {"type": "string", "enum": ["info", "warning", "ticket", "critical", "page"]},
                "action": {"type": "string", "enum": ["retrain"]},
                "cooldown_seconds": {"type": "number", "minimum": 0},
                "retrain": obj({"dataset": STRING, "estimator": STRING, "seed": INTEGER}),
            },
            ("alerts",),
        )
    ),
}
STAGE: Schema = obj(
    {
        "stage": {"type": "string", "enum": list(STAGES)},
        "started_at": NUMBER,
        "ended_at": NUMBER,
        "verdict": {"type": "string", "enum": ["pass", "fail", "superseded", "ended"]},
        "figures": ANY_OBJECT,
        "reason": STRING,
    },
    ("stage", "verdict", "figures", "reason"),
)

POLICY_SCHEMAS: dict[str, Schema] = {
    "PolicyRequest": obj({**POLICY_RULES, "reason": REASON}),
    "PolicyStage": STAGE,
    "Policy": obj(
        {
            "model": STRING,
            "live": MAYBE_VERSION,
            "policy": nullable(obj({**POLICY_RULES, "set_at": STRING, "set_by": STRING})),
            "candidate": nullable(
                obj(
                    {
                        "version": STRING,
                        "live": MAYBE_VERSION,
                        "state": {"type": "string", "enum": ["running", "promoted", "rejected", "superseded", "ended"]},
                        "stage": {"type": "string", "enum": list(STAGES)},
                        "started_at": NUMBER,
                        "stage_started_at": NUMBER,
                        "policy": ANY_OBJECT,
                        "control_started": {"type": "boolean"},
                        "held_since": nullable(NUMBER),
                        "stages": array(ref("PolicyStage")),
                        "reason": STRING,
                        "last_figures": nullable(ANY_OBJECT),
                    },
                    ("version", "state", "stage", "stages"),
                )
            ),
        },
        ("model", "policy", "candidate"),
    ),
    "AlertmanagerPayload": obj(
        {
            "version": {"type": "string", "const": "4"},
            "status": {"type": "string", "enum": ["firing", "resolved"]},
            "receiver": STRING,
            "groupKey": STRING,
            "groupLabels": mapping(STRING),
            "commonLabels": mapping(STRING),
            "commonAnnotations": mapping(STRING),
            "externalURL": STRING,
            "truncatedAlerts": INTEGER,
            "alerts": array(
                obj(
                    {
                        "status": {"type": "string", "enum": ["firing", "resolved"]},
                        "labels": mapping(STRING),
                        "annotations": mapping(STRING),
                        "startsAt": STRING,
                        "endsAt": STRING,
                        "generatorURL": STRING,
                        "fingerprint": STRING,
                    },
                    ("status", "labels"),
                )
            ),
        },
        ("version", "alerts"),
    ),
    "AlertmanagerResult": obj(
        {
            "alerts": array(
                obj({"alert": STRING, "model": nullable(STRING), "outcome": STRING, "job": STRING}, ("outcome",))
            ),
            "retrains": INTEGER,
        },
        ("alerts", "retrains"),
    ),
}


def _admin(op_id: str, summary: str, *, required: bool) -> dict[str, Any]:
    request = body("PolicyRequest" if required else "ReasonRequest", required=required)
    return operation(op_id, "delivery", summary, {200: ok("Policy")}, errors=WRITE_ERRORS, params=("Model",),
                     request=request, auth="admin")  # fmt: skip


POLICY_PATHS: dict[str, dict[str, Any]] = {
    "/v1/models/{model}/policy": {
        "get": operation(
            "get_policy",
            "delivery",
            "The delivery policy and where its newest candidate stands",
            {200: ok("Policy")},
            errors=(400, 404, 500),
            params=("Model",),
            auth="read",
        ),  # fmt: skip
        "put": _admin("set_policy", "Set the policy every new version of the model goes through", required=True),
        "delete": _admin("clear_policy", "Remove the policy: new versions are left alone", required=False),
    },
    "/v1/alertmanager": {
        "post": operation(
            "alertmanager_webhook",
            "delivery",
            "Alertmanager's webhook: firing alerts may start a model's retrain",
            {200: ok("AlertmanagerResult")},
            errors=(400, 413, 500),
            request=body("AlertmanagerPayload"),
            auth="admin",
        )  # fmt: skip
    },
}
