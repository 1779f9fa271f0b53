from __future__ import annotations

from typing import Any

import pytest

from modelswap.core.delivery.abtest import Guard, read_canary
from modelswap.core.delivery.canary import promote_canary, start_canary, stop_canary
from modelswap.core.errors import Conflict, InvalidInput, ValidationFailed
from modelswap.core.store import registry as reg
from modelswap.core.store.layout import MODEL_FILE
from modelswap.core.store.store import Store
from modelswap.core.store.verify import verify_store
from tests.conftest import publish


def test_start_stop_promote_write_abtest_and_history(store: Store, iris_a: Any, iris_b: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_b)
    store.deploy("iris", a)
    started = start_canary(store, "iris", b, 0.25, guard=Guard(0.05, 200), actor="alice")
    on_disk = read_canary(store.paths("iris").abtest)
    assert on_disk == started and store.status("iris").canary == b
    stop_canary(store, "iris", actor="bob")
    assert not store.paths("iris").abtest.exists()
    with pytest.raises(Conflict):
        stop_canary(store, "iris")
    start_canary(store, "iris", b, 0.5)
    t = promote_canary(store, "iris", actor="carol")
    assert (t.previous, t.current) == (a, b) and store.current("iris") == b
    assert not store.paths("iris").abtest.exists()
    actions = [(e.action, e.actor) for e in reversed(store.history("iris"))]
    assert actions[-4:] == [
        (reg.CANARY_START, "alice"),
        (reg.CANARY_STOP, "bob"),
        (reg.CANARY_START, actions[-2][1]),
        (reg.PROMOTE, "carol"),
    ]
    assert store.rollback_target("iris", store.registry("iris"), b) == a  # a promote is a live move


def test_a_corrupt_or_live_version_cannot_be_the_canary(store: Store, iris_a: Any) -> None:
    a, bad = publish(store, iris_a), publish(store, iris_a)
    store.deploy("iris", a)
    (store.paths("iris").version_dir(bad) / MODEL_FILE).write_bytes(b"rot")
    with pytest.raises(ValidationFailed):
        start_canary(store, "iris", bad, 0.1)
    with pytest.raises(Conflict):
        start_canary(store, "iris", a, 0.1)
    with pytest.raises(InvalidInput):
        start_canary(store, "iris", a, 1.5)
    assert not store.paths("iris").abtest.exists()


def test_verify_repairs_an_abtest_that_names_the_live_version(store: Store, iris_a: Any) -> None:
    a = publish(store, iris_a)
    store.deploy("iris", a)
    store.paths("iris").abtest.write_text(f'{{"version": "{a}", "fraction": 0.1}}')  # a promote cut short
    assert {p.kind for p in verify_store(store).problems} == {"canary"}
    assert verify_store(store, repair=True).ok and not store.paths("iris").abtest.exists()
