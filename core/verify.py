"""``modelswap verify [--repair]``: find, and where safe mend, what a crash or a hand left wrong."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelswap.core import registry as reg
from modelswap.core.canary import read_canary
from modelswap.core.clock import default_actor, iso
from modelswap.core.errors import CorruptRegistry, InvalidInput, ValidationFailed
from modelswap.core.fsio import atomic_symlink, read_json_file, read_link
from modelswap.core.ids import is_version_id
from modelswap.core.layout import (
    METRICS_FILE,
    STAGING_PREFIX,
    TMP_MARK,
    TRASH_PREFIX,
    ModelPaths,
    version_from_link_target,
)
from modelswap.core.manifest import load_manifest, manifest_digest, verify_files
from modelswap.core.store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    model: str
    kind: str
    message: str
    repaired: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "kind": self.kind, "message": self.message, "repaired": self.repaired}


@dataclass(frozen=True)
class Report:
    problems: tuple[Problem, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong any more (all problems repaired, or none)."""
        return all(p.repaired for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": [p.to_dict() for p in self.problems]}


def verify_store(
    store: Store, models: list[str] | None = None, *, repair: bool = False, actor: str | None = None
) -> Report:
    problems: list[Problem] = []
    for model in models if models is not None else store.models():
        store.existing(model)
        if repair:
            with store.locked(model) as paths:
                problems.extend(_verify_model(store, paths, repair=True, actor=actor or default_actor()))
        else:
            problems.extend(_verify_model(store, store.paths(model), repair=False, actor=""))
    return Report(tuple(problems))


def _verify_model(store: Store, paths: ModelPaths, *, repair: bool, actor: str) -> list[Problem]:
    """Check one model. With ``repair``, the caller holds the lock.

    1. transient leftovers: staging and trash directories, temp files and links;
    2. the registry parses (else rebuild it from the version directories);
    3. every directory matches its manifest; registered and on-disk sets agree;
    4. ``current`` names an intact published version and history agrees with it;
    5. ``abtest.json`` names an intact version.
    """
    model = paths.name
    found: list[Problem] = []

    def note(kind: str, message: str, fixed: bool = False) -> None:
        found.append(Problem(model, kind, message, fixed and repair))

    # 1
    leftovers = (
        [p for p in paths.versions_dir.iterdir() if p.name.startswith((STAGING_PREFIX, TRASH_PREFIX))]
        if paths.versions_dir.is_dir()
        else []
    )
    for path in leftovers:
        if repair:
            shutil.rmtree(path)
        note("leftover", f"unfinished write left {path.name} in versions/", fixed=True)
    for path in list(paths.dir.iterdir()):
        if TMP_MARK in path.name:
            if repair:
                path.unlink(missing_ok=True) if not path.is_dir() or path.is_symlink() else shutil.rmtree(path)
            note("leftover", f"temporary entry {path.name} left by an interrupted write", fixed=True)

    # 2
    changed = False
    try:
        registry = reg.read_registry(paths.registry, model)
    except CorruptRegistry as exc:
        note(
            "registry",
            f"{exc} (rebuilt from the version directories; history restarts)" if repair else str(exc),
            fixed=True,
        )
        registry, changed = reg.Registry(model), True

    # 3
    on_disk = (
        [p.name for p in sorted(paths.versions_dir.iterdir()) if is_version_id(p.name) and p.is_dir()]
        if paths.versions_dir.is_dir()
        else []
    )
    intact: set[str] = set()
    for version in on_disk:
        directory = paths.version_dir(version)
        try:
            manifest = load_manifest(directory)
            issues = verify_files(directory, manifest)
        except ValidationFailed as exc:
            manifest, issues = None, [str(exc)]
        if issues:
            mark = version in registry and registry.status_of(version) != reg.CORRUPT
            if repair and mark:
                registry, changed = registry.with_status(version, reg.CORRUPT), True
            note("corrupt", f"{version}: " + "; ".join(issues) + (" (marked corrupt)" if repair and mark else ""))
            continue
        intact.add(version)
        if version not in registry and manifest is not None:
            if repair:
                registry, changed = registry.with_version(_record_from_disk(paths, version, manifest)), True
            note("unregistered", f"{version} is on disk but not in versions.json", fixed=True)
    for version in registry.ids():
        if version not in on_disk:
            if repair:
                registry, changed = registry.without([version]), True
            note("missing", f"versions.json names {version} but its directory is gone", fixed=True)

    # 4
    target = read_link(paths.current)
    current = version_from_link_target(target) if target is not None else None
    if target is not None and (current is None or current not in intact):
        fallback = next((v for v in registry.live_sequence() if v in intact and v != current), None)
        fixable = fallback is not None
        if repair and fallback is not None:
            atomic_symlink(paths.current, paths.version_link_target(fallback))
            registry, changed = (
                registry.with_event(
                    reg.HistoryEntry(
                        iso(store.clock()), reg.REPAIR_LIVE, actor, current, fallback, "current named no intact version"
                    )
                ),
                True,
            )
        note(
            "current",
            f"current -> {target!r} names no intact published version"
            + (f"; repointed to {fallback}" if repair and fixable else ""),
            fixed=fixable,
        )
        current = fallback if repair and fixable else current
    elif current is not None and registry.last_live() != current:
        said = registry.last_live()
        if repair:
            registry, changed = (
                registry.with_event(
                    reg.HistoryEntry(
                        iso(store.clock()),
                        reg.REPAIR_LIVE,
                        actor,
                        registry.last_live(),
                        current,
                        "history disagreed with the current symlink; the symlink wins",
                    )
                ),
                True,
            )
        note("history", f"history says {said or 'nothing'} is live but current points to {current}", fixed=True)

    # 5
    try:
        config = read_canary(paths.abtest)
        canary = config.version if config is not None else None
    except InvalidInput as exc:
        config, canary = None, None
        if repair:
            os.unlink(paths.abtest)
        note("canary", f"{exc.message}; canary stopped" if repair else exc.message, fixed=True)
    if config is not None and (canary not in intact or canary == current):
        if repair:
            os.unlink(paths.abtest)
        what = "the live version" if canary == current else "not an intact version"
        note("canary", f"abtest.json names {canary!r}, which is {what}; canary stopped", fixed=True)

    if repair and changed:
        registry = registry.with_event(
            reg.HistoryEntry(
                iso(store.clock()), reg.REPAIR, actor, None, current, "verify --repair", {"problems": len(found)}
            )
        )
        reg.write_registry(paths.registry, registry)
    for problem in found:
        logger.info("verify %s: %s%s", model, problem.message, " (repaired)" if problem.repaired else "")
    return found


def _record_from_disk(paths: ModelPaths, version: str, manifest: Any) -> reg.Version:
    directory = paths.version_dir(version)
    try:
        metrics = read_json_file(directory / METRICS_FILE)
    except (FileNotFoundError, orjson.JSONDecodeError):
        metrics = {}
    return reg.Version(
        id=version,
        created_at=manifest.created_at,
        metrics=metrics if isinstance(metrics, dict) else {},
        tags=dict(manifest.tags),
        description=manifest.description,
        manifest_sha256=manifest_digest(directory),
        size=manifest.size,
        parent=manifest.parent,
    )
