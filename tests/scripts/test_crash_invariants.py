"""scripts/crash_invariants.py: the campaign's checks, named by the store's invariants, see real damage."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelswap.core.delivery.canary import start_canary, stop_canary
from modelswap.core.store.store import Store
from modelswap.core.store.verify_checks import INVARIANTS
from tests.conftest import ROOT


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import crash_invariants

    return crash_invariants


def test_a_canary_file_that_history_ended_is_a_canary_failure(iris_pair: tuple[Store, str, str], checks: Any) -> None:
    store, a, b = iris_pair
    paths = store.paths("iris")
    config = start_canary(store, "iris", b, 0.2)
    stop_canary(store, "iris")
    journal = checks.journal_bytes(paths)
    assert checks.check(store.root, "iris", {a, b}, journal, repaired=True) == []
    paths.abtest.write_text(json.dumps(config.to_dict()))  # the file a stop killed before its removal left
    found = checks.check(store.root, "iris", {a, b}, journal, repaired=True)
    assert any(f.startswith("canary: abtest.json names") and "'end'" in f for f in found), found


def test_a_canary_file_gone_while_history_says_it_runs_is_a_canary_failure(
    iris_pair: tuple[Store, str, str], checks: Any
) -> None:
    store, a, b = iris_pair
    paths = store.paths("iris")
    start_canary(store, "iris", b, 0.2)
    journal = checks.journal_bytes(paths)
    paths.abtest.unlink()
    found = checks.check(store.root, "iris", {a, b}, journal, repaired=True)
    assert any(f.startswith("canary: history's last canary event started") for f in found), found


def test_every_failure_names_an_invariant_or_a_campaign_only_check(
    iris_pair: tuple[Store, str, str], checks: Any
) -> None:
    store, a, b = iris_pair
    paths = store.paths("iris")
    journal = checks.journal_bytes(paths)
    start_canary(store, "iris", b, 0.2)
    paths.abtest.write_text(json.dumps({"version": a, "fraction": 0.2}))
    paths.history.write_bytes(b"{torn")
    found = checks.check(store.root, "iris", {a, b}, journal, repaired=True)
    assert found
    assert {f.split(":", 1)[0] for f in found} <= set(INVARIANTS) | {"journal", "lost"}, found
