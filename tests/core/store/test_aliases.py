"""Aliases: named, moved under the lock, in history, accepted wherever a version id is."""

from __future__ import annotations

from typing import Any

import pytest

from modelswap.core.errors import InvalidName, NotFound, VersionNotFound, VersionProtected
from modelswap.core.operations import Operations
from modelswap.core.store.aliases import read_aliases, resolve, validate_alias
from modelswap.core.store.store import Store
from tests.conftest import publish


@pytest.mark.parametrize("name", ["latest", "v3", "current", "Champion", "1st", "", "a" * 65, "../x"])
def test_names_mlflow_and_modelswap_reserve_are_refused(name: str) -> None:
    with pytest.raises(InvalidName):
        validate_alias(name)


def test_aliases_move_are_recorded_and_resolve_everywhere(store: Store, iris_a: Any, iris_b: Any) -> None:
    ops = Operations(store)
    a, b = publish(store, iris_a), publish(store, iris_b)
    ops.alias_set("iris", "champion", a, actor="t")
    ops.alias_set("iris", "staging", b, actor="t")
    assert read_aliases(store.paths("iris")) == {"champion": a, "staging": b}
    assert ops.deploy("iris", "champion", actor="t").current == a
    assert ops.versions("iris")["versions"][0]["aliases"] == ["staging"]
    ops.alias_set("iris", "champion", "staging", actor="t")  # move it along
    assert resolve(store, "iris", "champion") == b
    moves = [(e.action, e.from_version, e.to_version, e.details) for e in store.history("iris", limit=2)]
    assert moves[0] == ("alias_set", a, b, {"alias": "champion"})
    assert ops.compare("iris", "staging", a)["b"] == a
    ops.alias_delete("iris", "staging", actor="t")
    with pytest.raises(VersionNotFound, match="no version or alias 'staging'"):
        resolve(store, "iris", "staging")
    with pytest.raises(NotFound):
        ops.alias_delete("iris", "staging", actor="t")


def test_an_alias_must_name_a_published_version_and_protects_it(store: Store, iris_a: Any) -> None:
    ops = Operations(store)
    a, b, c = (publish(store, iris_a) for _ in range(3))
    with pytest.raises(VersionNotFound):
        ops.alias_set("iris", "champion", "20200101-000000-abcdef", actor="t")
    ops.alias_set("iris", "champion", a, actor="t")
    ops.deploy("iris", c, actor="t")
    plan = store.gc("iris", keep=0)
    assert plan.deleted == (b,) and plan.reasons[a] == ("alias champion",)
    with pytest.raises(VersionProtected, match="alias champion"):
        store.delete_version("iris", a)
