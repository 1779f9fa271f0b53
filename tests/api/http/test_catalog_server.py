"""Aliases, model ids, lineage, compare and schema-safe deploys through a real server and
the CLI (directly and through --url)."""

from __future__ import annotations

from typing import Any

import pytest
from sklearn.datasets import load_wine
from sklearn.neighbors import KNeighborsClassifier

from modelswap.core.store.store import Store
from tests.api.cli.test_commands import ok_json, run
from tests.api.http.test_workflows import cli
from tests.conftest import IRIS_ROW
from tests.server import TOKEN, serve


@pytest.fixture
def wine_version(iris_pair: tuple[Store, str, str]) -> str:
    store, _, _ = iris_pair
    wine = load_wine()
    model = KNeighborsClassifier().fit(wine.data, wine.target)  # 13 features, no nulls, fitted in ms
    return store.publish("iris", model, example=wine.data[:2], metrics={"accuracy": 0.5}).id


def test_an_incompatible_deploy_is_a_409_with_its_diff_and_goes_through_with_force(
    iris_pair: tuple[Store, str, str], wine_version: str
) -> None:
    store, a, _ = iris_pair
    with serve(store.root) as server, server.admin() as admin:
        refused = admin.post("/v1/models/iris/deploy", json={"version": wine_version})
        assert refused.status_code == 409
        error = refused.json()["error"]
        assert error["code"] == "incompatible_schema" and "- 4 columns; + 13 columns" in error["message"]
        assert admin.post("/v1/models/iris/predict", json={"instances": [IRIS_ROW]}).json()["version"] == a
        forced = admin.post("/v1/models/iris/deploy", json={"version": wine_version, "force": True, "reason": "wine"})
        assert forced.status_code == 200 and forced.json()["current"] == wine_version
        history = admin.get("/v1/models/iris/history?limit=1").json()["history"]
        assert history[0]["details"] == {"schema_change": ["- 4 columns", "+ 13 columns"], "forced": True}
        assert admin.post("/v1/models/iris/rollback", json={"force": "yes"}).status_code == 400
    back = run(store.root, "rollback", "iris")
    assert back.returncode == 1 and "breaks clients" in back.stderr
    assert run(store.root, "rollback", "iris", "--allow-schema-change").returncode == 0
    assert store.current("iris") == a


def test_aliases_pin_predictions_on_every_protocol_and_name_versions_in_the_cli(
    iris_pair: tuple[Store, str, str],
) -> None:
    store, a, b = iris_pair
    with serve(store.root) as server, server.admin() as admin:
        assert admin.put("/v1/models/iris/aliases/champion", json={"version": b}).json()["aliases"] == {"champion": b}
        assert admin.put("/v1/models/iris/aliases/latest", json={"version": b}).status_code == 400
        pinned = admin.post("/v1/models/iris/versions/champion/predict", json={"instances": [IRIS_ROW]})
        assert pinned.status_code == 200 and pinned.json()["version"] == b
        v2 = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROW}]}
        assert admin.post("/v2/models/iris/versions/champion/infer", json=v2).json()["model_version"] == b
        assert admin.post("/v1/models/iris/versions/nobody/predict", json={"instances": [IRIS_ROW]}).status_code == 404
        assert admin.get("/v1/models/iris/versions/champion").json()["id"] == b
        compared = admin.get("/v1/models/iris/compare", params={"a": a, "b": "champion"}).json()
        assert (compared["a"], compared["b"]) == (a, b)
        assert admin.post("/v1/models/iris/deploy", json={"version": "champion"}).json()["current"] == b
        out = cli(store.root, server.url, "alias", "set", "iris", "staging", a)
        assert out.returncode == 0 and f"staging -> {a}" in out.stdout, out.stderr
        assert cli(store.root, server.url, "alias", "list", "iris").stdout.split()[2:] == ["champion", b, "staging", a]
        assert admin.get("/v1/models/iris/aliases").json()["aliases"] == {"champion": b, "staging": a}
        gone = admin.delete("/v1/models/iris/aliases/staging", headers={"Authorization": f"Bearer {TOKEN}"})
        assert gone.status_code == 200 and gone.json()["aliases"] == {"champion": b}


def test_model_ids_lineage_and_filters_from_the_cli_and_the_api(iris_pair: tuple[Store, str, str], iris_a: Any) -> None:
    store, a, b = iris_pair
    child = store.publish("iris", iris_a, example=[IRIS_ROW], parent=b, metrics={"accuracy": 0.99}, tags={"t": "x"})
    shown = run(store.root, "show", child.model_id)
    assert shown.returncode == 0 and f"version:   {child.id}" in shown.stdout and "#0: double" in shown.stdout
    assert ok_json(store.root, "lineage", "iris", child.id)["ancestors"] == [b]
    assert [v["id"] for v in ok_json(store.root, "versions", "iris", "--where", "accuracy>0.95")] == [child.id]
    assert [v["id"] for v in ok_json(store.root, "versions", "iris", "--tag", "t=x")] == [child.id]
    text = run(store.root, "compare", "iris", a, child.id).stdout
    assert "accuracy" in text and "input schema: the same" in text
    with serve(store.root) as server, server.client() as client:
        assert client.get(f"/v1/model-ids/{child.model_id}").json()["id"] == child.id
        assert client.get("/v1/model-ids/m-nothere").status_code == 400
        assert client.get(f"/v1/models/iris/versions/{b}/lineage").json()["descendants"] == [child.id]
        filtered = client.get("/v1/models/iris/versions", params={"where": "accuracy>0.95", "tag": "t=x"}).json()
        assert [v["id"] for v in filtered["versions"]] == [child.id]
        remote = cli(store.root, server.url, "versions", "iris", "--where", "accuracy>0.95", "--json")
        assert remote.returncode == 0 and child.id in remote.stdout
