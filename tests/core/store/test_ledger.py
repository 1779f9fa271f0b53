"""The index and its journal read together: the journal is the truth, the index a cache
that may lag, and a store that kept history inline migrates on its first write."""

from __future__ import annotations

import json
from typing import Any

from modelswap.core.store import history
from modelswap.core.store import registry as reg
from modelswap.core.store.store import Store
from modelswap.core.store.verify import verify_store
from tests.conftest import publish


def test_a_reader_replays_what_the_index_has_not_taken_in(store: Store, iris_a: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_a)
    paths = store.paths("iris")
    index_before = paths.registry.read_bytes()
    store.deploy("iris", a)
    store.deploy("iris", b)
    store.rollback("iris")  # marks b rolled_back
    paths.registry.write_bytes(index_before)  # the index as it was two changes ago
    fresh = Store(store.root).registry("iris")
    assert fresh.status_of(b) == reg.ROLLED_BACK and sorted(fresh.ids()) == sorted([a, b])
    assert Store(store.root).status("iris").previous is None  # a is live, b rolled back


def test_a_store_that_kept_history_in_versions_json_reads_as_it_is_and_migrates_on_write(
    store: Store, iris_a: Any
) -> None:
    a, b = publish(store, iris_a), publish(store, iris_a)
    store.deploy("iris", a)
    paths = store.paths("iris")
    registry = store.registry("iris")
    entries = [e.to_dict() for e in reversed(store.history("iris"))]
    old = {"format": 1, "model": "iris", "versions": [registry.records[v] for v in registry.ids()], "history": entries}
    paths.registry.write_text(json.dumps(old))
    paths.history.unlink()  # the older layout had no journal
    legacy = Store(store.root)
    assert [e.action for e in legacy.history("iris")] == ["deploy"] and legacy.status("iris").current == a
    legacy.deploy("iris", b)
    assert json.loads(paths.registry.read_text())["format"] == reg.REGISTRY_FORMAT
    journal = [(e.action, e.to_version) for _, e in history.read_from(paths.history)]
    assert journal == [("deploy", a), ("deploy", b)]  # the inline history moved, then the new entry
    assert [e.to_version for e in Store(store.root).history("iris")] == [b, a]
    assert not verify_store(Store(store.root)).problems


def test_history_pages_follow_the_before_cursor(store: Store, iris_a: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_a)
    for _ in range(5):
        store.deploy("iris", a)
        store.deploy("iris", b)
    first, cursor = store.history_page("iris", limit=4)
    rest, end = store.history_page("iris", limit=100, before=cursor)
    assert len(first) == 4 and len(rest) == 6 and end is None
    assert [e.to_version for e in first + rest] == [b, a] * 5  # publishes are not shown
