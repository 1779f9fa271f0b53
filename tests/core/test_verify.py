import os
import shutil
from typing import Any

from modelswap.core.layout import MODEL_FILE
from modelswap.core.store import Store
from modelswap.core.verify import verify_store
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
    assert registry.ids() == sorted([a, b]) and registry.last_live() == b
    assert not verify_store(store).problems


def test_history_that_disagrees_with_the_symlink_is_reconciled_symlink_first(store: Store, iris_a: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_a)
    store.deploy("iris", a)
    paths = store.paths("iris")
    os.unlink(paths.current)
    os.symlink(f"versions/{b}", paths.current)  # as if a deploy died before writing history
    assert kinds(store) == {"history"}
    verify_store(store, repair=True)
    assert store.current("iris") == b and store.registry("iris").last_live() == b


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
