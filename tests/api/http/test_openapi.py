"""The OpenAPI document: it lists exactly the served routes, is valid OpenAPI 3.1, matches
what a real server answers, and a client generated from it works against one."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import skops.io
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from modelswap.api.http.app import ROUTES
from modelswap.api.http.openapi import OPENAPI
from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, StepClock, fit_iris, publish
from tests.server import TOKEN, serve

METHODS = ("get", "post", "put", "delete", "patch")
DOC_URI = "urn:modelswap:openapi"
REGISTRY: Registry[Any] = Registry().with_resource(DOC_URI, Resource.from_contents(OPENAPI, DRAFT202012))
INFERENCE = [
    ("/v1/models/{model}/predict", "post"),
    ("/v1/models/{model}/versions/{version}/predict", "post"),
    ("/predict", "post"),
    ("/v2/models/{model}/infer", "post"),
    ("/v2/models/{model}/versions/{version}/infer", "post"),
    ("/invocations", "post"),
]


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in OPENAPI["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolve(ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = OPENAPI
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_the_openapi_document_describes_every_route_and_nothing_else() -> None:
    documented = {(path, method) for path, method, _ in operations()}
    served = {(r.path, m.lower()) for r in ROUTES for m in (r.methods or ()) if m != "HEAD"}
    assert served - {("/openapi.json", "get")} == documented


def test_the_document_is_valid_openapi_3_1() -> None:
    assert OPENAPI["openapi"].startswith("3.1")
    validate(OPENAPI)  # raises OpenAPIValidationError, naming the offending part


def test_operation_ids_are_unique_snake_case_and_every_ref_resolves() -> None:
    ids = [op["operationId"] for _, _, op in operations()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", i) for i in ids), ids
    assert {
        "predict",
        "predict_pinned",
        "deploy",
        "rollback",
        "list_versions",
        "v2_infer",
        "mlflow_invocations",
    } <= set(ids)
    found = list(refs(OPENAPI))
    assert len(found) > 100
    for ref in set(found):
        assert isinstance(resolve(ref), dict), ref


def test_admin_operations_require_the_bearer_token_and_reads_accept_it() -> None:
    admin = {op["operationId"] for _, _, op in operations() if op.get("security") == [{"bearer": []}]}
    assert admin == {
        "deploy",
        "rollback",
        "reload",
        "delete_version",
        "start_canary",
        "stop_canary",
        "promote_canary",
        "upload_version",
        "set_alias",
        "delete_alias",
        "gc",
        "retrain",
        "get_job",
        "set_monitor_config",
        "start_shadow",
        "stop_shadow",
        "start_rollout",
        "abort_rollout",
        "pause_rollout",
        "resume_rollout",
        "reset_watch",
        "set_policy",
        "clear_policy",
        "alertmanager_webhook",
        "whoami",
    }
    # open unless MODELSWAP_PROTECT_PREDICT=1, like predict
    assert OPENAPI["paths"]["/v1/models/{model}/feedback"]["post"]["security"] == [{}, {"bearer": []}]
    for _, _, op in operations():
        if "security" in op:
            assert "401" in op["responses"], op["operationId"]
    model = OPENAPI["paths"]["/v1/models/{model}"]["get"]
    assert model["security"] == [{}, {"bearer": []}]
    assert "MODELSWAP_PROTECT_READS=1" in model["responses"]["401"]["description"]
    predict = OPENAPI["paths"]["/v1/models/{model}/predict"]["post"]
    assert (
        predict["security"] == [{}, {"bearer": []}] and "PROTECT_PREDICT" in predict["responses"]["401"]["description"]
    )


def test_each_guarded_operation_names_the_role_its_route_declares() -> None:
    for route in ROUTES:
        role = getattr(route.endpoint, "role", None)
        for method in (route.methods or set()) - {"HEAD"}:
            if route.path == "/openapi.json":
                continue  # the document does not describe itself
            op = OPENAPI["paths"][route.path][method.lower()]
            assert op.get("x-modelswap-role") == role, (route.path, method)
            if role is None:
                continue
            assert {"403", "429"} <= set(op["responses"]), (route.path, method)
            # a bearer is required exactly where the role is asked for whatever the settings
            required = op["security"] == [{"bearer": []}]
            assert required == (role not in ("read", "predict") or route.endpoint.always), (route.path, method)


def test_inference_operations_take_the_routing_key_and_name_the_version_in_headers() -> None:
    for path, method in INFERENCE:
        op = OPENAPI["paths"][path][method]
        assert {"$ref": "#/components/parameters/RoutingKey"} in op["parameters"], path
        headers = op["responses"]["200"]["headers"]
        for name in ("X-Model-Version", "X-Model-Variant"):
            assert headers[name] == {"$ref": f"#/components/headers/{name}"}, path


def test_each_protocol_answers_errors_in_its_own_shape() -> None:
    shapes = {"/v2/": "#/components/schemas/V2Error", "/invocations": "#/components/schemas/MlflowError"}
    not_ready = {"/readyz", "/v2/health/ready"}  # their 503 is the readiness body, not an error
    for path, _, op in operations():
        expected = next(
            (ref for prefix, ref in shapes.items() if path.startswith(prefix)), "#/components/schemas/Error"
        )
        for status, response in op["responses"].items():
            if int(status) < 400 or path in not_ready or "application/json" not in response.get("content", {}):
                continue
            schema = response["content"]["application/json"]["schema"]
            options = [s["$ref"] for s in schema["anyOf"]] if "anyOf" in schema else [schema["$ref"]]
            assert options[0] == expected, (path, status)
            assert set(options) <= {expected, "#/components/schemas/Error"}, (path, status)


# -- against a real server ---------------------------------------------------------------


def pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def conforms(path: str, method: str, response: httpx.Response) -> httpx.Response:
    """Assert ``response`` is one the document declares for this operation: its status,
    media type, required headers, and (for JSON) its body against the schema."""
    op = OPENAPI["paths"][path][method]
    status = str(response.status_code)
    where = f"{method.upper()} {path} -> {status}: {response.text[:300]}"
    assert status in op["responses"], f"undeclared status: {where}"
    declared = op["responses"][status]
    media = response.headers.get("content-type", "").split(";")[0]
    assert media in declared["content"], f"undeclared media type {media!r}: {where}"
    for name, header in declared.get("headers", {}).items():
        if resolve(header["$ref"]).get("required"):
            assert name.lower() in response.headers, f"missing header {name}: {where}"
    if media == "application/json":
        schema_ref = DOC_URI + pointer("paths", path, method, "responses", status, "content", media, "schema")
        errors = list(OAS31Validator({"$ref": schema_ref}, registry=REGISTRY).iter_errors(response.json()))
        assert not errors, f"{where}\n" + "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    return response


@pytest.fixture
def iris_store(tmp_path: Path, iris_a: Any, iris_b: Any) -> tuple[Store, str, str]:
    store = Store(tmp_path / "models", clock=StepClock())
    a, b = publish(store, iris_a, tags={"owner": "ml"}), publish(store, iris_b)
    store.deploy("iris", a)
    store.deploy("iris", b)
    return store, a, b


def test_what_a_real_server_answers_conforms_to_the_document(
    iris_store: tuple[Store, str, str], tmp_path: Path
) -> None:
    store, a, b = iris_store
    model_file = tmp_path / "upload.skops"
    skops.io.dump(fit_iris(C=0.5), model_file)
    rows = {"instances": [IRIS_ROW, IRIS_ROW]}
    tensor = {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROW}
    env = {"MODELSWAP_MAX_BODY_BYTES": "65536"}
    with serve(store.root, env=env) as server, server.client() as anon, server.admin() as admin:

        def call(client: httpx.Client, method: str, path: str, url: str | None = None, **kw: Any) -> Any:
            return conforms(path, method, client.request(method, url or path.replace("{model}", "iris"), **kw))

        for path in ("/v1/models", "/v1/models/{model}", "/v1/models/{model}/versions", "/v1/models/{model}/fleet"):
            assert call(anon, "get", path).status_code == 200
        assert call(anon, "get", "/v1/models/{model}/history", params={"limit": 5}).json()["history"]
        version = "/v1/models/{model}/versions/{version}"
        assert call(anon, "get", version, f"/v1/models/iris/versions/{a}").json()["manifest"]["n_features_in"] == 4
        # native inference, and its errors
        predict, pinned = "/v1/models/{model}/predict", "/v1/models/{model}/versions/{version}/predict"
        assert call(anon, "post", predict, json=rows).json()["predictions"] == [1, 1]
        assert call(anon, "post", predict, json={"inputs": [IRIS_ROW], "method": "predict_proba"}).status_code == 200
        assert call(anon, "post", pinned, f"/v1/models/iris/versions/{a}/predict", json=rows).json()["version"] == a
        assert call(anon, "post", "/predict", json={**rows, "method": "decision_function"}).status_code == 200
        assert call(anon, "post", predict, json={"rows": []}).status_code == 400
        assert call(anon, "post", predict, "/v1/models/nope/predict", json=rows).status_code == 404
        assert call(anon, "post", predict, json={"instances": [IRIS_ROW] * 4000}).status_code == 413
        missing = "20200101-000000-abcdef"
        assert call(anon, "post", pinned, f"/v1/models/iris/versions/{missing}/predict", json=rows).status_code == 404
        assert call(anon, "get", version, f"/v1/models/iris/versions/{missing}").status_code == 404
        # admin verbs
        deploy, rollback = "/v1/models/{model}/deploy", "/v1/models/{model}/rollback"
        assert call(anon, "post", deploy, json={"version": a}).status_code == 401
        assert call(admin, "post", deploy, json={"version": a}).json()["current"] == a
        assert call(admin, "post", rollback).json()["current"] == b
        assert call(admin, "post", rollback).status_code == 409
        assert call(admin, "post", "/v1/models/{model}/reload").json()["serving"] == b
        files = {"model": model_file.read_bytes()}
        form = {"metrics": '{"accuracy": 0.97}', "tags": '{"team": "a"}', "description": "uploaded"}
        upload = call(admin, "post", "/v1/models/{model}/versions", files=files, data=form)
        assert upload.status_code == 201
        c = upload.json()["id"]
        canary = "/v1/models/{model}/canary"
        guard = {"max_error_rate": 0.5}
        assert call(admin, "post", canary, json={"version": c, "fraction": 0.5, "guard": guard}).status_code == 200
        assert call(anon, "get", canary).json()["running"] is True
        for key in ("k1", "k2", "k3", "k4"):
            call(anon, "post", predict, json=rows, headers={"X-Routing-Key": key})
        assert call(anon, "get", canary).json()["this_process"]["counts"]
        assert call(admin, "post", "/v1/models/{model}/canary/promote").json()["current"] == c
        assert call(admin, "delete", canary).status_code == 409
        assert call(admin, "post", "/v1/models/{model}/gc", json={"keep": 1, "dry_run": True}).json()["reasons"]
        assert call(admin, "delete", version, f"/v1/models/iris/versions/{a}").json() == {"model": "iris", "deleted": a}
        assert call(admin, "delete", version, f"/v1/models/iris/versions/{c}").status_code == 409
        # Open Inference Protocol
        for path in ("/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{model}", "/v2/models/{model}/ready"):
            assert call(anon, "get", path).status_code == 200
        v2_version = "/v2/models/{model}/versions/{version}"
        assert call(anon, "get", v2_version, f"/v2/models/iris/versions/{b}").json()["parameters"]["version"] == b
        assert call(anon, "get", v2_version + "/ready", f"/v2/models/iris/versions/{b}/ready").status_code == 400
        infer = "/v2/models/{model}/infer"
        outputs = [{"name": "predict"}, {"name": "predict_proba"}]
        assert call(anon, "post", infer, json={"id": "1", "inputs": [tensor], "outputs": outputs}).status_code == 200
        binary = call(anon, "post", infer, json={"inputs": [tensor], "parameters": {"binary_data_output": True}})
        assert binary.headers["content-type"] == "application/octet-stream"
        assert call(anon, "post", infer, json={"inputs": [{**tensor, "datatype": "BYTES"}]}).status_code == 400
        assert call(anon, "post", infer, "/v2/models/nope/infer", json={"inputs": [tensor]}).status_code == 404
        pinned_infer = "/v2/models/{model}/versions/{version}/infer"
        url = f"/v2/models/iris/versions/{b}/infer"
        assert call(anon, "post", pinned_infer, url, json={"inputs": [tensor]}).json()["model_version"] == b
        # MLflow scoring protocol
        assert call(anon, "get", "/ping").status_code == 200
        assert call(anon, "get", "/version").text
        split = {"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": [IRIS_ROW]}}
        columns = {"inputs": dict(zip("abcd", ([v] for v in IRIS_ROW), strict=True))}
        for payload in (split, {"dataframe_records": [dict(zip("abcd", IRIS_ROW, strict=True))]}, columns):
            assert call(anon, "post", "/invocations", json=payload).json() == {"predictions": [1]}
        csv = "a,b,c,d\n" + ",".join(map(str, IRIS_ROW)) + "\n"
        headers = {"Content-Type": "text/csv"}
        assert call(anon, "post", "/invocations", content=csv, headers=headers).status_code == 200
        assert call(anon, "post", "/invocations", json={"nothing": 1}).json()["error_code"] == "BAD_REQUEST"
        # operations, and a retrain job followed to its end
        for path in ("/healthz", "/readyz", "/metrics"):
            assert call(anon, "get", path).status_code == 200
        job = call(admin, "post", "/v1/models/{model}/retrain", json={"seed": 1}).json()["job"]
        deadline = time.monotonic() + 60
        while (state := call(admin, "get", "/v1/jobs/{job}", f"/v1/jobs/{job}").json())["state"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
        assert state["state"] == "succeeded", state
        assert call(admin, "get", "/v1/jobs/{job}", "/v1/jobs/20200101-000000-abcdef").status_code == 404
        assert call(anon, "get", "/v1/jobs/{job}", f"/v1/jobs/{job}").status_code == 401


def test_a_server_with_nothing_loaded_answers_503_in_each_protocols_shape(tmp_path: Path, iris_a: Any) -> None:
    store = Store(tmp_path / "models", clock=StepClock())
    version = publish(store, iris_a)
    store.deploy("iris", version)
    (store.paths("iris").version_dir(version) / "model.joblib").write_bytes(b"rot")  # deployed, cannot load
    with serve(store.root, ready=False) as server, server.client() as client:

        def call(method: str, path: str, **kw: Any) -> Any:
            return conforms(path, method, client.request(method, path.replace("{model}", "iris"), **kw))

        for path in ("/readyz", "/v2/health/ready", "/v2/models/{model}", "/ping"):
            assert call("get", path).status_code == 503, path
        assert call("post", "/v1/models/{model}/predict", json={"instances": [IRIS_ROW]}).status_code == 503
        tensor = {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROW}
        assert call("post", "/v2/models/{model}/infer", json={"inputs": [tensor]}).status_code == 503
        assert (
            call("post", "/invocations", json={"instances": [IRIS_ROW]}).json()["error_code"] == "SERVICE_UNAVAILABLE"
        )
        assert call("get", "/v1/models/{model}").json()["this_process"]["serving"] is None


# -- a generated client --------------------------------------------------------------------


def generate_client(tmp_path: Path, package: str) -> Path:
    """Generate a Python client with openapi-python-client (offline, no formatter hooks)."""
    doc, config, out = tmp_path / "openapi.json", tmp_path / "client.yaml", tmp_path / "client" / package
    doc.write_text(json.dumps(OPENAPI))
    config.write_text("post_hooks: []\n")
    options = {"--path": doc, "--output-path": out, "--meta": "none", "--config": config}
    args = [sys.executable, "-m", "openapi_python_client", "generate", *(str(x) for kv in options.items() for x in kv)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # the one piece it cannot generate: the text/csv body of /invocations (its JSON body is there)
    warnings = [line for line in output.splitlines() if line.startswith("WARNING")]
    assert warnings == ["WARNING parsing POST /invocations within mlflow."] and "text/csv" in output, output
    return out.parent


def test_a_generated_client_predicts_and_deploys_against_a_real_server(
    iris_store: tuple[Store, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, a, b = iris_store
    package = "modelswap_generated_client"
    monkeypatch.syspath_prepend(str(generate_client(tmp_path, package)))
    try:
        client_module = importlib.import_module(package)
        predict = importlib.import_module(f"{package}.api.inference.predict")
        deploy = importlib.import_module(f"{package}.api.admin.deploy")
        models = importlib.import_module(f"{package}.models")
        with serve(store.root) as server:
            anon = client_module.Client(base_url=server.url, raise_on_unexpected_status=True)
            admin = client_module.AuthenticatedClient(base_url=server.url, token=TOKEN, raise_on_unexpected_status=True)
            with anon, admin:
                request = models.PredictRequest(instances=[IRIS_ROW, IRIS_ROW])
                answer = predict.sync_detailed("iris", client=anon, body=request)
                assert answer.status_code == 200 and answer.headers["x-model-version"] == b
                assert isinstance(answer.parsed, models.PredictResponse)
                assert (answer.parsed.version, answer.parsed.predictions) == (b, [1, 1])
                assert answer.parsed.variant == models.Variant.STABLE

                denied = deploy.sync("iris", client=anon, body=models.DeployRequest(version=a))
                assert isinstance(denied, models.Error) and denied.error.code == "unauthorized"
                moved = deploy.sync("iris", client=admin, body=models.DeployRequest(version=a, reason="client"))
                assert isinstance(moved, models.Transition)
                assert (moved.previous, moved.current) == (b, a)
                after = predict.sync("iris", client=anon, body=request)
                assert isinstance(after, models.PredictResponse) and after.version == a
    finally:
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]
