"""Deleting versions: gc and delete keep what is protected and say why."""

from __future__ import annotations

from typing import Any

import pytest

from modelswap.core.errors import InvalidInput, ModelNotFound, VersionIsLive
from modelswap.core.store import registry as reg
from modelswap.core.store.store import Store
from tests.conftest import publish


def test_gc_keeps_newest_and_never_current_canary_or_rollback_target(store: Store, iris_a: Any) -> None:
    ids = [publish(store, iris_a) for _ in range(6)]
    store.deploy("iris", ids[0])
    store.deploy("iris", ids[1])  # rollback target becomes ids[0]
    store.paths("iris").abtest.write_text(f'{{"version": "{ids[2]}", "fraction": 0.1}}')
    plan = store.gc("iris", keep=1, dry_run=True)
    assert set(plan.deleted) == {ids[3], ids[4]} and all(store.paths("iris").version_dir(v).is_dir() for v in ids)
    plan = store.gc("iris", keep=1)
    assert sorted(store.on_disk("iris")) == sorted([ids[0], ids[1], ids[2], ids[5]])
    assert store.registry("iris").ids() == sorted([ids[0], ids[1], ids[2], ids[5]])
    assert store.history("iris", limit=1)[0].action == reg.GC


def test_delete_refuses_the_live_version(store: Store, iris_a: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_a)
    store.deploy("iris", a)
    with pytest.raises(VersionIsLive):
        store.delete_version("iris", a)
    store.delete_version("iris", b)
    assert store.on_disk("iris") == [a]


def test_gc_reasons_name_live_canary_rollback_target_and_newest(store: Store, iris_a: Any) -> None:
    ids = [publish(store, iris_a) for _ in range(5)]
    store.deploy("iris", ids[0])
    store.deploy("iris", ids[1])
    store.paths("iris").abtest.write_text(f'{{"version": "{ids[2]}", "fraction": 0.1}}')
    plan = store.gc("iris", keep=2, dry_run=True)
    assert plan.reasons == {
        ids[0]: ("rollback target",),
        ids[1]: ("live",),
        ids[2]: ("canary",),
        ids[3]: ("newest 2",),
        ids[4]: ("newest 2",),
    }
    assert plan.deleted == () and plan.to_dict()["reasons"][ids[1]] == ["live"]


@pytest.mark.parametrize("keep", [-1, True, 1.5, "2"])
def test_gc_refuses_a_keep_that_is_not_a_whole_number(store: Store, iris_a: Any, keep: Any) -> None:
    publish(store, iris_a)
    with pytest.raises(InvalidInput):
        store.gc("iris", keep=keep)


def test_gc_and_delete_of_an_unknown_model_create_nothing(store: Store) -> None:
    with pytest.raises(ModelNotFound):
        store.gc("ghost", keep=1)
    with pytest.raises(ModelNotFound):
        store.delete_version("ghost", "20261123-000000-abcdef")
    assert not (store.root / "ghost").exists()
