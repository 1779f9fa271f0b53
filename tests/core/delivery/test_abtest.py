from __future__ import annotations

import random
from typing import Any

import pytest

from modelswap.core.delivery.abtest import CanaryConfig, Guard, is_canary, key_bucket, read_canary
from modelswap.core.errors import InvalidInput

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


def test_a_damaged_or_linked_abtest_file_is_named_with_its_remedy(tmp_path: Any) -> None:
    path = tmp_path / "abtest.json"
    assert read_canary(path) is None
    path.write_text('{"version": "nope", "fraction": 0.1}')
    with pytest.raises(InvalidInput, match="abtest.json is damaged .*stop the canary"):
        read_canary(path)
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(InvalidInput, match="symlink.*stop the canary"):
        read_canary(path)
