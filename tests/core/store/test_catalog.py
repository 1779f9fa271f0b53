"""Finding versions: by content id, by lineage, by metric filters and tags; comparing two."""

from __future__ import annotations

from typing import Any

import pytest

from modelswap.core.errors import InvalidInput, NotFound
from modelswap.core.operations import Operations
from modelswap.core.store.catalog import find_model_id, lineage, parse_where
from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, publish


def test_the_model_id_is_the_manifest_digest_and_finds_its_version(store: Store, iris_a: Any) -> None:
    version = store.publish("iris", iris_a, example=[IRIS_ROW], metadata={"run": "abc", "params": {"C": 1.0}})
    assert version.model_id == "m-" + version.manifest_sha256[:32]
    model, found = find_model_id(store, version.model_id)
    assert (model, found.id) == ("iris", version.id)
    view = Operations(store).model_id(version.model_id)
    assert view["manifest"]["metadata"] == {"run": "abc", "params": {"C": 1.0}}
    with pytest.raises(NotFound):
        find_model_id(store, "m-" + "0" * 32)
    with pytest.raises(InvalidInput):
        find_model_id(store, "../../etc/passwd")


def test_lineage_follows_parents_both_ways(store: Store, iris_a: Any) -> None:
    root = publish(store, iris_a)
    store.deploy("iris", root)
    child = publish(store, iris_a)  # parent: the live version
    grandchild = store.publish("iris", iris_a, example=[IRIS_ROW], parent=child).id
    other = store.publish("iris", iris_a, example=[IRIS_ROW], parent=root).id
    assert lineage(store, "iris", grandchild)["ancestors"] == [child, root]
    assert lineage(store, "iris", root)["descendants"] == [child, other, grandchild]


def test_versions_filter_by_metrics_and_tags_and_compare_shows_deltas(store: Store, iris_a: Any) -> None:
    ops = Operations(store)
    low = publish(store, iris_a, metrics={"accuracy": 0.8, "f1": 0.7}, tags={"team": "ml"})
    high = publish(store, iris_a, metrics={"accuracy": 0.95}, tags={"team": "ops"})
    assert [v["id"] for v in ops.versions("iris", where=["accuracy>0.9"])["versions"]] == [high]
    assert [v["id"] for v in ops.versions("iris", where=["accuracy>=0.8"], tags={"team": "ml"})["versions"]] == [low]
    assert ops.versions("iris", where=["f1 > 0.5", "accuracy<0.9"])["versions"][0]["id"] == low
    with pytest.raises(InvalidInput, match="METRIC OP NUMBER"):
        parse_where(["accuracy is high"])
    compared = ops.compare("iris", low, high)
    assert compared["metrics"]["accuracy"]["delta"] == pytest.approx(0.15)
    assert compared["metrics"]["f1"] == {"a": 0.7, "b": None, "delta": None}
    assert compared["schema"] == {"breaking": [], "compatible": []}
