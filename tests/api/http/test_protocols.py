"""Open Inference Protocol v2 (driven by the real tritonclient) and MLflow's scoring protocol,
against a real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, StepClock, publish
from tests.server import Server, serve

ROWS = [IRIS_ROW, [5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory, iris_a: Any, iris_b: Any
) -> Iterator[tuple[Server, Store, str, str]]:
    store = Store(tmp_path_factory.mktemp("proto") / "models", clock=StepClock())
    a, b = publish(store, iris_a), publish(store, iris_b)
    store.deploy("iris", a)
    with serve(store.root) as server:
        yield server, store, a, b


def native(server: Server, rows: list[list[float]], method: str = "predict") -> Any:
    with server.client() as client:
        return client.post("/v1/models/iris/predict", json={"instances": rows, "method": method}).json()


def test_tritonclient_drives_the_v2_endpoints_end_to_end(running: tuple[Server, Store, str, str]) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    server, store, a, b = running
    client = httpclient.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("iris")
        meta = client.get_model_metadata("iris")
        assert meta["name"] == "iris" and meta["platform"] == "sklearn" and a in meta["versions"]
        assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
        assert {o["name"] for o in meta["outputs"]} >= {"predict", "predict_proba"}

        x = httpclient.InferInput("input-0", [3, 4], "FP32")
        x.set_data_from_numpy(np.asarray(ROWS, dtype=np.float32))  # binary tensor extension
        outputs = [
            httpclient.InferRequestedOutput("predict", binary_data=False),
            httpclient.InferRequestedOutput("predict_proba", binary_data=True),
        ]
        result = client.infer("iris", [x], outputs=outputs, request_id="req-1")
        response = result.get_response()
        assert (response["model_name"], response["model_version"], response["id"]) == ("iris", a, "req-1")
        assert result.as_numpy("predict").tolist() == native(server, ROWS)["predictions"]
        # the inputs went as FP32, so the probabilities agree to float32 precision
        np.testing.assert_allclose(
            result.as_numpy("predict_proba"), native(server, ROWS, "predict_proba")["predictions"], rtol=1e-5
        )

        pinned = client.infer("iris", [x], model_version=b, outputs=outputs[:1])
        assert pinned.get_response()["model_version"] == b

        store.deploy("iris", b)  # a deploy between calls: the next answer names the new version
        with server.client() as c:
            c.post("/v1/models/iris/reload", headers={"Authorization": "Bearer test-admin-token"})
        assert client.infer("iris", [x], outputs=outputs[:1]).get_response()["model_version"] == b
        store.deploy("iris", a)
        with server.client() as c:
            c.post("/v1/models/iris/reload", headers={"Authorization": "Bearer test-admin-token"})

        wrong = httpclient.InferInput("input-0", [1, 3], "FP64")
        wrong.set_data_from_numpy(np.ones((1, 3)), binary_data=False)
        with pytest.raises(InferenceServerException, match="expects 4 features"):
            client.infer("iris", [wrong])
        with pytest.raises(InferenceServerException):
            client.get_model_metadata("nope")
    finally:
        client.close()


def tensor(shape: Any, datatype: str, data: list[Any]) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}]}


GOOD = tensor([1, 4], "FP64", [1, 2, 3, 4])
V2_CASES: list[tuple[str, Any, int, str]] = [
    ("/v2/models/iris/infer", tensor([1, 4], "FP64", [1, 2, 3]), 400, "do not fill"),
    (
        "/v2/models/iris/infer",
        tensor([1, 4], "BYTES", ["a", "b", "c", "d"]),
        400,
        "column #0 row 0: expected a number",
    ),
    ("/v2/models/iris/infer", tensor([1, 4], "FP99", [1, 2, 3, 4]), 400, "unknown datatype"),
    ("/v2/models/iris/infer", tensor([1, 4], "INT64", [1.5, 2, 3, 4]), 400, "does not match datatype"),
    ("/v2/models/iris/infer", tensor([1, 4], "FP64", ["1", "2", "3", "4"]), 400, "does not match datatype"),
    ("/v2/models/iris/infer", tensor([2, 2, 1], "FP64", [1, 2, 3, 4]), 400, "rows, features"),
    ("/v2/models/iris/infer", tensor([], "FP64", [1, 2, 3, 4]), 400, "rows, features"),
    ("/v2/models/iris/infer", tensor([True, 4], "FP64", [1, 2, 3, 4]), 400, "non-negative integers"),
    ("/v2/models/iris/infer", tensor([1, -4], "FP64", [1, 2, 3, 4]), 400, "non-negative integers"),
    ("/v2/models/iris/infer", tensor([4.0], "FP64", [1, 2, 3, 4]), 400, "non-negative integers"),
    ("/v2/models/iris/infer", tensor("1,4", "FP64", [1, 2, 3, 4]), 400, "non-negative integers"),
    ("/v2/models/iris/infer", {"inputs": []}, 400, "one tensor per column"),
    ("/v2/models/iris/infer", {**GOOD, "outputs": [{"name": "fit"}]}, 400, "unknown output"),
    ("/v2/models/iris/infer", {**GOOD, "outputs": [{"name": "predict", "parameters": [1]}]}, 400, "must be an object"),
    ("/v2/models/nope/infer", GOOD, 404, "not served"),
    ("/v2/models/iris/versions/20200101-000000-abcdef/infer", GOOD, 404, "no version"),
    ("/v2/models/iris/versions/latest/infer", GOOD, 400, "invalid version id"),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), V2_CASES)
def test_v2_errors_use_the_protocol_shape(
    running: tuple[Server, Store, str, str], path: str, body: Any, status: int, message: str
) -> None:
    server = running[0]
    with server.client() as client:
        r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"} and message in r.json()["error"]


def test_v2_json_tensors_flat_or_nested_give_the_native_answer(running: tuple[Server, Store, str, str]) -> None:
    server, _, a, _ = running
    expected = native(server, ROWS)["predictions"]
    with server.client() as client:
        for data in (np.asarray(ROWS).reshape(-1).tolist(), ROWS):
            r = client.post(
                "/v2/models/iris/infer",
                json={"id": "7", "inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64", "data": data}]},
                headers={"X-Routing-Key": "user-1"},
            )
            body = r.json()
            assert r.status_code == 200 and body["id"] == "7" and body["model_version"] == a
            assert body["outputs"][0]["name"] == "predict" and body["outputs"][0]["data"] == expected
            assert r.headers["x-model-variant"] == "stable"
        assert client.get("/v2").json()["name"] == "modelswap"
        assert client.get("/v2/models/iris/versions/20200101-000000-abcdef/ready").status_code == 404
        assert client.get(f"/v2/models/iris/versions/{a}/ready").json() == {"name": "iris", "ready": True}


MLFLOW_FORMS: list[tuple[str, Any]] = [
    ("instances", {"instances": ROWS}),
    ("inputs", {"inputs": ROWS}),
    ("dataframe_split", {"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": ROWS}}),
    ("dataframe_records", {"dataframe_records": [dict(zip("abcd", r, strict=True)) for r in ROWS]}),
    ("inputs as columns", {"inputs": {k: [r[i] for r in ROWS] for i, k in enumerate("abcd")}}),
]


@pytest.mark.parametrize(("form", "body"), MLFLOW_FORMS, ids=[f for f, _ in MLFLOW_FORMS])
def test_mlflow_payload_forms_match_the_native_route(
    running: tuple[Server, Store, str, str], form: str, body: Any
) -> None:
    server, _, a, _ = running
    with server.client() as client:
        r = client.post("/invocations", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": native(server, ROWS)["predictions"]}
    assert r.headers["x-model-version"] == a


def test_mlflow_csv_ping_and_version(running: tuple[Server, Store, str, str]) -> None:
    server = running[0]
    csv_body = "a,b,c,d\n" + "\n".join(",".join(str(v) for v in r) for r in ROWS) + "\n"
    with server.client() as client:
        r = client.post("/invocations", content=csv_body, headers={"Content-Type": "text/csv"})
        assert r.status_code == 200 and r.json()["predictions"] == native(server, ROWS)["predictions"]
        assert client.get("/ping").status_code == 200
        assert client.get("/version").text.strip()


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"{nope", "application/json", "not valid JSON"),
        (b'{"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]}', "application/json", "exactly one of"),
        (b'{"dataframe_split": {"columns": ["a"]}}', "application/json", "dataframe_split needs"),
        (b'{"instances": [["a", "b", "c", "d"]]}', "application/json", "column #0 row 0: expected a number"),
        (b"a,b,c,d\n1,2,x,4\n", "text/csv", "column #2 row 0: expected a number, got 'x'"),
        (b"a,b,c,d\n", "text/csv", "at least one data row"),
        (b"1,2,3,4", "application/xml", "unsupported content type"),
    ],
)
def test_malformed_mlflow_payloads_get_clear_400s(
    running: tuple[Server, Store, str, str], body: bytes, content_type: str, message: str
) -> None:
    server = running[0]
    with server.client() as client:
        r = client.post("/invocations", content=body, headers={"Content-Type": content_type})
    assert r.status_code == 400 and r.json()["error_code"] == "BAD_REQUEST" and message in r.json()["message"]


def test_an_answer_no_protocol_can_encode_is_refused_alike_by_every_protocol(tmp_path: Any) -> None:
    from tests.models_for_tests import AnswersObjects

    store = Store(tmp_path / "models", clock=StepClock())
    odd = publish(store, AnswersObjects(), model="odd")
    store.deploy("odd", odd)
    tensor = {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROW}
    calls: list[tuple[str, dict[str, Any], str]] = [
        ("/v1/models/odd/predict", {"instances": [IRIS_ROW]}, "native"),
        (f"/v1/models/odd/versions/{odd}/predict", {"instances": [IRIS_ROW]}, "native"),
        ("/predict", {"instances": [IRIS_ROW]}, "native"),
        ("/v2/models/odd/infer", {"inputs": [tensor]}, "v2"),
        ("/v2/models/odd/infer", {"inputs": [tensor], "parameters": {"binary_data_output": True}}, "v2"),
        (f"/v2/models/odd/versions/{odd}/infer", {"inputs": [tensor]}, "v2"),
        ("/invocations", {"instances": [IRIS_ROW]}, "mlflow"),
    ]
    with serve(store.root) as server, server.client() as client:
        messages = set()
        for path, body, protocol in calls:
            r = client.post(path, json=body)
            assert r.status_code == 500, (path, r.status_code, r.content[:300])
            assert "object at 0x" not in r.text and "Traceback" not in r.text
            error = r.json()
            if protocol == "native":
                assert error["error"]["code"] == "prediction_failed", error
                messages.add(error["error"]["message"])
            elif protocol == "v2":
                assert set(error) == {"error"}
                messages.add(error["error"])
            else:
                assert error["error_code"] == "INTERNAL_ERROR"
                messages.add(error["message"])
        metrics = client.get("/metrics").text
    assert messages == {
        f"odd {odd} failed to predict: it answered object values, "
        "but a prediction is made of numbers, booleans, strings and nulls"
    }
    errors = [
        line
        for line in metrics.splitlines()
        if line.startswith("modelswap_predictions_total{") and 'model="odd"' in line and 'outcome="error"' in line
    ]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in errors) == len(calls)
    assert "unhandled error" not in server.output()


def test_a_model_that_calls_sys_exit_fails_the_request_not_the_server(tmp_path: Any) -> None:
    """SystemExit is not an Exception: from a model it passed every handler on its way up
    and ended the worker's event loop, whether the call ran on a worker thread or, once
    proven cheap, on the loop itself."""
    from tests.models_for_tests import ExitsOnNegative

    store = Store(tmp_path / "models", clock=StepClock())
    exits = publish(store, ExitsOnNegative(), model="exits")
    store.deploy("exits", exits)
    with serve(store.root) as server, server.client() as client:

        def predict(row: list[float]) -> httpx.Response:
            return client.post("/v1/models/exits/predict", json={"instances": [row]})

        bad = [-1.0, 0.0, 0.0, 0.0]
        first = predict(bad)  # a new version: its first call is on a worker thread
        for _ in range(60):  # proven cheap: later calls go on the event loop
            assert predict(IRIS_ROW).status_code == 200
        second = predict(bad)
        for r in (first, second):
            assert r.status_code == 500 and r.json()["error"]["code"] == "prediction_failed", r.text
            assert r.json()["error"]["message"] == f"exits {exits} failed to predict: it raised SystemExit"
        assert client.get("/healthz").status_code == 200
        assert predict(IRIS_ROW).json()["predictions"] == [0]
    assert "unhandled error" not in server.output()


def test_a_null_in_a_text_output_stays_null_in_v2_json() -> None:
    import numpy as np

    from modelswap.api.http.tensors import encode_outputs

    tensors, raw = encode_outputs([("predict", np.array(["stay", None, 3], dtype=object), False)])
    assert raw == b"" and tensors == [
        {"name": "predict", "datatype": "BYTES", "shape": [3], "data": ["stay", None, "3"]}
    ]
