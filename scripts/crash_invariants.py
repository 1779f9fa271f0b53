"""What must hold after any SIGKILL, before and after ``verify --repair`` (scripts/crash_campaign.py).

The store's invariants are one list, ``core.store.verify_checks.INVARIANTS`` (docs/store.md); each
failure here starts with the kind of the invariant it breaks. These checks are written
apart from ``verify``'s (an oracle: a bug in verify must not hide itself), and after a
repair ``verify`` itself must also find nothing. Two checks only a campaign can make are
added: a publish that returned is never lost without a recorded deletion, and history
only grows. Every check reads the store afresh (a new Store: no cache survives from the
worker or from an earlier check) and returns a list of failures, empty when all is well.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from modelswap.core.delivery.abtest import read_canary
from modelswap.core.errors import ModelswapError
from modelswap.core.store import history
from modelswap.core.store import registry as reg
from modelswap.core.store.fsio import read_link
from modelswap.core.store.ids import is_version_id
from modelswap.core.store.layout import ModelPaths, version_from_link_target
from modelswap.core.store.manifest import load_manifest, verify_files
from modelswap.core.store.store import Store
from modelswap.core.store.verify import verify_store


def journal_bytes(paths: ModelPaths) -> bytes:
    try:
        return paths.history.read_bytes()
    except FileNotFoundError:
        return b""


def check(root: Path, model: str, returned: set[str], journal_before: bytes, *, repaired: bool) -> list[str]:
    """The campaign's invariants. ``returned``: ids whose publish returned; ``journal_before``:
    history.jsonl as the previous repaired check saw it (it may only grow)."""
    store = Store(root)
    paths = store.paths(model)
    if not paths.dir.exists():
        return []
    failures: list[str] = []
    intact = _intact_versions(paths, failures)
    failures += _parses(paths, repaired=repaired)
    try:
        registry = store.registry(model)
    except ModelswapError as exc:
        return [*failures, f"registry: the registry (index + journal) does not load: {exc.message}"]
    current = _current(paths, registry, intact, failures)
    failures += _canary(paths, registry, intact, current)
    if repaired:
        failures += _canary_agrees_with_history(store, paths)
    journal = journal_bytes(paths)
    if not journal.startswith(journal_before):
        failures.append("journal: history.jsonl lost or rewrote entries it held before")
    deleted = {
        v
        for _, entry in store.ledger.newest_first(paths)  # a format 1 index holds it inline
        if entry.action in (reg.GC, reg.DELETE)
        for v in entry.details.get("versions") or []
    }
    for version in sorted(returned - deleted):
        if version not in intact or version not in registry:
            failures.append(f"lost: {version} was published (publish returned) and is gone without a recorded deletion")
    if repaired:
        failures += _after_repair(store, model, current)
    return failures


def _intact_versions(paths: ModelPaths, failures: list[str]) -> set[str]:
    """Visible version directories; each one not matching its manifest is a failure."""
    intact: set[str] = set()
    if not paths.versions_dir.is_dir():
        return intact
    for directory in sorted(paths.versions_dir.iterdir()):
        if not is_version_id(directory.name):
            continue  # staging and trash directories are hidden by name
        try:
            issues = verify_files(directory, load_manifest(directory))
        except (ModelswapError, OSError) as exc:
            issues = [str(getattr(exc, "message", exc))]
        if issues:
            failures.append(f"corrupt: partial version visible: versions/{directory.name}: {'; '.join(issues)}")
        else:
            intact.add(directory.name)
    return intact


def _parses(paths: ModelPaths, *, repaired: bool) -> list[str]:
    failures: list[str] = []
    if paths.registry.exists():
        try:
            reg.read_registry(paths.registry, paths.name)
        except ModelswapError as exc:
            failures.append(f"registry: versions.json does not parse: {exc.message}")
    lines = journal_bytes(paths).split(b"\n")
    torn = lines.pop()  # b"" when the file ends in a newline
    if torn and repaired:
        failures.append(f"leftover: history.jsonl ends in a torn line after repair: {torn[:60]!r}")
    for number, line in enumerate(lines, 1):
        try:
            if not isinstance(orjson.loads(line), dict):
                raise ValueError("not an object")
        except (orjson.JSONDecodeError, ValueError) as exc:
            failures.append(f"registry: history.jsonl line {number} does not parse ({exc}): {line[:60]!r}")
    return failures


def _current(paths: ModelPaths, registry: reg.Registry, intact: set[str], failures: list[str]) -> str | None:
    target = read_link(paths.current)
    if target is None:
        return None
    current = version_from_link_target(target)
    if current is None or current not in intact:
        failures.append(f"current: current -> {target!r} names no intact version")
    elif current not in registry:
        failures.append(f"unregistered: current names {current}, which the registry does not list")
    return current


def _canary(paths: ModelPaths, registry: reg.Registry, intact: set[str], current: str | None) -> list[str]:
    try:
        config = read_canary(paths.abtest)
    except ModelswapError as exc:
        return [f"canary: abtest.json is damaged: {exc.message}"]
    if config is None:
        return []
    if config.version not in intact or config.version not in registry:
        return [f"canary: abtest.json names {config.version}, not an intact published version"]
    if config.version == current:
        return [f"canary: abtest.json names {config.version}, the live version"]
    return []


def _canary_agrees_with_history(store: Store, paths: ModelPaths) -> list[str]:
    """abtest.json exists when history's last canary event started one, on its version, and only
    then (a file with no canary event in history at all predates the journal: left alone)."""
    last = next(
        (event for _, entry in store.ledger.newest_first(paths) if (event := history.canary_event(entry))), None
    )
    try:
        config = read_canary(paths.abtest)
    except ModelswapError:
        return []  # reported by _canary
    if config is None and last is not None and last[0] == "start":
        return [f"canary: history's last canary event started {last[1]} but abtest.json is gone"]
    if config is not None and last is not None and last != ("start", config.version):
        return [f"canary: abtest.json names {config.version} but history's last canary event is {last}"]
    return []


def _after_repair(store: Store, model: str, current: str | None) -> list[str]:
    failures = [f"{p.kind}: verify after repair: {p.message}" for p in verify_store(Store(store.root)).problems]
    last = store.ledger.last(store.paths(model), history.LIVE_ACTIONS)
    live = last.to_version if last is not None else None
    if live != current:
        failures.append(f"history: after repair history's last live version is {live} but current is {current}")
    return failures
