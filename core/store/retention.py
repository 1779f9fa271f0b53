"""Deleting versions: ``delete`` one, or ``gc`` all but the newest N; never a protected one.

Protected: the live version, the canary, the version a rollback would go to, and
every version an alias names.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from modelswap.core.errors import InvalidInput, VersionIsLive, VersionNotFound, VersionProtected
from modelswap.core.store import registry as reg
from modelswap.core.store.aliases import read_aliases
from modelswap.core.store.clock import default_actor, iso
from modelswap.core.store.fsio import fsync_dir, refuse_link
from modelswap.core.store.ids import validate_version_id
from modelswap.core.store.kernel import Kernel
from modelswap.core.store.layout import TRASH_PREFIX, ModelPaths
from modelswap.core.store.outcomes import GcPlan

LIVE, CANARY, ROLLBACK_TARGET, NEWEST = "live", "canary", "rollback target", "newest"


def protected(kernel: Kernel, model: str, registry: reg.Registry) -> dict[str, list[str]]:
    """Versions gc and delete must keep, each with every reason why: live, canary,
    rollback target, or the aliases that name it."""
    current = kernel.current(model)
    reasons: dict[str, list[str]] = {}
    for version, why in (
        (current, LIVE),
        (kernel.canary(model), CANARY),
        (kernel.rollback_target(model, registry, current), ROLLBACK_TARGET),
        *((v, f"alias {a}") for a, v in sorted(read_aliases(kernel.paths(model)).items())),
    ):
        if version is not None:
            reasons.setdefault(version, []).append(why)
    return reasons


def delete_version(kernel: Kernel, model: str, version: str, *, actor: str | None = None) -> None:
    """Delete one version that is not protected (live, canary, rollback target, aliased)."""
    validate_version_id(version)
    with kernel.locked(kernel.existing(model).name) as paths:
        registry = kernel.load_registry(paths)
        refuse_link(paths.version_dir(version))  # a link is verify's to report, not delete's to follow
        if version not in registry and not paths.version_dir(version).is_dir():
            raise VersionNotFound(f"model {model} has no version {version}")
        why = protected(kernel, model, registry).get(version)
        if why:
            kind = VersionIsLive if LIVE in why or CANARY in why else VersionProtected
            raise kind(f"{model} {version} is protected ({', '.join(why)}); move that role elsewhere first")
        _remove(kernel, paths, registry, [version], reg.DELETE, actor)


def gc(kernel: Kernel, model: str, keep: int, *, dry_run: bool = False, actor: str | None = None) -> GcPlan:
    """Delete all but the newest ``keep`` versions, never a protected one; say why each stays."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise InvalidInput("keep must be a whole number of versions, 0 or more")
    with kernel.locked(kernel.existing(model).name) as paths:
        registry = kernel.load_registry(paths)
        ids = registry.ids()
        reasons = protected(kernel, model, registry)
        for version in ids[len(ids) - keep :] if keep else []:
            reasons.setdefault(version, []).append(f"{NEWEST} {keep}")
        doomed = [v for v in ids if v not in reasons]
        if not dry_run and doomed:
            _remove(kernel, paths, registry, doomed, reg.GC, actor)
    kept = tuple(v for v in ids if v in reasons)
    return GcPlan(model, tuple(doomed), kept, dry_run, {v: tuple(reasons[v]) for v in kept})


def _remove(
    kernel: Kernel, paths: ModelPaths, registry: reg.Registry, versions: list[str], action: str, actor: str | None
) -> None:
    """Delete versions. Caller holds the lock.

    1. journal the deletion and, as its effect, rename each directory to a hidden trash
       name (it vanishes atomically) and fsync ``versions/``; a rename that fails puts
       back the ones already moved and takes the entry back;
    2. the index drops them (readers replaying the journal already do);
    3. remove the trash. A crash after 1 leaves directories history says are deleted,
       or trash; ``verify --repair`` finishes the job (it never registers them again).
    """
    entry = reg.HistoryEntry(
        iso(kernel.clock()), action, actor or default_actor(), None, None, "", {"versions": list(versions)}
    )
    trash: list[tuple[Path, Path]] = []

    def to_trash() -> None:
        try:
            for version in versions:
                directory = paths.version_dir(version)
                if directory.is_dir() and not directory.is_symlink():
                    moved = paths.versions_dir / f"{TRASH_PREFIX}{version}-{kernel.rand(4)}"
                    os.rename(directory, moved)
                    trash.append((directory, moved))
            fsync_dir(paths.versions_dir)
        except BaseException:
            for directory, moved in reversed(trash):
                os.rename(moved, directory)
            trash.clear()
            raise

    kernel.commit(paths, registry, entry, to_trash)  # 1, 2
    for _, moved in trash:  # 3
        shutil.rmtree(moved)


def discard_unregistered(kernel: Kernel, paths: ModelPaths, version: str) -> None:
    """Remove a version directory the index never named (a publish that failed after its
    rename). Caller holds the lock."""
    directory = paths.version_dir(version)
    moved = paths.versions_dir / f"{TRASH_PREFIX}{version}-{kernel.rand(4)}"
    os.rename(directory, moved)
    shutil.rmtree(moved, ignore_errors=True)
