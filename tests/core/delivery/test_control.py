from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelswap.core.delivery.control import Control, Start, start_controlled
from modelswap.core.errors import Conflict
from modelswap.core.store.fsio import atomic_write_json
from modelswap.core.store.layout import ModelPaths
from modelswap.core.store.store import Store
from tests.conftest import publish


def start(store: Store, version: str, build: Any, **options: Any) -> Any:
    return start_controlled(store, "iris", version, kind="test", action="test_start", build=build, **options)


def control_file(store: Store) -> Path:
    return store.paths("iris").dir / "control.json"


def writing(store: Store, seen: list[Start]) -> Any:
    """A build that writes ``control.json`` and records what it was told."""

    def build(start: Start) -> Control[str]:
        seen.append(start)
        return Control("built", {"fraction": 0.5}, lambda: atomic_write_json(control_file(store), {"on": True}))

    return build


def test_a_start_journals_its_entry_and_writes_its_file_as_one_change(iris_pair: tuple[Store, str, str]) -> None:
    store, a, b = iris_pair
    seen: list[Start] = []
    result = start(store, b, writing(store, seen), actor="me", reason="why")
    assert result == "built" and control_file(store).exists()
    (told,) = seen
    assert (told.version, told.live, told.actor) == (b, a, "me")
    entry = store.history("iris")[0]
    assert (entry.action, entry.actor, entry.from_version, entry.to_version, entry.reason) == (
        "test_start",
        "me",
        a,
        b,
        "why",
    )
    assert entry.details["fraction"] == 0.5


def test_a_version_that_went_live_meanwhile_is_refused_under_the_lock(iris_pair: tuple[Store, str, str]) -> None:
    store, a, b = iris_pair
    validate = store.validator

    def racing(paths: ModelPaths, version: str) -> object:  # another writer deploys it while this one validates
        store.validator = validate
        store.deploy("iris", version)
        return validate(paths, version)

    store.validator = racing
    seen: list[Start] = []
    with pytest.raises(Conflict, match="is live; a test must be another version"):
        start(store, b, writing(store, seen))
    assert seen == [] and not control_file(store).exists()
    assert store.history("iris")[0].action == "deploy"


def test_nothing_live_is_refused_when_the_start_needs_it_and_allowed_otherwise(store: Store, iris_a: Any) -> None:
    a = publish(store, iris_a)
    seen: list[Start] = []
    with pytest.raises(Conflict, match="no live version"):
        start(store, a, writing(store, seen), needs_live=True)
    assert seen == []
    start(store, a, writing(store, seen))
    assert seen[0].live is None and control_file(store).exists()


def test_a_refused_build_or_a_failed_write_changes_nothing(iris_pair: tuple[Store, str, str]) -> None:
    store, _, b = iris_pair
    before = store.history("iris")

    def refuse(start: Start) -> Control[str]:
        raise Conflict("another one runs")

    with pytest.raises(Conflict, match="another one runs"):
        start(store, b, refuse)

    def failing_write() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        start(store, b, lambda _: Control("x", {}, failing_write))
    assert store.history("iris") == before and not control_file(store).exists()
