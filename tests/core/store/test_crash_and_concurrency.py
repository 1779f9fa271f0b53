"""Real processes: kill -9 a writer at random instants; several writers at once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelswap.core.store import registry as reg
from modelswap.core.store.fsio import read_link
from modelswap.core.store.ids import is_version_id
from modelswap.core.store.layout import version_from_link_target
from modelswap.core.store.manifest import load_manifest, verify_files
from modelswap.core.store.store import Store
from modelswap.core.store.verify import verify_store
from tests.conftest import ROOT

KILLS = 8  # scripts/crash_campaign.py (and its slice in tests/scripts) kills far more; this checks each


def start_worker(root: Path, model_file: Path, *args: str, lock: str = "flock") -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.store_worker", str(root), str(model_file), *args],
        cwd=ROOT,
        env={**os.environ, "MODELSWAP_LOCK": lock},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def assert_store_consistent(store: Store) -> None:
    paths = store.paths("iris")
    registry = Store(store.root).registry("iris")  # the index and its journal parse, or raise
    visible = [p for p in paths.versions_dir.iterdir() if is_version_id(p.name)]
    for directory in visible:
        assert verify_files(directory, load_manifest(directory)) == [], f"partial version {directory.name} is visible"
    target = read_link(paths.current)
    if target is not None:
        current = version_from_link_target(target)
        assert current is not None, f"current -> {target!r}"
        assert paths.version_dir(current).is_dir(), f"current names a missing version {current}"
        assert current in registry, f"current {current} is not published"


def test_kill_9_at_random_instants_never_leaves_a_partial_or_dangling_store(tmp_path: Path, iris_file: Path) -> None:
    rng = random.Random(1123)
    store = Store(tmp_path / "models")
    repaired = 0
    for _ in range(KILLS):
        proc = start_worker(store.root, iris_file, "churn")
        time.sleep(rng.uniform(0.02, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL, "the worker died on its own: " + str(proc.stderr)
        assert_store_consistent(store)
        report = verify_store(store, repair=True)
        repaired += sum(p.repaired for p in report.problems)
        assert report.ok, report.to_dict()
        assert not verify_store(store).problems
    history = store.history("iris")
    assert sum(e.action == reg.DEPLOY for e in history) >= KILLS  # the workers really worked


@pytest.mark.parametrize("lock", ["flock", "soft"])
def test_concurrent_writers_lose_no_registry_update(tmp_path: Path, iris_file: Path, lock: str) -> None:
    root = tmp_path / "models"
    workers, each = 4, 5
    procs = [start_worker(root, iris_file, "publish", str(each), str(i), lock=lock) for i in range(workers)]
    published: list[str] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        published += out.split()
    store = Store(root)
    registry = store.registry("iris")
    assert sorted(published) == sorted(registry.ids()) and len(published) == workers * each
    deploys = [e for e in reversed(store.history("iris")) if e.action == reg.DEPLOY]
    assert len(deploys) == workers * each
    # history is one chain: each deploy starts where the previous one ended
    assert all(later.from_version == earlier.to_version for earlier, later in zip(deploys, deploys[1:], strict=False))
    assert store.current("iris") == deploys[-1].to_version
    assert not verify_store(store).problems
