"""The OpenAPI document's part for the interoperable protocols: the Open Inference
Protocol v2 (``v2.py``, ``tensors.py``) and MLflow's scoring protocol (``mlflow.py``),
their schemas and their operations."""

from __future__ import annotations

from typing import Any

from modelswap.api.http.openapi_operations import (
    MLFLOW,
    NO_DEFAULT,
    PINNED_ERRORS,
    PREDICT_ERRORS,
    PREDICTION_HEADERS,
    V2,
    header,
    json_content,
    ok,
    operation,
    plain_text,
)
from modelswap.api.http.openapi_schemas import (
    ANY_LIST,
    BINARY,
    BOOLEAN,
    INTEGER,
    NUMBER,
    STRING,
    STRINGS,
    VERSION,
    Schema,
    array,
    described,
    mapping,
    obj,
    one_of_keys,
    ref,
)
from modelswap.api.http.payload import METHODS
from modelswap.api.http.tensors import DTYPES

TENSOR_METADATA = obj({"name": STRING, "datatype": STRING, "shape": array(INTEGER)}, ("name", "datatype", "shape"))
V2_SCHEMAS: dict[str, Schema] = {
    "V2InputTensor": obj(
        {
            "name": {"type": "string", "minLength": 1},
            "shape": array(
                {"type": "integer", "minimum": 0},
                description="[rows, features] (or [features]) for one tensor; [rows] for a tensor per column",
            ),
            "datatype": {
                "enum": [*DTYPES, "BYTES"],
                "description": "BYTES carries strings (a column of text); numbers use FP*/INT*/UINT*/BOOL",
            },
            "data": described(ANY_LIST, "The values, flat or nested (absent with the binary extension)"),
            "parameters": obj({"binary_data_size": {"type": "integer", "minimum": 0}}),
        },
        ("name", "shape", "datatype"),
    ),
    "V2RequestedOutput": obj(
        {"name": {"enum": list(METHODS)}, "parameters": obj({"binary_data": BOOLEAN})},
        ("name",),
    ),
    "V2InferRequest": obj(
        {
            "id": STRING,
            "inputs": array(ref("V2InputTensor"), minItems=1, maxItems=1, description="Exactly one [rows, features]"),
            "outputs": array(ref("V2RequestedOutput"), minItems=1, description="Default: predict"),
            "parameters": obj({"binary_data_output": BOOLEAN}),
        },
        ("inputs",),
    ),
    "V2OutputTensor": obj(
        {
            "name": STRING,
            "datatype": STRING,
            "shape": array(INTEGER),
            "data": described(ANY_LIST, "Flat values (absent when sent as binary)"),
            "parameters": obj({"binary_data_size": INTEGER}),
        },
        ("name", "datatype", "shape"),
    ),
    "V2InferResponse": obj(
        {
            "model_name": STRING,
            "model_version": VERSION,
            "id": {"description": "The request's id, echoed"},
            "parameters": obj({"variant": ref("Variant")}, ("variant",)),
            "outputs": array(ref("V2OutputTensor")),
        },
        ("model_name", "model_version", "parameters", "outputs"),
    ),
    "V2TensorMetadata": TENSOR_METADATA,
    "V2ServerMetadata": obj(
        {"name": STRING, "version": STRING, "extensions": STRINGS}, ("name", "version", "extensions")
    ),
    "V2ModelMetadata": obj(
        {
            "name": STRING,
            "versions": STRINGS,
            "platform": STRING,
            "inputs": array(ref("V2TensorMetadata")),
            "outputs": array(ref("V2TensorMetadata")),
            "parameters": obj({"version": VERSION, "estimator": STRING}),
        },
        ("name", "versions", "platform", "inputs", "outputs"),
    ),
    "V2Live": obj({"live": BOOLEAN}, ("live",)),
    "V2Ready": obj({"ready": BOOLEAN}, ("ready",)),
    "V2ModelReady": obj({"name": STRING, "ready": BOOLEAN}, ("name", "ready")),
}

RECORDS = array(mapping(NUMBER), minItems=1, description='[{"col": value}, ...]')
COLUMNS = described(mapping(array(NUMBER)), '{"col": [values], ...}, every list of one length')
MLFLOW_SCHEMAS: dict[str, Schema] = {
    "MlflowRequest": obj(
        {
            "dataframe_split": obj({"columns": STRINGS, "data": ref("Rows")}, ("data",)),
            "dataframe_records": RECORDS,
            "instances": {"anyOf": [ref("Rows"), RECORDS]},
            "inputs": {"anyOf": [ref("Rows"), RECORDS, COLUMNS]},
        },
        description="Exactly one of the four; columns are put in the model's feature order when it has names",
    )
    | one_of_keys(("dataframe_split", "dataframe_records", "instances", "inputs"), at_most_one=True),
    "MlflowPredictions": obj({"predictions": ANY_LIST}, ("predictions",)),
}
PROTOCOL_SCHEMAS = {**V2_SCHEMAS, **MLFLOW_SCHEMAS}

OIP = "open-inference-protocol"
MODEL, VERSION_PARAMS = ("Model",), ("Model", "Version")
NOT_LOADED = "Not loaded in this process (the protocol's not-ready answer), or an invalid model name or version id"


def v2_infer(op_id: str, summary: str, params: tuple[str, ...], errors: tuple[int, ...]) -> dict[str, Any]:
    binary = {"schema": BINARY}
    response = {
        "description": "Output tensors; application/octet-stream (the JSON, then the binary data) "
        "when an output asked for binary_data",
        "headers": {**PREDICTION_HEADERS, "Inference-Header-Content-Length": header("Inference-Header-Content-Length")},
        "content": {**json_content(ref("V2InferResponse")), "application/octet-stream": binary},
    }
    return operation(
        op_id,
        OIP,
        summary,
        {200: response},
        errors=errors,
        protocol=V2,
        params=(*params, "RoutingKey", "InferenceHeaderLength"),
        request={
            "required": True,
            "content": {**json_content(ref("V2InferRequest")), "application/octet-stream": binary},
        },
        description="The binary tensor extension: the JSON request, then the raw little-endian tensor bytes, "
        "with Inference-Header-Content-Length giving the JSON part's length.",
    )


def v2_get(
    op_id: str, summary: str, schema: str, params: tuple[str, ...], errors: tuple[int, ...], notes: dict[int, str]
) -> dict[str, Any]:
    return operation(op_id, OIP, summary, {200: ok(schema)}, errors=errors, protocol=V2, params=params, notes=notes)


CSV: Schema = {"schema": {"type": "string", "description": "A header row, then rows of numbers"}}
PROTOCOL_PATHS: dict[str, dict[str, dict[str, Any]]] = {
    "/v2/models/{model}/infer": {"post": v2_infer("v2_infer", "Infer (canary routing applies)", MODEL, PREDICT_ERRORS)},
    "/v2/models/{model}/versions/{version}/infer": {
        "post": v2_infer("v2_infer_pinned", "Infer with one pinned version", VERSION_PARAMS, PINNED_ERRORS)
    },
    "/invocations": {
        "post": operation(
            "mlflow_invocations",
            "mlflow",
            "Predict with the default model",
            {200: ok("MlflowPredictions", "Predictions", headers=PREDICTION_HEADERS)},
            errors=PREDICT_ERRORS,
            protocol=MLFLOW,
            params=("RoutingKey",),
            notes={404: NO_DEFAULT},
            request={"required": True, "content": {**json_content(ref("MlflowRequest")), "text/csv": CSV}},
        )
    },
    "/v2": {"get": operation("v2_server_metadata", OIP, "Server metadata", {200: ok("V2ServerMetadata")})},
    "/v2/health/live": {"get": operation("v2_live", OIP, "Live", {200: ok("V2Live")})},
    "/v2/health/ready": {
        "get": operation(
            "v2_ready",
            OIP,
            "Ready: every served model that has a live version has it loaded",
            {200: ok("V2Ready", "Ready"), 503: ok("V2Ready", "Not ready")},
        )
    },
    "/v2/models/{model}": {
        "get": v2_get(
            "v2_model_metadata",
            "Model metadata (of the live version)",
            "V2ModelMetadata",
            MODEL,
            (400, 404, 500, 503),
            {},
        )
    },
    "/v2/models/{model}/ready": {
        "get": v2_get("v2_model_ready", "Model ready", "V2ModelReady", MODEL, (400, 404, 500), {400: NOT_LOADED})
    },
    "/v2/models/{model}/versions/{version}": {
        "get": v2_get(
            "v2_version_metadata",
            "Metadata of one version (loads it if needed)",
            "V2ModelMetadata",
            VERSION_PARAMS,
            (400, 404, 422, 500, 507),
            {},
        )
    },
    "/v2/models/{model}/versions/{version}/ready": {
        "get": v2_get(
            "v2_version_ready",
            "Version ready: it is the live or the canary version here",
            "V2ModelReady",
            VERSION_PARAMS,
            (400, 404, 500),
            {400: NOT_LOADED},
        )
    },
    "/ping": {
        "get": operation(
            "mlflow_ping",
            "mlflow",
            "Health: 200 once every served model that has a live version has it loaded",
            {200: plain_text("Ready"), 503: plain_text("Not ready")},
        )
    },
    "/version": {"get": operation("mlflow_version", "mlflow", "Server version", {200: plain_text("The version")})},
}
