"""A write that reports failure has changed nothing; one that reports success is in history.

Writes fail for real here: a child process runs the store operation under an
RLIMIT_FSIZE small enough that its file writes fail with EFBIG (the kernel's "the disk
will take no more" for that process), which needs no privileges to set up. Where the
failing step is a rename or a removal, which no limit can make fail, the test makes the
one call raise (fault injection: the real failure cannot be produced here).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelswap.core.delivery.canary import start_canary, stop_canary
from modelswap.core.store import history
from modelswap.core.store import registry as reg
from modelswap.core.store.store import Store
from tests.conftest import ROOT, publish

LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
from modelswap.core.store.store import Store
from modelswap.core.delivery.canary import start_canary
store = Store(sys.argv[1])
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
op, *args = sys.argv[3:]
try:
    if op == "deploy":
        store.deploy("iris", args[0], actor="limited")
    elif op == "rollback":
        store.rollback("iris", actor="limited")
    elif op == "gc":
        store.gc("iris", keep=int(args[0]), actor="limited")
    elif op == "canary":
        start_canary(store, "iris", args[0], 0.5, actor="limited")
except OSError as exc:
    print("failed", exc.errno)
    sys.exit(3)
print("ok")
"""


def run_limited(store: Store, limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LIMITED, str(store.root), str(limit), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def snapshot(store: Store) -> dict[str, Any]:
    paths = store.paths("iris")
    return {
        "current": os.readlink(paths.current) if paths.current.is_symlink() else None,
        "history": paths.history.read_bytes() if paths.history.exists() else b"",
        "index": paths.registry.read_bytes(),
        "abtest": paths.abtest.exists(),
        "entries": sorted(p.name for p in paths.dir.iterdir()),
        "versions": sorted(p.name for p in paths.versions_dir.iterdir()),
    }


@pytest.fixture
def three(store: Store, iris_a: Any) -> tuple[Store, list[str]]:
    ids = [publish(store, iris_a) for _ in range(3)]
    store.deploy("iris", ids[0])
    store.deploy("iris", ids[1])
    return store, ids


@pytest.mark.parametrize(
    "op",
    [("deploy", 2), ("rollback",), ("gc", "0"), ("canary", 2)],
    ids=["deploy", "rollback", "gc", "canary"],
)
def test_when_the_journal_cannot_be_written_nothing_changes(
    three: tuple[Store, list[str]], op: tuple[Any, ...]
) -> None:
    store, ids = three
    args = [ids[a] if isinstance(a, int) else a for a in op[1:]]
    before = snapshot(store)
    limit = store.paths("iris").history.stat().st_size  # not one byte more may be appended
    result = run_limited(store, limit, op[0], *args)
    assert result.returncode == 3 and "failed 27" in result.stdout, result.stdout + result.stderr  # EFBIG
    assert snapshot(store) == before


def test_a_journal_line_the_disk_takes_only_part_of_is_cut_and_nothing_changes(three: tuple[Store, list[str]]) -> None:
    """Room for part of the line: the write is short (not an error), the next one fails;
    the entry is written whole or not at all, and the deploy does not happen."""
    store, ids = three
    before = snapshot(store)
    limit = store.paths("iris").history.stat().st_size + 10  # ten bytes of the line fit
    result = run_limited(store, limit, "deploy", ids[0])
    assert result.returncode == 3 and "failed 27" in result.stdout, result.stdout + result.stderr  # EFBIG
    assert snapshot(store) == before


def test_a_rollback_whose_index_write_fails_still_happened_and_is_in_history(
    three: tuple[Store, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, ids = three
    paths = store.paths("iris")

    def full(path: Path, registry: reg.Registry) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reg, "write_registry", full)  # the journal took the entry; the index cannot follow
    back = store.rollback("iris")
    monkeypatch.undo()
    assert (back.previous, back.current) == (ids[1], ids[0]) and store.current("iris") == ids[0]
    last = store.history("iris", limit=1)[0]
    assert (last.action, last.from_version, last.to_version) == (reg.ROLLBACK, ids[1], ids[0])
    # the index is behind its journal, and a fresh reader replays the rest
    assert reg.read_registry(paths.registry, "iris").status_of(ids[1]) == reg.AVAILABLE
    assert Store(store.root).registry("iris").status_of(ids[1]) == reg.ROLLED_BACK


def test_a_swap_that_fails_after_the_journal_takes_the_entry_back(
    three: tuple[Store, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, ids = three
    before = snapshot(store)
    real = os.replace

    def failing(src: Any, dst: Any) -> None:
        if Path(dst).name == "current":
            raise OSError(5, "Input/output error")
        real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError):
        store.deploy("iris", ids[2])
    monkeypatch.undo()
    assert snapshot(store) == before


def test_a_canary_stop_whose_removal_fails_is_not_recorded(
    three: tuple[Store, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, ids = three
    start_canary(store, "iris", ids[2], 0.2)
    before = snapshot(store)
    real = os.unlink

    def failing(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path).name == "abtest.json":
            raise OSError(30, "Read-only file system")
        real(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", failing)
    with pytest.raises(OSError):
        stop_canary(store, "iris")
    monkeypatch.undo()
    assert snapshot(store) == before
    assert history.last(store.paths("iris").history).action == reg.CANARY_START  # type: ignore[union-attr]


def test_a_move_to_the_canary_removes_its_file_before_current_moves_and_puts_it_back_on_failure(
    three: tuple[Store, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between the two steps must never leave abtest.json naming the live version."""
    store, ids = three
    paths = store.paths("iris")
    start_canary(store, "iris", ids[2], 0.2)
    saved = paths.abtest.read_bytes()
    before = snapshot(store)
    real = os.replace
    seen: list[bool] = []

    def failing(src: Any, dst: Any) -> None:
        if Path(dst).name == "current":
            seen.append(paths.abtest.exists())
            raise OSError(5, "Input/output error")
        real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError):
        store.deploy("iris", ids[2])
    monkeypatch.undo()
    assert seen == [False]  # the canary's file was gone when current was about to move
    assert snapshot(store) == before and paths.abtest.read_bytes() == saved
    store.deploy("iris", ids[2])
    assert store.current("iris") == ids[2] and not paths.abtest.exists()
