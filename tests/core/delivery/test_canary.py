from __future__ import annotations

import random
from typing import Any

import pytest

from modelswap.core.delivery.canary import (
    CanaryConfig,
    Guard,
    is_canary,
    key_bucket,
    promote_canary,
    read_canary,
    start_canary,
    stop_canary,
)
from modelswap.core.errors import Conflict, InvalidInput, ValidationFailed
from modelswap.core.store import registry as reg
from modelswap.core.store.layout import MODEL_FILE
from modelswap.core.store.store import Store
from modelswap.core.store.verify import verify_store
from tests.conftest import publish

V = "20261123-000000-abcdef"


def config(fraction: float, version: str = V) -> CanaryConfig:
    return CanaryConfig(version, fraction, None, "test", "t")


def test_a_routing_key_always_gets_the_same_variant() -> None:
    c = config(0.3)
    assert all(is_canary(c, f"user-{i}", 0.99) == is_canary(c, f"user-{i}", 0.0) for i in range(200))
    assert key_bucket(V, "user-1") == key_bucket(V, "user-1")


def test_raising_the_fraction_only_moves_keys_from_stable_to_canary() -> None:
    keys = [f"k{i}" for i in range(2000)]
    low = {k for k in keys if is_canary(config(0.1), k, 0)}
    high = {k for k in keys if is_canary(config(0.4), k, 0)}
    assert low <= high


def test_key_share_and_random_share_land_near_the_fraction() -> None:
    rng = random.Random(7)
    keys = [f"{rng.random()}" for _ in range(5000)]
    share = sum(is_canary(config(0.2), k, 0) for k in keys) / len(keys)
    assert abs(share - 0.2) < 0.03
    draws = sum(is_canary(config(0.2), None, rng.random()) for _ in range(5000)) / 5000
    assert abs(draws - 0.2) < 0.03


def test_guard_trips_only_past_min_requests_and_the_rate() -> None:
    guard = Guard(max_error_rate=0.1, min_requests=50)
    assert not guard.tripped(49, 49)
    assert not guard.tripped(100, 10)
    assert guard.tripped(100, 11)


@pytest.mark.parametrize(
    "raw",
    [{"max_error_rate": 1.5}, {"max_error_rate": "x"}, {"max_error_rate": 0.1, "min_requests": 0}, {"bogus": 1}, []],
)
def test_bad_guards_are_refused(raw: Any) -> None:
    with pytest.raises(InvalidInput):
        Guard.from_dict(raw)


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
