"""scripts/crash_campaign.py: a slice of the kill -9 campaign, and its checks against real damage."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from typing import Any

import pytest

from modelswap.core.delivery.canary import start_canary
from modelswap.core.store.layout import MODEL_FILE
from modelswap.core.store.locking import SOFT_LOCK_FILE
from modelswap.core.store.store import Store
from tests.conftest import ROOT

# a slice per lock kind, each well within a minute on two cores
SLICES = {"flock": ["--kills", "100"], "soft": ["--kills", "30", "--stale", "1"]}


@pytest.mark.parametrize("lock", sorted(SLICES))
def test_a_slice_of_the_campaign_kills_every_writer_and_finds_no_invariant_broken(lock: str) -> None:
    result = subprocess.run(
        [sys.executable, "scripts/crash_campaign.py", "--lock", lock, *SLICES[lock], "--seed", "20261123", "--json"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    everything = json.loads(result.stdout)
    assert everything["invariant_failures"] == 0 and list(everything["campaigns"]) == [lock]
    data = everything["campaigns"][lock]
    assert data["invariant_failures"] == 0 and data["failures"] == []
    assert data["lock"] == lock and data["kills"] >= int(SLICES[lock][1])
    # every writer op was killed, none was refused for lack of work
    assert all(row["kills"] >= 1 and row["refused"] == 0 for row in data["by_op"].values()), data["by_op"]
    assert {"publish", "deploy", "rollback", "rollback_to", "gc", "delete", "canary_promote", "repair"} <= set(
        data["by_op"]
    )
    # kills land inside the commit windows, not only around them, and leave work for repair
    assert data["by_phase"].get("journal", 0) + data["by_phase"].get("effect", 0) > 0, data["by_phase"]
    assert sum(data["repairs"].values()) > 0
    if lock == "soft":  # kills left markers, and every one was broken with its warning
        left = sum(data["lock_markers_left"].values())
        assert left > 0 and data["lock_breaks_logged"] == left, data
        assert data["repairs"].get("leftover (lock marker)", 0) > 0, data["repairs"]


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import crash_invariants

    return crash_invariants


def test_the_checks_see_a_partial_version_and_a_canary_naming_the_live_version(
    iris_pair: tuple[Store, str, str], checks: Any
) -> None:
    store, a, b = iris_pair
    journal = checks.journal_bytes(store.paths("iris"))
    assert checks.check(store.root, "iris", {a, b}, journal, repaired=True) == []
    start_canary(store, "iris", b, 0.2)
    (store.paths("iris").version_dir(b) / MODEL_FILE).write_bytes(b"half")
    store.paths("iris").abtest.write_text(json.dumps({"version": a, "fraction": 0.2}))
    found = checks.check(store.root, "iris", {a, b}, journal, repaired=False)
    assert any("partial version visible" in f and b in f for f in found), found
    assert any("abtest.json names" in f and "live version" in f for f in found), found


def test_the_checks_see_a_lost_version_and_a_rewritten_journal(iris_pair: tuple[Store, str, str], checks: Any) -> None:
    store, a, b = iris_pair
    paths = store.paths("iris")
    journal = checks.journal_bytes(paths)
    os.rename(paths.version_dir(b), paths.versions_dir / ".trash-gone")
    paths.history.write_bytes(journal[: len(journal) // 2].rsplit(b"\n", 1)[0] + b"\n")
    found = checks.check(store.root, "iris", {a, b}, journal, repaired=False)
    assert any(b in f and "gone without a recorded deletion" in f for f in found), found
    assert any("history.jsonl lost or rewrote" in f for f in found), found


def test_the_campaign_sees_a_soft_lock_marker_that_outlives_the_repair(
    iris_pair: tuple[Store, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import crash_campaign

    store, a, b = iris_pair
    campaign = crash_campaign.Campaign(store.root, ROOT / "unused", random.Random(0), lock="soft", stale=1.0)
    (store.paths("iris").dir / SOFT_LOCK_FILE).touch()  # a worker killed between creating it and its record
    assert campaign.lock_marker_left() and campaign.left == {"empty": 1}
    campaign.check_lock_freed("after the repair", left=True, breaks_before=0)
    assert any("freed unlogged" in f for f in campaign.failures), campaign.failures
    assert any(f"{SOFT_LOCK_FILE} remain" in f for f in campaign.failures), campaign.failures
