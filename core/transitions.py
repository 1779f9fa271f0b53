"""Moving ``current``: deploy, rollback and promote share one algorithm, here.

Each validates the target (digests, load, a predict on its example) before the
symlink moves, refuses a target whose inputs would break clients of the live version,
and records the move in history.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelswap.core import registry as reg
from modelswap.core.clock import default_actor, iso
from modelswap.core.errors import Conflict, ValidationFailed, VersionNotFound
from modelswap.core.fsio import atomic_symlink
from modelswap.core.layout import ModelPaths
from modelswap.core.outcomes import Transition
from modelswap.core.signature import manifest_signature
from modelswap.core.signature import schema_change as signature_change

if TYPE_CHECKING:
    from modelswap.core.store import Store

logger = logging.getLogger(__name__)

RETRIES = 3


def move_current(
    store: Store,
    model: str,
    choose: Callable[[reg.Registry, str | None], str],
    action: str,
    actor: str | None,
    reason: str,
    *,
    extra: Callable[[reg.Registry, ModelPaths], reg.Registry] | None = None,
    force: bool = False,
) -> Transition:
    """Move ``current`` to the version ``choose`` picks.

    1. read the registry and ``current``; pick the target (no lock); compare its
       signature with the live one's (IncompatibleSchema unless ``force``);
    2. validate the target outside the lock (loading can be slow);
    3. under the lock, re-read; if ``current`` or the pick changed, start over;
    4. swap the ``current`` symlink atomically (the truth moves first);
    5. update statuses and append the history entry, write the registry; its
       directory fsync also makes step 4 durable (same directory), so the
       swap itself skips one (an fsync costs ~1 ms of a ~5 ms rollback here).
    A crash between 4 and 5 leaves history one entry behind the symlink;
    the symlink wins and ``verify --repair`` records the move.
    """
    paths = store.existing(model)
    for _ in range(RETRIES):
        registry = store.load_registry(paths)  # 1
        current = store.current(model)
        target = choose(registry, current)
        store.require_published(registry, paths, target)
        if action == reg.ROLLBACK and target == current:
            raise Conflict(f"{model}: {target} is already live")
        change = schema_change(store, model, current, target, force=force, what=f"{action} to {target}")
        store.validator(paths, target)  # 2
        with store.locked(model):
            registry = store.load_registry(paths)  # 3
            if store.current(model) != current or choose(registry, current) != target:
                continue
            store.require_published(registry, paths, target)
            atomic_symlink(paths.current, paths.version_link_target(target), durable=False)  # 4
            updated = registry.with_status(target, reg.AVAILABLE)
            if action == reg.ROLLBACK and current is not None:
                updated = updated.with_status(current, reg.ROLLED_BACK)
            if extra is not None:
                updated = extra(updated, paths)
            updated = updated.with_event(
                reg.HistoryEntry(iso(store.clock()), action, actor or default_actor(), current, target, reason, change)
            )
            store.save_registry(paths, updated)  # 5
        logger.info("%s %s: %s -> %s", action, model, current, target)
        return Transition(model, action, current, target)
    raise Conflict(f"{model}: the store kept changing under this {action}; try again")


def schema_change(
    store: Store, model: str, live: str | None, candidate: str, *, force: bool, what: str
) -> dict[str, Any]:
    """History details of ``candidate`` replacing ``live`` for clients (see
    core.signature.schema_change): IncompatibleSchema unless compatible or ``force``."""
    if live is None or live == candidate:
        return {}
    try:
        before = manifest_signature(store.manifest(model, live))
    except (ValidationFailed, VersionNotFound):
        return {}  # a damaged or vanished live version has no clients to protect
    after = manifest_signature(store.manifest(model, candidate))
    return signature_change(before, after, force=force, what=what)
