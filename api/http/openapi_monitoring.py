"""The OpenAPI paths and schemas of the monitoring routes (docs/monitoring.md)."""

from __future__ import annotations

from typing import Any

from modelswap.api.http.openapi_operations import body, ok, operation, optional_param
from modelswap.api.http.openapi_schemas import (
    BOOLEAN,
    INTEGER,
    MAYBE_VERSION,
    NUMBER,
    STRING,
    STRINGS,
    Schema,
    array,
    described,
    mapping,
    nullable,
    obj,
    ref,
    text,
)

MAYBE_NUMBER = nullable(NUMBER)
NUMBERS = array(NUMBER)

HISTOGRAM: Schema = obj(
    {
        "kind": {"enum": ["numeric", "categorical", "classes"]},
        "edges": described(NUMBERS, "numeric: the interior bin edges; a bin is (edges[i-1], edges[i]]"),
        "categories": described(STRINGS, "categorical, classes: the bins' names, the last __other__"),
        "reference": described(NUMBERS, "the reference rows' share in each bin, the nulls' share last (sums to 1)"),
        "observed": described(array(INTEGER), "the values counted in each bin, the nulls last"),
    },
    ("kind", "reference", "observed"),
    description="The reference distribution beside the observed one, bin by bin, as PSI compares them",
)

POINT: Schema = obj(
    {
        "start": text("The bucket's start (UTC, ISO 8601)"),
        "requests": INTEGER,
        "errors": mapping(INTEGER),
        "server_error_rate": MAYBE_NUMBER,
        "client_error_rate": MAYBE_NUMBER,
        "p99_ms": MAYBE_NUMBER,
    },
    ("start", "requests", "errors", "server_error_rate", "client_error_rate", "p99_ms"),
)

DRIFT: Schema = obj(
    {
        "feature": text("the column name, or prediction"),
        "samples": INTEGER,
        "psi": MAYBE_NUMBER,
        "js": MAYBE_NUMBER,
        "kl": MAYBE_NUMBER,
        "ks": MAYBE_NUMBER,
        "ks_pvalue": MAYBE_NUMBER,
        "severity": {"enum": ["none", "info", "warning", "insufficient_data", "no_reference"]},
        "nulls": INTEGER,
        "histogram": ref("DriftHistogram"),
    },
    ("feature", "samples", "severity"),
)

SUMMARY: Schema = obj(
    {
        "requests": INTEGER,
        "rows": INTEGER,
        "errors": mapping(INTEGER),
        "error_rate": described(MAYBE_NUMBER, "every failed request's share: client (4xx), server (5xx), timeouts"),
        "server_error_rate": described(MAYBE_NUMBER, "the model's failures' share: 5xx and timeouts"),
        "client_error_rate": described(MAYBE_NUMBER, "the share refused as the client's fault (4xx)"),
        "p99_ms": MAYBE_NUMBER,
        "drift": obj(
            {
                "reference": BOOLEAN,
                "features": array(ref("Drift")),
                "prediction": nullable(ref("Drift")),
                "dataset": nullable(
                    obj({"severity": STRING, "drifted": STRINGS, "share": NUMBER, "features": INTEGER})
                ),
            },
            ("reference", "features", "prediction", "dataset"),
        ),
        "quality": nullable(
            obj(
                {
                    "metric": {"enum": ["accuracy", "mae"]},
                    "value": NUMBER,
                    "labelled": INTEGER,
                    "published": MAYBE_NUMBER,
                },
                ("metric", "value", "labelled", "published"),
            )
        ),
    },
    (
        "requests",
        "rows",
        "errors",
        "error_rate",
        "server_error_rate",
        "client_error_rate",
        "p99_ms",
        "drift",
        "quality",
    ),
)

MONITOR_SCHEMAS: dict[str, Schema] = {
    "Drift": DRIFT,
    "DriftHistogram": HISTOGRAM,
    "MonitorPoint": POINT,
    "MonitorSummary": SUMMARY,
    "MonitorThresholds": {"type": "object", "additionalProperties": NUMBER, "examples": [{"psi_warning": 0.3}]},
    "MonitorConfig": {"type": "object", "properties": {"model": STRING}, "additionalProperties": NUMBER},
    "MonitorAlert": obj(
        {
            "kind": {"enum": ["feature_drift", "prediction_drift", "performance", "error_rate", "latency"]},
            "severity": {"enum": ["INFO", "WARNING", "CRITICAL"]},
            "model": STRING,
            "version": STRING,
            "variant": STRING,
            "feature": nullable(STRING),
            "value": NUMBER,
            "threshold": NUMBER,
            "message": STRING,
            "first_seen": STRING,
            "last_seen": STRING,
        },
        ("kind", "severity", "model", "version", "variant", "message", "first_seen", "last_seen"),
    ),
    "Monitor": obj(
        {
            "model": STRING,
            "live": MAYBE_VERSION,
            "canary": MAYBE_VERSION,
            "window_seconds": NUMBER,
            "time": STRING,
            "processes": INTEGER,
            "monitoring": BOOLEAN,
            "thresholds": ref("MonitorThresholds"),
            "versions": array(
                obj(
                    {
                        "version": STRING,
                        "variant": STRING,
                        "live": BOOLEAN,
                        "canary": BOOLEAN,
                        "window": ref("MonitorSummary"),
                        "series": described(array(ref("MonitorPoint")), "The window bucket by bucket, oldest first"),
                        "cumulative": {"type": "object"},
                    },
                    ("version", "variant", "live", "canary", "window", "series", "cumulative"),
                )
            ),
            "alerts": array(ref("MonitorAlert")),
            "shadow": {"type": ["object", "null"], "description": "The running shadow's comparison (GET .../shadow)"},
        },
        ("model", "live", "canary", "window_seconds", "versions", "alerts"),
    ),
    "Feedback": {
        "oneOf": [
            obj({"request_id": STRING, "label": {}}, ("request_id", "label")),
            obj(
                {"feedback": array(obj({"request_id": STRING, "label": {}}, ("request_id", "label")), minItems=1)},
                ("feedback",),
            ),
        ]
    },
    "FeedbackResult": obj(
        {"model": STRING, "matched": INTEGER, "unmatched": STRINGS, "duplicates": STRINGS},
        ("model", "matched", "unmatched", "duplicates"),
    ),
}

MONITOR_PARAMETERS: dict[str, Schema] = {
    "MonitorVersion": optional_param("version", "query", {"type": "string"}, "Only this version (an id or alias)"),
}

MONITOR_PATHS: dict[str, dict[str, Any]] = {
    "/v1/models/{model}/monitor": {
        "get": operation(
            "get_monitor",
            "models",
            "Drift against each version's reference, live quality, traffic and alerts, fleet-wide",
            {200: ok("Monitor")},
            errors=(400, 404, 500),
            params=("Model", "MonitorVersion"),
            auth="read",
        )
    },
    "/v1/models/{model}/monitor/config": {
        "get": operation(
            "get_monitor_config",
            "models",
            "The model's monitoring thresholds",
            {200: ok("MonitorConfig")},
            errors=(400, 404, 500),
            params=("Model",),
            auth="read",
        ),
        "put": operation(
            "set_monitor_config",
            "admin",
            "Change some monitoring thresholds (the others are kept)",
            {200: ok("MonitorConfig")},
            errors=(400, 404, 413, 500, 503),
            params=("Model",),
            request=body("MonitorThresholds"),
            auth="admin",
        ),
    },
    "/v1/models/{model}/feedback": {
        "post": operation(
            "feedback",
            "inference",
            "Labels for answered requests (by X-Request-Id): live quality per version",
            {200: ok("FeedbackResult")},
            errors=(400, 404, 413, 500),
            params=("Model",),
            request=body("Feedback"),
        )
    },
}
