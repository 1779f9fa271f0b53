"""Moving ``current``: deploy, rollback and promote share one algorithm, here.

Each validates the target (digests, load, a predict on its example) before the
symlink moves, refuses a target whose inputs would break clients of the live version,
and records the move in history.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from modelswap.core.errors import Conflict, ValidationFailed, VersionNotFound
from modelswap.core.schema.signature import manifest_signature
from modelswap.core.schema.signature import schema_change as signature_change
from modelswap.core.store import registry as reg
from modelswap.core.store.clock import default_actor, iso
from modelswap.core.store.fsio import atomic_write_bytes, fsync_dir, read_regular, temp_symlink, write_then
from modelswap.core.store.kernel import Kernel
from modelswap.core.store.layout import ModelPaths
from modelswap.core.store.outcomes import Transition

logger = logging.getLogger(__name__)

RETRIES = 3

# ``also(current, target)``: one more file (path, JSON value) written with a move as one change
Also = Callable[[str | None, str], tuple[Path, Any]]


def move_current(
    kernel: Kernel,
    model: str,
    choose: Callable[[reg.Registry, str | None], str],
    action: str,
    actor: str | None,
    reason: str,
    *,
    force: bool = False,
    details: Mapping[str, Any] | None = None,
    also: Also | None = None,
) -> Transition:
    """Move ``current`` to the version ``choose`` picks; a failure changes nothing.

    ``details`` go into the history entry; ``also(current, target)`` names one more file
    (path, JSON value) written with the move as one change (a watched deploy's
    ``watch.json``): before the rename, and put back if the rename fails.

    1. read the registry and ``current``; pick the target (no lock); compare its
       signature with the live one's (IncompatibleSchema unless ``force``);
    2. validate the target outside the lock (loading can be slow);
    3. under the lock, re-read; if ``current`` or the pick changed, start over;
    4. make the new link under a temp name beside ``current`` (the step that needs
       space: if the disk is full, nothing has changed yet);
    5. journal the move (history.jsonl, fsynced: the commit point); if the new live
       version is the canary's (promote, or a deploy of the canary's version), the test
       is over: remove ``abtest.json`` first (see :func:`swap_in`); rename the temp link
       over ``current`` and fsync the directory; if the rename fails ``abtest.json`` is
       put back, the journal entry taken back and the temp link removed;
    6. bring the index up to date (a failure here only delays it: readers replay the
       journal).
    A crash between the journal append and the rename leaves history one move ahead
    of the symlink; the symlink wins and ``verify --repair`` records that (and the stop
    of a canary whose file is gone).
    """
    paths = kernel.existing(model)
    for _ in range(RETRIES):
        registry = kernel.load_registry(paths)  # 1
        current = kernel.current(model)
        target = choose(registry, current)
        kernel.require_published(registry, paths, target)
        if action == reg.ROLLBACK and target == current:
            raise Conflict(f"{model}: {target} is already live")
        change = schema_change(kernel, model, current, target, force=force, what=f"{action} to {target}")
        kernel.validator(paths, target)  # 2
        with kernel.locked(model):
            registry = kernel.load_registry(paths)  # 3
            if kernel.current(model) != current or choose(registry, current) != target:
                continue
            kernel.require_published(registry, paths, target)
            canary = kernel.canary(model)
            extra = {**change, **(details or {}), **({"canary_ended": canary} if canary == target else {})}
            who = actor or default_actor()
            entry = reg.HistoryEntry(iso(kernel.clock()), action, who, current, target, reason, extra)
            tmp = temp_symlink(paths.current, paths.version_link_target(target))  # 4
            try:  # every path that does not swap removes the temp link (a refused `also` too)
                swap: Callable[[], None] = functools.partial(swap_in, tmp, paths, ends_canary=canary == target)
                if also is not None:
                    path, value = also(current, target)
                    swap = functools.partial(write_then, path, value, swap)
                kernel.commit(paths, registry, entry, swap)  # 5, 6
            finally:
                tmp.unlink(missing_ok=True)  # gone after a successful rename; debris otherwise
        logger.info("%s %s: %s -> %s", action, model, current, target)
        return Transition(model, action, current, target)
    raise Conflict(f"{model}: the store kept changing under this {action}; try again")


def swap_in(tmp: Path, paths: ModelPaths, *, ends_canary: bool = False) -> None:
    """Rename the prepared link over ``current`` and make the rename durable.

    When the new live version is the canary's, ``abtest.json`` is removed (durably)
    *before* the rename: a crash between the two leaves the old version live and the
    canary stopped, never a canary file that names the live version. If the rename
    fails, the file is put back as it was and the error raised (the move did not happen).
    """
    saved = take_canary_file(paths) if ends_canary else None
    try:
        os.replace(tmp, paths.current)
    except BaseException:
        if saved is not None:
            atomic_write_bytes(paths.abtest, saved)
        raise
    fsync_dir(paths.dir)


def take_canary_file(paths: ModelPaths) -> bytes | None:
    """Remove ``abtest.json`` durably and return what it held (None: already gone)."""
    try:
        saved = read_regular(paths.abtest)
        os.unlink(paths.abtest)
    except FileNotFoundError:
        return None
    fsync_dir(paths.dir)
    return saved


def schema_change(
    kernel: Kernel, model: str, live: str | None, candidate: str, *, force: bool, what: str
) -> dict[str, Any]:
    """History details of ``candidate`` replacing ``live`` for clients (see
    core.schema.signature.schema_change): IncompatibleSchema unless compatible or ``force``."""
    if live is None or live == candidate:
        return {}
    try:
        before = manifest_signature(kernel.manifest(model, live))
    except (ValidationFailed, VersionNotFound):
        return {}  # a damaged or vanished live version has no clients to protect
    after = manifest_signature(kernel.manifest(model, candidate))
    return signature_change(before, after, force=force, what=what)
