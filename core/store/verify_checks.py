"""The steps of ``verify`` for one model: each finds one kind of damage and, with repair,
mends it; what repair does is journaled at the end as history entries."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import time
from pathlib import Path

from modelswap.core.delivery.abtest import read_canary
from modelswap.core.errors import CorruptRegistry, InvalidInput, ModelswapError
from modelswap.core.store import history
from modelswap.core.store import registry as reg
from modelswap.core.store.aliases import read_aliases
from modelswap.core.store.clock import iso
from modelswap.core.store.fsio import atomic_symlink, atomic_write_json, fsync_dir, read_json_file, read_link
from modelswap.core.store.history import HistoryEntry
from modelswap.core.store.ids import is_version_id
from modelswap.core.store.kernel import Kernel
from modelswap.core.store.layout import (
    CURRENT_LINK,
    METRICS_FILE,
    STAGING_PREFIX,
    TMP_MARK,
    TRASH_PREFIX,
    ModelPaths,
    staging_owner,
    version_from_link_target,
)
from modelswap.core.store.manifest import Manifest, load_manifest, manifest_digest, verify_files
from modelswap.core.store.processes import alive

STAGING_STALE_SECONDS = 3600.0  # another host's staging directory older than this is a crash's

# The store's invariants, one per kind of problem ``verify`` reports: what holds after every
# write, and after ``verify --repair`` whatever a crash interrupted. docs/store.md lists them
# (a test holds the two together) and scripts/crash_invariants.py checks them by kind.
INVARIANTS: dict[str, str] = {
    "leftover": "no debris of an interrupted write: no staging or trash directory of a dead writer, "
    "no temporary entry, no torn last line in history.jsonl, no soft-lock marker unchanged past the stale time",
    "symlink": "the only symlink in a model's directory is `current`; none in versions/",
    "registry": "versions.json parses",
    "deleted": "a version history says was deleted has no directory",
    "corrupt": "every version directory matches its manifest",
    "unregistered": "every intact version directory is in versions.json",
    "missing": "every version versions.json names has its directory",
    "current": "`current` names an intact published version (or is absent if nothing was ever live)",
    "history": "history's last live-moving entry names what `current` names",
    "canary": "abtest.json exists only when history's last canary event started one (on the version "
    "it names), and names an intact version that is not live; it is gone when that event started one",
    "aliases": "every alias names a published version",
    "unreadable": "a model's directory and files can be read (none is a symlink or refused)",
}


class Check:
    """One model's verification. ``run`` returns (kind, message, repaired) per problem.
    With ``repair`` the caller holds the model's lock."""

    def __init__(self, kernel: Kernel, paths: ModelPaths, *, repair: bool, actor: str) -> None:
        self.kernel, self.paths, self.repair, self.actor = kernel, paths, repair, actor
        self.found: list[tuple[str, str, bool]] = []
        self.entries: list[HistoryEntry] = []  # what repair did, journaled at the end
        self.corrupt: list[str] = []
        self.missing: list[str] = []
        self.registered: list[reg.Version] = []
        self.deleted: list[str] = []  # deletions history recorded and repair finished
        self.rebuilt = False
        self.journal = _journal(kernel, paths)  # newest first

    def note(self, kind: str, message: str, *, fixable: bool = True) -> None:
        self.found.append((kind, message, fixable and self.repair))

    def run(self) -> list[tuple[str, str, bool]]:
        self.leftovers()
        registry = self.index()
        intact = self.directories(registry)
        current = self.current(registry, intact)
        self.canary(intact, current)
        self.aliases(registry)
        if self.repair:
            self.commit(registry)
        return self.found

    # -- 1. debris of interrupted writes, and links that must not be ------------------
    def leftovers(self) -> None:
        paths = self.paths
        if (
            paths.history.exists()
            and not paths.history.is_symlink()
            and history.size(paths.history) != paths.history.stat().st_size
        ):
            if self.repair:
                history.cut_torn_tail(paths.history)
            self.note("leftover", f"{paths.history.name} ends in a torn entry from an interrupted write")
        versions = sorted(paths.versions_dir.iterdir()) if paths.versions_dir.is_dir() else []
        for path in versions:
            if path.name.startswith(STAGING_PREFIX) and not path.is_symlink() and self._in_flight(path):
                continue  # a publish still writing it
            if path.name.startswith((STAGING_PREFIX, TRASH_PREFIX)):
                self._remove(path)
                self.note("leftover", f"unfinished write left {path.name} in versions/")
            elif path.is_symlink():
                self._remove(path)
                self.note("symlink", f"versions/{path.name} is a symlink (never followed; removed on repair)")
        for path in sorted(paths.dir.iterdir()):
            if TMP_MARK in path.name:
                self._remove(path)
                self.note("leftover", f"temporary entry {path.name} left by an interrupted write")
            elif path.is_symlink() and path.name != CURRENT_LINK:
                self._remove(path)
                self.note("symlink", f"{path.name} is a symlink; only `current` may be one (removed on repair)")

    def _in_flight(self, staging: Path) -> bool:
        owner = staging_owner(staging.name)
        if owner is None:
            return False
        pid, host = owner
        if host == socket.gethostname():
            return alive(pid)
        return time.time() - staging.lstat().st_mtime < STAGING_STALE_SECONDS

    def _remove(self, path: Path) -> None:
        if not self.repair:
            return
        if path.is_symlink() or not path.is_dir():
            path.unlink(missing_ok=True)  # a link goes, never what it points to
        else:
            shutil.rmtree(path)

    def _discard(self, directory: Path) -> None:
        """Remove a visible version directory: renamed to a hidden trash name first (it
        vanishes at once), then removed, so a repair killed halfway never leaves a
        partial version in sight (only trash, which the next repair removes)."""
        if not self.repair:
            return
        moved = directory.with_name(f"{TRASH_PREFIX}{directory.name}-{secrets.token_hex(4)}")
        os.rename(directory, moved)
        fsync_dir(directory.parent)
        shutil.rmtree(moved)

    # -- 2. the index parses (else it is rebuilt from the directories and the journal) -
    def index(self) -> reg.Registry:
        try:
            return self.kernel.load_registry(self.paths)
        except CorruptRegistry as exc:
            self.rebuilt = True
            self.note("registry", f"{exc.message} (rebuilt from the version directories and history.jsonl)")
            return reg.Registry(self.paths.name)

    # -- 3. directories and manifests against the index and the journal ---------------
    def directories(self, registry: reg.Registry) -> set[str]:
        paths = self.paths
        deleted = {v for e in self.journal if e.action in (reg.GC, reg.DELETE) for v in e.details.get("versions") or []}
        on_disk = (
            [p.name for p in sorted(paths.versions_dir.iterdir()) if is_version_id(p.name) and not p.is_symlink()]
            if paths.versions_dir.is_dir()
            else []
        )
        intact: set[str] = set()
        for version in on_disk:
            directory = paths.version_dir(version)
            if version in deleted and version not in registry:
                self._discard(directory)
                self.deleted.append(version)
                self.note("deleted", f"{version}: history says it was deleted; its directory was still there")
                continue
            try:
                manifest: Manifest | None = load_manifest(directory)
                issues = verify_files(directory, manifest) if manifest is not None else []
            except (ModelswapError, OSError) as exc:
                manifest, issues = None, [str(getattr(exc, "message", exc))]
            if issues:
                mark = version in registry and registry.status_of(version) != reg.CORRUPT
                if mark:
                    self.corrupt.append(version)
                self.note(
                    "corrupt",
                    f"{version}: " + "; ".join(issues) + (" (marked corrupt)" if mark and self.repair else ""),
                    fixable=False,
                )
                continue
            intact.add(version)
            if version not in registry and manifest is not None:
                self.registered.append(_record_from_disk(paths, version, manifest))
                self.note("unregistered", f"{version} is on disk but not in versions.json")
        for version in registry.ids():
            if version not in on_disk:
                self.missing.append(version)
                self.note("missing", f"versions.json names {version} but its directory is gone")
        return intact

    # -- 4. `current` names an intact version, and history agrees ----------------------
    def current(self, registry: reg.Registry, intact: set[str]) -> str | None:
        paths = self.paths
        if paths.current.exists() and not paths.current.is_symlink():
            self.note("current", "current is not a symlink; move it aside and deploy a version", fixable=False)
            return None
        target = read_link(paths.current)
        current = version_from_link_target(target) if target is not None else None
        live = [e.to_version for e in self.journal if e.action in reg.LIVE_ACTIONS and e.to_version]
        if current is not None and current in intact:
            if live and live[0] != current:
                self._live(live[0], current, "history disagreed with the current symlink; the symlink wins")
                self.note("history", f"history says {live[0]} is live but current points to {current}")
            elif not live:
                self._live(None, current, "current was set without a history entry")
                self.note("history", f"current points to {current} but history names no live version")
            return current
        fallback = next((v for v in live if v in intact and v != current), None)
        if target is None:
            if fallback is None:
                return None  # never deployed: nothing to restore
            what = f"current is missing although history says {live[0]} is live"
        else:
            what = f"current -> {target!r} names no intact published version"
        if fallback is None:
            self.note("current", what + "; no intact version from history to repoint it to", fixable=False)
            return current
        if self.repair:
            atomic_symlink(paths.current, paths.version_link_target(fallback))
            self._live(current, fallback, what)
        self.note(
            "current", what + (f"; repointed to {fallback}" if self.repair else f"; repair repoints it to {fallback}")
        )
        return fallback if self.repair else current

    def _live(self, before: str | None, after: str, reason: str) -> None:
        self.entries.append(HistoryEntry(iso(self.kernel.clock()), reg.REPAIR_LIVE, self.actor, before, after, reason))

    # -- 5. abtest.json agrees with the journal and names an intact, non-live version --
    def canary(self, intact: set[str], current: str | None) -> None:
        paths = self.paths
        last = next((event for event in map(history.canary_event, self.journal) if event is not None), None)
        try:
            config = read_canary(paths.abtest)
        except InvalidInput as exc:
            self._end_canary(None, f"{exc.message}; canary stopped")
            return
        if config is None:
            if last is not None and last[0] == "start":
                self._end_canary(last[1], "history says a canary runs but abtest.json is gone", remove=False)
            return
        if config.version not in intact or config.version == current:
            what = "the live version" if config.version == current else "not an intact version"
            self._end_canary(config.version, f"abtest.json names {config.version!r}, which is {what}; canary stopped")
        elif last is not None and last == ("end", config.version):
            self._end_canary(
                config.version, f"history ended the canary on {config.version} but abtest.json remained", record=False
            )
        elif last is not None and last[0] == "start" and last[1] != config.version:
            self._end_canary(
                config.version, f"abtest.json names {config.version} but history's last canary start is {last[1]}"
            )

    def _end_canary(self, version: str | None, message: str, *, remove: bool = True, record: bool = True) -> None:
        if self.repair:
            if remove:
                self.paths.abtest.unlink(missing_ok=True)
                fsync_dir(self.paths.dir)
            if record:
                self.entries.append(
                    HistoryEntry(
                        iso(self.kernel.clock()), reg.CANARY_STOP, self.actor, version, None, f"repair: {message}"
                    )
                )
        self.note("canary", message)

    # -- 6. aliases name published versions --------------------------------------------
    def aliases(self, registry: reg.Registry) -> None:
        try:
            aliases = read_aliases(self.paths)
        except ModelswapError as exc:
            self.note("aliases", f"{exc.message} (left as is: fix or remove the file)", fixable=False)
            return
        gone = {
            a: v
            for a, v in aliases.items()
            if v in self.missing or (v not in registry and v not in {r.id for r in self.registered})
        }
        if not gone:
            return
        for alias, version in gone.items():
            self.note("aliases", f"alias {alias} names {version}, which is not published (removed on repair)")
        if self.repair:
            atomic_write_json(self.paths.aliases, {a: v for a, v in sorted(aliases.items()) if a not in gone})

    # -- the journal entries of what repair did, and the index -------------------------
    def commit(self, registry: reg.Registry) -> None:
        kernel, paths = self.kernel, self.paths
        for entry in self.entries:
            history.append(paths.history, entry)
        if self.rebuilt:  # statuses come back from the journal, oldest first
            for record in self.registered:
                registry = registry.with_version(record)
            for entry in reversed(self.journal):
                registry = registry.applied(entry)
            self.registered = []
        if self.corrupt or self.missing or self.registered or self.rebuilt or self.deleted:
            summary = HistoryEntry(
                iso(kernel.clock()), reg.REPAIR, self.actor, None, kernel.current(paths.name), "verify --repair",
                {"problems": len(self.found), "corrupt": self.corrupt, "missing": self.missing,
                 "registered": [r.id for r in self.registered], "deleted": self.deleted},
            )  # fmt: skip
            history.append(paths.history, summary)
            for record in self.registered:
                registry = registry.with_version(record)
            registry = registry.applied(summary)
        if self.entries or self.corrupt or self.missing or self.registered or self.rebuilt:
            kernel.save_registry(paths, registry.at(history.size(paths.history)))


def _record_from_disk(paths: ModelPaths, version: str, manifest: Manifest) -> reg.Version:
    directory = paths.version_dir(version)
    try:
        metrics = read_json_file(directory / METRICS_FILE)
    except (OSError, ValueError, ModelswapError):
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


def _journal(kernel: Kernel, paths: ModelPaths) -> list[HistoryEntry]:
    """Every history entry, newest first (from history.jsonl even when the index is
    damaged and cannot say whether it still holds the history itself)."""
    try:
        return [e for _, e in kernel.ledger.newest_first(paths)]
    except CorruptRegistry:
        return [e for _, e in history.newest_first(paths.history)]
