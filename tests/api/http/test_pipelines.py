"""Real scikit-learn pipelines on a real server: a ColumnTransformer fitted on a DataFrame
(string categorical + numbers), a HistGradientBoosting model and an imputer fed nulls.
Every input form on every protocol answers what the pipeline answers in process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from modelswap.core.store.store import Store
from tests.conftest import StepClock
from tests.models_for_tests import churn_pipeline, imputing_pipeline
from tests.server import Server, serve

ROWS = [["pro", 14, 38.29], ["basic", 3, 12.5], ["enterprise", 40, 95.0]]
RECORDS = [{"spend": r[2], "plan": r[0], "tenure": r[1]} for r in ROWS]  # keys in another order


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Store, Any, dict[str, str]]]:
    store = Store(tmp_path_factory.mktemp("pipelines") / "models", clock=StepClock())
    pipeline, frame = churn_pipeline()
    churn = store.publish("churn", pipeline, example=frame.head(3), metrics={"accuracy": 0.9}).id
    store.deploy("churn", churn)
    imputer, numbers = imputing_pipeline()
    store.deploy("imputer", store.publish("imputer", imputer, example=numbers.head(8)).id)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    hgb = HistGradientBoostingClassifier(max_iter=20).fit(X, (X[:, 0] > 0).astype(int))
    store.deploy("hgb", store.publish("hgb", hgb, example=X[:2]).id)
    with serve(store.root) as server:
        yield server, store, pipeline, {"churn": churn}


def expected(pipeline: Any, rows: list[list[Any]], method: str = "predict") -> list[Any]:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["plan", "tenure", "spend"])
    result: list[Any] = getattr(pipeline, method)(frame).tolist()
    return result


def test_the_signature_names_and_types_the_columns_and_the_classes(
    running: tuple[Server, Store, Any, dict[str, str]],
) -> None:
    server, store, _, ids = running
    view = server.get_json("/v1/models/churn")
    assert view["signature"]["inputs"] == [
        {"name": "plan", "type": "string", "nullable": True, "required": True},  # the encoder takes null too
        {"name": "tenure", "type": "long", "nullable": False, "required": True},
        {"name": "spend", "type": "double", "nullable": False, "required": True},
    ]
    assert view["signature"]["frame"] is True and view["signature"]["output"]["classes"] == ["churned", "stayed"]
    manifest = store.manifest("churn", ids["churn"])
    assert isinstance(manifest.input_example[0], dict) and set(manifest.input_example[0]) == {"plan", "tenure", "spend"}
    v2 = server.get_json("/v2/models/churn")
    assert [(i["name"], i["datatype"]) for i in v2["inputs"]] == [
        ("plan", "BYTES"),
        ("tenure", "INT64"),
        ("spend", "FP64"),
    ]


COLUMNS = {"tenure": [r[1] for r in ROWS], "plan": [r[0] for r in ROWS], "spend": [r[2] for r in ROWS]}


@pytest.mark.parametrize("pinned", [False, True])
@pytest.mark.parametrize(
    "body", [{"instances": ROWS}, {"instances": RECORDS}, {"inputs": COLUMNS}], ids=["rows", "records", "columns"]
)
def test_every_native_form_answers_what_the_pipeline_answers(
    running: tuple[Server, Store, Any, dict[str, str]], body: dict[str, Any], pinned: bool
) -> None:
    server, _, pipeline, ids = running
    path = f"/v1/models/churn/versions/{ids['churn']}/predict" if pinned else "/v1/models/churn/predict"
    with server.client() as client:
        r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == expected(pipeline, ROWS)


def test_mlflow_forms_and_csv_on_a_server_whose_default_model_is_the_pipeline(
    running: tuple[Server, Store, Any, dict[str, str]],
) -> None:
    server, store, pipeline, _ = running
    want = expected(pipeline, ROWS)
    forms = [
        {"dataframe_split": {"columns": ["tenure", "plan", "spend"], "data": [[r[1], r[0], r[2]] for r in ROWS]}},
        {"dataframe_records": RECORDS},
        {"instances": RECORDS},
        {"instances": ROWS},
        {"inputs": {"plan": [r[0] for r in ROWS], "tenure": [r[1] for r in ROWS], "spend": [r[2] for r in ROWS]}},
    ]
    csv = "spend,plan,tenure\n" + "".join(f"{r[2]},{r[0]},{r[1]}\n" for r in ROWS)
    with serve(store.root, env={"MODELSWAP_DEFAULT_MODEL": "churn"}) as mlflow, mlflow.client() as client:
        for form in forms:
            r = client.post("/invocations", json=form)
            assert (r.status_code, r.json().get("predictions")) == (200, want), (form, r.text)
        r = client.post("/invocations", content=csv, headers={"Content-Type": "text/csv"})
        assert (r.status_code, r.json().get("predictions")) == (200, want), r.text
        # a client that drops a column the model takes nulls in gets a 400 naming it, not a guess
        dropped = [
            {"dataframe_records": [{"tenure": 14, "spend": 38.29}]},
            {"dataframe_split": {"columns": ["tenure", "spend"], "data": [[14, 38.29]]}},
            {"inputs": {"tenure": [14], "spend": [38.29]}},
        ]
        for form in dropped:
            r = client.post("/invocations", json=form)
            assert r.status_code == 400 and "missing column(s) 'plan'" in r.json()["message"], (form, r.text)
        r = client.post("/invocations", content="tenure,spend\n14,38.29\n", headers={"Content-Type": "text/csv"})
        assert r.status_code == 400 and "missing column(s) 'plan'" in r.json()["message"], r.text


def test_v2_one_tensor_per_column_with_bytes_for_strings(running: tuple[Server, Store, Any, dict[str, str]]) -> None:
    import tritonclient.http as httpclient

    server, _, pipeline, _ = running
    client = httpclient.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        plan = httpclient.InferInput("plan", [3], "BYTES")
        plan.set_data_from_numpy(np.array([r[0] for r in ROWS], dtype=object), binary_data=True)
        tenure = httpclient.InferInput("tenure", [3], "INT64")
        tenure.set_data_from_numpy(np.array([r[1] for r in ROWS], dtype=np.int64))
        spend = httpclient.InferInput("spend", [3], "FP64")
        spend.set_data_from_numpy(np.array([r[2] for r in ROWS], dtype=np.float64), binary_data=False)
        outputs = [httpclient.InferRequestedOutput("predict", binary_data=False)]
        result = client.infer("churn", [spend, plan, tenure], outputs=outputs)
        assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")] == expected(
            pipeline, ROWS
        )
    finally:
        client.close()


def test_a_column_left_out_is_a_400_naming_it_even_where_the_model_takes_nulls(
    running: tuple[Server, Store, Any, dict[str, str]],
) -> None:
    """``plan`` takes nulls (the encoder ignores unknown categories), but a request without
    it is a client's dropped field: every protocol says so instead of answering a guess."""
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    server, _, _, _ = running
    with server.client() as client:
        for body in ({"instances": [{"tenure": 14, "spend": 38.29}]}, {"inputs": {"tenure": [14], "spend": [38.29]}}):
            r = client.post("/v1/models/churn/predict", json=body)
            assert r.status_code == 400, r.text
            assert "missing column(s) 'plan'; the model takes plan, tenure, spend" in r.json()["error"]["message"]
        sent_null = client.post(
            "/v1/models/churn/predict", json={"instances": [{"plan": None, "tenure": 14, "spend": 1.0}]}
        )
        assert sent_null.status_code == 200, sent_null.text
    triton = httpclient.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        tenure = httpclient.InferInput("tenure", [1], "INT64")
        tenure.set_data_from_numpy(np.array([14], dtype=np.int64))
        spend = httpclient.InferInput("spend", [1], "FP64")
        spend.set_data_from_numpy(np.array([38.29], dtype=np.float64))
        with pytest.raises(InferenceServerException, match=r"missing column\(s\) 'plan'"):
            triton.infer("churn", [tenure, spend])
    finally:
        triton.close()


def test_probabilities_name_their_classes(running: tuple[Server, Store, Any, dict[str, str]]) -> None:
    server, _, pipeline, _ = running
    with server.client() as client:
        r = client.post("/v1/models/churn/predict", json={"instances": RECORDS, "method": "predict_proba"}).json()
    assert r["classes"] == ["churned", "stayed"]
    np.testing.assert_allclose(r["predictions"], expected(pipeline, ROWS, "predict_proba"))


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"instances": [{"plan": "pro", "spend": 1.0}]}, 400, "missing column(s) 'tenure'"),
        ({"instances": [{"plan": "pro", "tenure": 1, "spend": 1.0, "zip": "X"}]}, 400, "unknown column(s) 'zip'"),
        ({"instances": [{"plan": "pro", "tenure": "many", "spend": 1.0}]}, 400, "'tenure' row 0: expected a number"),
        ({"instances": [["pro", 1, 2.0], ["pro", 1.5, 2.0]]}, 400, "column 'tenure' row 1: expected a whole number"),
        ({"instances": [{"plan": "pro", "tenure": 1, "spend": None}]}, 400, "column 'spend' row 0: null"),
        ({"instances": [{"plan": "pro", "tenure": 1, "spend": True}]}, 400, "column 'spend' row 0: expected a number"),
        ({"instances": [{"plan": 7, "tenure": 1, "spend": 2.0}]}, 400, "column 'plan' row 0: expected a string"),
        ({"instances": [["pro", 1]]}, 400, "expects 3 features per row, got 2"),
    ],
)  # fmt: skip
def test_wrong_input_is_a_400_that_names_the_column(
    running: tuple[Server, Store, Any, dict[str, str]], body: dict[str, Any], status: int, message: str
) -> None:
    server, _, _, _ = running
    with server.client() as client:
        r = client.post("/v1/models/churn/predict", json=body)
    assert r.status_code == status and message in r.json()["error"]["message"], r.text


def test_nulls_go_where_the_model_takes_them(running: tuple[Server, Store, Any, dict[str, str]]) -> None:
    server, _, pipeline, _ = running
    with server.client() as client:
        unknown_plan = client.post("/v1/models/churn/predict", json={"instances": [[None, 14, 38.29]]})
        assert unknown_plan.status_code == 200, unknown_plan.text
        imputed = client.post("/v1/models/imputer/predict", json={"instances": [{"tenure": None, "spend": 30.0}]})
        assert imputed.status_code == 200 and imputed.json()["predictions"][0] in ("churned", "stayed")
        gaps = client.post("/v1/models/hgb/predict", json={"instances": [[None, 0.5, None, 1.0, -1.0]]})
        assert gaps.status_code == 200, gaps.text


def test_extra_columns_can_be_ignored_by_setting(running: tuple[Server, Store, Any, dict[str, str]]) -> None:
    _, store, pipeline, _ = running
    body = {"instances": [{**RECORDS[0], "zip": "90210"}]}
    with serve(store.root, env={"MODELSWAP_EXTRA_COLUMNS": "ignore"}) as server, server.client() as client:
        r = client.post("/v1/models/churn/predict", json=body)
    assert r.status_code == 200 and r.json()["predictions"] == expected(pipeline, ROWS[:1])


def test_the_cli_publishes_with_a_csv_example_and_a_records_file(
    running: tuple[Server, Store, Any, dict[str, str]], tmp_path: Any
) -> None:
    import joblib

    from tests.api.cli.test_commands import ok_json, run

    _, _, pipeline, _ = running
    root = tmp_path / "models"
    joblib.dump(pipeline, tmp_path / "churn.joblib")
    (tmp_path / "example.csv").write_text("spend,plan,tenure\n38.29,pro,14\n12.5,basic,3\n")
    (tmp_path / "example.json").write_text(json.dumps(RECORDS))
    (tmp_path / "gaps.csv").write_text("plan,tenure,spend\npro,14,\nbasic,3,12.5\n")
    store = Store(root)
    for example in ("example.json", "example.csv"):
        published = ok_json(
            root, "publish", "churn", str(tmp_path / "churn.joblib"), "--example", str(tmp_path / example)
        )
        signature = store.manifest("churn", published["version"]).signature
        assert signature is not None and [(c.name, c.type) for c in signature.columns] == [
            ("plan", "string"), ("tenure", "long"), ("spend", "double")
        ]  # fmt: skip
    # an example with a null where the model cannot take one is refused, and says why
    refused = run(root, "publish", "churn", str(tmp_path / "churn.joblib"), "--example", str(tmp_path / "gaps.csv"))
    assert refused.returncode == 1 and "predict on the input example failed" in refused.stderr
