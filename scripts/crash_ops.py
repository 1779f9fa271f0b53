"""The writer operations of the crash campaign (scripts/crash_campaign.py).

Each op has a ``prepare`` that runs in the campaign's own process, un-killed, and sets
the store up so the op has real work to do (a canary to stop, an unprotected version to
delete, a version to gc...). It returns the ``act`` that a forked worker runs and that
the campaign kills with SIGKILL. The worker reports what it does on a pipe:

    B <ns>            the op begins (CLOCK_MONOTONIC, comparable across processes)
    L <ns>            it starts taking the model's lock (core.store.locking.hold)
    H <ns>            it holds the lock
    J <ns> <action>   a journal append starts (history.jsonl, before its fsync)
    C <ns>            the entry is appended and fsynced: the commit point has passed
    E <ns>            the change the entry records is made (symlink, renames, files)
    P <id>            a publish returned this version id
    D <ns>            the op returned
    X <text>          the op raised (it was refused: nothing to kill)
"""

from __future__ import annotations

import ctypes
import os
import random
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelswap.core.delivery.canary import promote_canary, start_canary, stop_canary
from modelswap.core.store import history, locking
from modelswap.core.store import registry as reg
from modelswap.core.store import store as store_module
from modelswap.core.store.aliases import delete_alias, read_aliases, set_alias
from modelswap.core.store.fsio import atomic_write_json
from modelswap.core.store.locking import LockPolicy
from modelswap.core.store.retention import protected
from modelswap.core.store.store import Store
from modelswap.core.store.verify import verify_store

MODEL = "iris"
ROW = [[6.0, 2.9, 4.5, 1.5]]
MAX_VERSIONS = 8  # "a handful": gc'd back to 3 by the campaign when there are more
ALIASES = ("champion", "staging", "shadow")

Emit = Callable[[str], None]
Act = Callable[[Store, Emit], object]


@dataclass
class Setup:
    """What prepare needs: the campaign's store, its random source, the model file, and
    the ids of every publish that returned (the campaign's own ones too)."""

    store: Store
    rng: random.Random
    model_file: Path
    returned: set[str]

    def publish(self) -> str:
        version = self.store.publish(MODEL, self.model_file, example=ROW, actor="campaign").id
        self.returned.add(version)
        return version

    def ids(self) -> list[str]:
        if not self.store.paths(MODEL).versions_dir.is_dir():
            return []
        registry = self.store.registry(MODEL)
        return [v for v in registry.ids() if registry.status_of(v) != reg.CORRUPT]

    def at_least(self, count: int) -> list[str]:
        while len(self.ids()) < count:
            self.publish()
        return self.ids()

    def other_than_current(self) -> str:
        current = self.store.current(MODEL)
        return self.rng.choice([v for v in self.at_least(2) if v != current])

    def live(self) -> str:
        current = self.store.current(MODEL)
        if current is None:
            current = self.rng.choice(self.at_least(1))
            self.store.deploy(MODEL, current, actor="campaign", force=True)
        return current

    def canary(self) -> str:
        """The running canary's version, starting one if none runs."""
        self.live()
        running = self.store.canary(MODEL)
        if running is None:
            running = self.other_than_current()
            start_canary(self.store, MODEL, running, 0.2, actor="campaign", force=True)
        return running


# -- the ops: prepare (in the campaign) -> act (in the worker) -------------------------
def publish_op(setup: Setup) -> Act:
    model_file = setup.model_file

    def act(store: Store, emit: Emit) -> None:
        emit(f"P {store.publish(MODEL, model_file, example=ROW, actor='worker').id}")

    return act


def deploy_op(setup: Setup) -> Act:
    setup.live()
    target = setup.other_than_current()  # sometimes the canary's version: that ends the test
    return lambda store, emit: store.deploy(MODEL, target, actor="worker", force=True)


def rollback_op(setup: Setup) -> Act:
    setup.live()
    if setup.store.rollback_target(MODEL, setup.store.registry(MODEL), setup.store.current(MODEL)) is None:
        setup.store.deploy(MODEL, setup.other_than_current(), actor="campaign", force=True)
    return lambda store, emit: store.rollback(MODEL, actor="worker", force=True)


def rollback_to_op(setup: Setup) -> Act:
    setup.live()
    target = setup.other_than_current()
    return lambda store, emit: store.rollback(MODEL, target, actor="worker", force=True)


def canary_start_op(setup: Setup) -> Act:
    setup.live()
    target = setup.other_than_current()  # may replace a running canary
    fraction = round(setup.rng.uniform(0.05, 0.5), 3)
    return lambda store, emit: start_canary(store, MODEL, target, fraction, actor="worker", force=True)


def canary_stop_op(setup: Setup) -> Act:
    setup.canary()
    return lambda store, emit: stop_canary(store, MODEL, actor="worker")


def canary_abort_op(setup: Setup) -> Act:
    version = setup.canary()  # the guard's stop: only this canary
    return lambda store, emit: stop_canary(store, MODEL, actor="guard", action=reg.CANARY_ABORT, only_version=version)


def canary_promote_op(setup: Setup) -> Act:
    setup.canary()
    return lambda store, emit: promote_canary(store, MODEL, actor="worker", force=True)


def delete_op(setup: Setup) -> Act:
    setup.live()
    keep = protected(setup.store, MODEL, setup.store.registry(MODEL))
    candidates = [v for v in setup.ids() if v not in keep] or [setup.publish()]
    target = setup.rng.choice(candidates)
    return lambda store, emit: store.delete_version(MODEL, target, actor="worker")


def gc_op(setup: Setup) -> Act:
    setup.live()
    keep = setup.rng.choice([1, 2])
    while not setup.store.gc(MODEL, keep, dry_run=True).deleted:
        setup.publish()
    return lambda store, emit: store.gc(MODEL, keep, actor="worker")


def alias_set_op(setup: Setup) -> Act:
    alias, target = setup.rng.choice(ALIASES), setup.rng.choice(setup.at_least(1))
    return lambda store, emit: set_alias(store, MODEL, alias, target, actor="worker")


def alias_delete_op(setup: Setup) -> Act:
    aliases = read_aliases(setup.store.paths(MODEL)) if setup.ids() else {}
    if not aliases:
        set_alias(setup.store, MODEL, setup.rng.choice(ALIASES), setup.rng.choice(setup.at_least(1)), actor="campaign")
        aliases = read_aliases(setup.store.paths(MODEL))
    alias = setup.rng.choice(sorted(aliases))
    return lambda store, emit: delete_alias(store, MODEL, alias, actor="worker")


def repair_op(setup: Setup) -> Act:
    """verify --repair is a writer too (it repoints ``current``, removes debris, journals);
    the campaign damages the store first (a killed op) so it has work to do."""
    return lambda store, emit: verify_store(store, repair=True, actor="worker")


def migrate_op(setup: Setup) -> Act:
    """A store from before history.jsonl (format 1: history inline in versions.json) is
    migrated by the first writer that takes the lock; here an alias set."""
    setup.live()
    paths = setup.store.paths(MODEL)
    registry = setup.store.registry(MODEL)
    entries = [entry.to_dict() for _, entry in reversed(list(history.newest_first(paths.history)))]
    legacy = {
        "format": 1,
        "model": MODEL,
        "versions": [registry.records[v] for v in registry.ids()],
        "history": entries,
    }
    atomic_write_json(paths.registry, legacy)
    paths.history.unlink()
    alias, target = setup.rng.choice(ALIASES), setup.rng.choice(registry.ids())
    return lambda store, emit: set_alias(store, MODEL, alias, target, actor="worker")


OPS: dict[str, Callable[[Setup], Act]] = {
    "publish": publish_op,
    "deploy": deploy_op,
    "rollback": rollback_op,
    "rollback_to": rollback_to_op,
    "canary_start": canary_start_op,
    "canary_stop": canary_stop_op,
    "canary_abort": canary_abort_op,
    "canary_promote": canary_promote_op,
    "delete": delete_op,
    "gc": gc_op,
    "alias_set": alias_set_op,
    "alias_delete": alias_delete_op,
    "repair": repair_op,
    "migrate": migrate_op,
}
WHOLE_OP_ONLY = frozenset({"repair", "migrate"})  # their work comes before any journal append


# -- the worker (a forked child) -------------------------------------------------------
CLONE_NEWUTS = 0x04000000  # linux/sched.h


def become_host(name: str) -> None:
    """Give this process a UTS namespace of its own, named ``name``: to the soft lock its
    markers then come from another host, as a pod's do to another pod (needs CAP_SYS_ADMIN)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUTS) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"unshare(CLONE_NEWUTS): {os.strerror(error)}")
    socket.sethostname(name)


def run_worker(make_store: Callable[[], Store], act: Act, fd: int, host: str | None = None) -> None:
    """Run ``act`` on a fresh Store from ``make_store`` (as host ``host`` when given, see
    become_host), reporting on ``fd``, then wait to be killed. Never returns."""
    code = 0
    try:
        if host is not None:
            become_host(host)

        def emit(line: str) -> None:
            os.write(fd, line.encode() + b"\n")

        real_journal = history.journal

        @contextmanager
        def journal(path: Path, entry: history.HistoryEntry) -> Iterator[None]:
            emit(f"J {time.monotonic_ns()} {entry.action}")
            with real_journal(path, entry):
                emit(f"C {time.monotonic_ns()}")
                yield
            emit(f"E {time.monotonic_ns()}")

        history.journal = journal
        real_hold = locking.hold

        @contextmanager
        def hold(lock_file: Path, policy: LockPolicy, **options: Any) -> Iterator[None]:
            emit(f"L {time.monotonic_ns()}")
            with real_hold(lock_file, policy, **options):
                emit(f"H {time.monotonic_ns()}")
                yield

        store_module.hold = hold  # type: ignore[attr-defined]  # the name Store.locked calls
        store = make_store()
        emit(f"B {time.monotonic_ns()}")
        try:
            act(store, emit)
        except Exception as exc:  # a refusal: reported, and the campaign counts it
            emit(f"X {type(exc).__name__}: {str(exc)[:200]}".replace("\n", " "))
        emit(f"D {time.monotonic_ns()}")
        time.sleep(120)  # the campaign kills us long before this
    except BaseException:
        traceback.print_exc()
        code = 3
    finally:
        os._exit(code)
