import json
import multiprocessing
import os
import re
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from modelswap.core.delivery.canary import promote_canary, start_canary, stop_canary
from modelswap.core.store import history, verify_checks
from modelswap.core.store.history import HistoryEntry
from modelswap.core.store.layout import MODEL_FILE
from modelswap.core.store.store import Store
from modelswap.core.store.verify import verify_store
from tests.conftest import publish


def kinds(store: Store, repair: bool = False) -> set[str]:
    return {p.kind for p in verify_store(store, repair=repair).problems}


def test_a_clean_store_verifies_ok(store: Store, iris_a: Any) -> None:
    store.deploy("iris", publish(store, iris_a))
    assert verify_store(store).ok and not verify_store(store).problems


def test_repair_removes_leftovers_and_registers_orphans(store: Store, iris_a: Any) -> None:
    a = publish(store, iris_a)
    store.deploy("iris", a)
    paths = store.paths("iris")
    (paths.versions_dir / ".staging-20261123-000000-abcdef-1234").mkdir()
    os.symlink("versions/x", paths.dir / "current.tmp-abc")
    (paths.dir / "versions.json.tmp-abc").write_text("{")
    orphan = "20261123-020000-0000ff"
    shutil.copytree(paths.version_dir(a), paths.versions_dir / orphan)
    # the copied manifest names the old id, but the files still match it
    assert kinds(store) == {"leftover", "unregistered"}
    assert verify_store(store, repair=True).ok
    assert not verify_store(store).problems
    assert orphan in store.registry("iris")


def test_repair_drops_registry_entries_whose_directory_is_gone(store: Store, iris_a: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_a)
    store.deploy("iris", a)
    shutil.rmtree(store.paths("iris").version_dir(b))
    assert kinds(store) == {"missing"}
    verify_store(store, repair=True)
    assert b not in store.registry("iris") and not verify_store(store).problems


def test_repair_rebuilds_a_destroyed_registry_and_records_the_symlink(store: Store, iris_a: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_a)
    store.deploy("iris", b)
    store.paths("iris").registry.write_text('{"versions": [{"id": "garbage"')
    assert "registry" in kinds(store)
    assert verify_store(store, repair=True).ok
    registry = store.registry("iris")
    assert registry.ids() == sorted([a, b]) and next(store.live_sequence("iris")) == b
    assert not verify_store(store).problems


def test_history_that_disagrees_with_the_symlink_is_reconciled_symlink_first(store: Store, iris_a: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_a)
    store.deploy("iris", a)
    paths = store.paths("iris")
    os.unlink(paths.current)
    os.symlink(f"versions/{b}", paths.current)  # as if a deploy died before writing history
    assert kinds(store) == {"history"}
    verify_store(store, repair=True)
    assert store.current("iris") == b and next(store.live_sequence("iris")) == b


def test_a_corrupt_version_is_reported_marked_and_not_hidden(store: Store, iris_a: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_a)
    store.deploy("iris", a)
    (store.paths("iris").version_dir(b) / MODEL_FILE).write_bytes(b"rot")
    report = verify_store(store, repair=True)
    assert not report.ok and {p.kind for p in report.problems} == {"corrupt"}
    assert store.registry("iris").status_of(b) == "corrupt"


def test_a_dangling_current_is_repointed_to_the_last_intact_live_version(store: Store, iris_a: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_a)
    store.deploy("iris", a)
    store.deploy("iris", b)
    paths = store.paths("iris")
    os.unlink(paths.current)
    os.symlink("versions/20200101-000000-000000", paths.current)
    assert "current" in kinds(store)
    verify_store(store, repair=True)
    assert store.current("iris") in (a, b) and not verify_store(store).problems


def test_a_missing_current_is_found_and_restored_from_history(store: Store, iris_a: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_a)
    store.deploy("iris", a)
    store.deploy("iris", b)
    os.unlink(store.paths("iris").current)
    assert kinds(store) == {"current"}
    assert verify_store(store, repair=True).ok
    assert store.current("iris") == b
    last = store.history("iris", limit=1)[0]
    assert last.action == "repair_current" and last.to_version == b and "missing" in last.reason
    assert not verify_store(store).problems


def test_a_canary_file_removed_without_a_stop_in_history_is_recorded(store: Store, iris_a: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_a)
    store.deploy("iris", a)
    start_canary(store, "iris", b, 0.2)
    os.unlink(store.paths("iris").abtest)  # what a stop killed after the removal left in older stores
    assert kinds(store) == {"canary"}
    verify_store(store, repair=True)
    entry = store.history("iris", limit=1)[0]
    assert (entry.action, entry.from_version) == ("canary_stop", b) and "abtest.json is gone" in entry.reason
    assert not verify_store(store).problems


def test_a_promote_killed_before_the_canary_file_went_is_completed(store: Store, iris_a: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_a)
    store.deploy("iris", a)
    config = start_canary(store, "iris", b, 0.2)
    promote_canary(store, "iris")
    store.paths("iris").abtest.write_text(json.dumps(config.to_dict()))  # as if the process died right there
    assert kinds(store) == {"canary"}
    verify_store(store, repair=True)
    assert not store.paths("iris").abtest.exists() and store.current("iris") == b
    assert not verify_store(store).problems


@pytest.mark.parametrize("move", ["deploy", "rollback_to", "promote_then_deploy"])
def test_moving_current_to_the_running_canary_ends_it_and_verifies_clean(store: Store, iris_a: Any, move: str) -> None:
    a, b = publish(store, iris_a), publish(store, iris_a)
    store.deploy("iris", a)
    if move == "rollback_to":  # b was live once, so a rollback may name it
        store.deploy("iris", b)
        store.deploy("iris", a)
    start_canary(store, "iris", b, 0.3)
    if move == "deploy":
        store.deploy("iris", b)
    elif move == "rollback_to":
        store.rollback("iris", b)
    else:
        promote_canary(store, "iris")
        store.deploy("iris", a)
        start_canary(store, "iris", b, 0.3)  # b is the rollback target now: canary it again, then deploy it
        store.deploy("iris", b)
    assert store.current("iris") == b and store.canary("iris") is None
    assert verify_store(store).ok and not verify_store(store).problems
    before = store.history("iris", limit=100)
    assert not verify_store(store, repair=True).problems
    assert store.history("iris", limit=100) == before  # nothing to record: no spurious canary_stop


def _promote_killed_before_the_canary_file_goes(root: Path) -> None:
    """In a child process: promote, SIGKILLed the instant after the journal entry, as
    swap_in is about to remove abtest.json."""
    from modelswap.core.store import transitions

    def die(paths: Any) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    transitions.take_canary_file = die  # type: ignore[assignment]
    promote_canary(Store(root), "iris")


def test_a_promote_killed_between_its_journal_entry_and_the_canary_file_is_found(store: Store, iris_a: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_a)
    store.deploy("iris", a)
    start_canary(store, "iris", b, 0.2)
    child = multiprocessing.get_context("fork").Process(
        target=_promote_killed_before_the_canary_file_goes, args=(store.root,)
    )
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    assert store.history("iris", limit=1)[0].action == "canary_promote"
    assert store.current("iris") == a and store.canary("iris") == b  # history ahead of both files
    assert kinds(Store(store.root)) == {"history", "canary", "leftover"}  # leftover: the temp link
    verify_store(Store(store.root), repair=True)
    assert store.current("iris") == a and not store.paths("iris").abtest.exists()  # the symlink wins
    assert not verify_store(Store(store.root)).problems


def test_a_gc_killed_after_its_journal_entry_is_finished_not_undone(store: Store, iris_a: Any) -> None:
    ids = [publish(store, iris_a) for _ in range(4)]
    store.deploy("iris", ids[3])
    paths = store.paths("iris")
    doomed = ids[:2]
    # the journal says gc deleted them, then the process died before moving the directories
    entry = HistoryEntry("2026-11-23T03:00:00.000Z", "gc", "t", None, None, "", {"versions": doomed})
    history.append(paths.history, entry)
    assert all(v not in store.registry("iris") for v in doomed)  # readers already see them gone
    assert kinds(store) == {"deleted"}
    verify_store(store, repair=True)
    assert store.on_disk("iris") == sorted(ids[2:])
    summary = store.history("iris", limit=1)[0]
    assert summary.action == "repair" and summary.details["deleted"] == doomed
    assert not verify_store(store).problems


def test_a_repair_that_dies_removing_a_deleted_version_leaves_no_partial_version(
    store: Store, iris_a: Any, monkeypatch: Any
) -> None:
    ids = [publish(store, iris_a) for _ in range(3)]
    store.deploy("iris", ids[2])
    paths = store.paths("iris")
    history.append(
        paths.history, HistoryEntry("2026-11-23T03:00:00.000Z", "gc", "t", None, None, "", {"versions": ids[:1]})
    )

    def dies_halfway(path: Any, *args: Any, **kwargs: Any) -> None:
        (Path(path) / MODEL_FILE).unlink()  # one file gone, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(verify_checks.shutil, "rmtree", dies_halfway)
    try:
        verify_store(store, repair=True)
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    assert not paths.version_dir(ids[0]).exists()  # only hidden trash is left
    assert kinds(store) == {"leftover"}
    verify_store(store, repair=True)
    assert store.on_disk("iris") == ids[1:] and not verify_store(store).problems


def test_symlinks_inside_the_store_are_reported_never_followed_and_repair_never_aborts(
    store: Store, iris_a: Any, tmp_path: Path
) -> None:
    a = publish(store, iris_a)
    store.deploy("iris", a)
    paths = store.paths("iris")
    outside = tmp_path / "elsewhere"
    shutil.copytree(paths.version_dir(a), outside)
    (paths.versions_dir / "20261123-030000-0000aa").symlink_to(outside)
    (paths.versions_dir / ".trash-20261123-030000-0000bb-1234").symlink_to(outside)
    (paths.dir / "notes.json").symlink_to(tmp_path / "secret.json")
    assert {p.kind for p in verify_store(store).problems} == {"symlink", "leftover"}
    report = verify_store(store, repair=True)
    assert report.ok
    assert "20261123-030000-0000aa" not in store.registry("iris") and outside.is_dir()
    assert not any(p.is_symlink() for p in paths.versions_dir.iterdir())
    assert not verify_store(store).problems


def test_the_invariants_are_one_list_in_the_code_and_the_docs() -> None:
    """Every kind of problem verify can report is a named invariant, and docs/store.md's
    verify table lists exactly those kinds."""
    root = Path(__file__).resolve().parents[3]
    source = (root / "core" / "store" / "verify_checks.py").read_text() + (
        root / "core" / "store" / "verify.py"
    ).read_text()
    noted = set(re.findall(r'(?:self\.note|Problem)\(\s*(?:model,\s*)?"([a-z_]+)"', source))
    assert noted and noted <= set(verify_checks.INVARIANTS), noted - set(verify_checks.INVARIANTS)
    docs = (root / "docs" / "store.md").read_text()
    table = docs[docs.index("| kind | what `verify` finds |") :].split("\n\n", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE))
    assert documented == set(verify_checks.INVARIANTS)


def test_a_canary_file_that_names_another_version_than_history_started_is_stopped(store: Store, iris_a: Any) -> None:
    a, b, c = (publish(store, iris_a) for _ in range(3))
    store.deploy("iris", a)
    old = start_canary(store, "iris", b, 0.2)
    stop_canary(store, "iris")
    start_canary(store, "iris", c, 0.2)
    store.paths("iris").abtest.write_text(json.dumps(old.to_dict()))  # history says c, the file says b
    assert kinds(store) == {"canary"}
    verify_store(store, repair=True)
    assert store.canary("iris") is None and store.history("iris", limit=1)[0].action == "canary_stop"
    assert not verify_store(store).problems
