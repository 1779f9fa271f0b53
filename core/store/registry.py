"""``versions.json``: the compact index of a model's versions, and its pure transitions.

The index holds one record per published version (id, content id, time, metrics, tags,
digest, size, status, parent) and ``history_bytes``: how much of ``history.jsonl`` its
statuses already reflect. History is the journal (core.store.history); the index is a
cache of what the journal implies, so a reader that finds the journal longer replays
the tail (:meth:`Registry.applied`) and a failed index write loses nothing. A
transition returns a new Registry; nothing is mutated. Format 1 stores kept history
inline; they are read as they are and migrate on their first write.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from modelswap.core.errors import CorruptRegistry
from modelswap.core.store.fsio import atomic_write_bytes, read_regular
from modelswap.core.store.history import (
    CANARY_ABORT,
    CANARY_START,
    CANARY_STOP,
    DELETE,
    DEPLOY,
    GC,
    LIVE_ACTIONS,
    POLICY_REJECT,
    PROMOTE,
    PUBLISH,
    REPAIR,
    REPAIR_LIVE,
    ROLLBACK,
    HistoryEntry,
)
from modelswap.core.store.ids import has_version_id_shape

REGISTRY_FORMAT = 2

AVAILABLE = "available"
ROLLED_BACK = "rolled_back"
CORRUPT = "corrupt"
REJECTED = "rejected"  # a delivery policy's stage failed on it (core.delivery.pipeline)
STATUSES = (AVAILABLE, ROLLED_BACK, CORRUPT, REJECTED)
CLEARED_BY_GOING_LIVE = (ROLLED_BACK, REJECTED)  # a person deployed it anyway: available again

__all__ = [
    "AVAILABLE",
    "CANARY_ABORT",
    "CANARY_START",
    "CANARY_STOP",
    "CORRUPT",
    "DELETE",
    "DEPLOY",
    "GC",
    "LIVE_ACTIONS",
    "PROMOTE",
    "POLICY_REJECT",
    "PUBLISH",
    "REJECTED",
    "REPAIR",
    "REPAIR_LIVE",
    "ROLLBACK",
    "ROLLED_BACK",
    "HistoryEntry",
    "Registry",
    "Version",
]


MODEL_ID_PREFIX = "m-"
MODEL_ID_HEX = 32


def model_id_of(manifest_sha256: str) -> str:
    return MODEL_ID_PREFIX + manifest_sha256[:MODEL_ID_HEX]


@dataclass(frozen=True)
class Version:
    id: str
    created_at: str
    metrics: Mapping[str, float]
    tags: Mapping[str, str]
    description: str
    manifest_sha256: str
    size: int
    status: str = AVAILABLE
    parent: str | None = None

    @property
    def model_id(self) -> str:
        """The content id (MLflow 3's model id): ``m-`` and the manifest digest's first 32 hex."""
        return model_id_of(self.manifest_sha256)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model_id": self.model_id,
            "created_at": self.created_at,
            "metrics": dict(self.metrics),
            "tags": dict(self.tags),
            "description": self.description,
            "manifest_sha256": self.manifest_sha256,
            "size": self.size,
            "status": self.status,
            "parent": self.parent,
        }

    def index_record(self) -> dict[str, Any]:
        """The record as versions.json keeps it (the content id is derived, not stored)."""
        record = self.to_dict()
        del record["model_id"]
        return record

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Version:
        return cls(
            id=str(data["id"]),
            created_at=str(data.get("created_at", "")),
            metrics=dict(data.get("metrics") or {}),
            tags=dict(data.get("tags") or {}),
            description=str(data.get("description") or ""),
            manifest_sha256=str(data.get("manifest_sha256", "")),
            size=int(data.get("size", 0)),
            status=str(data.get("status", AVAILABLE)),
            parent=data.get("parent"),
        )


@dataclass(frozen=True)
class Registry:
    """One model's index. ``records`` hold JSON records, never mutated; ``history_bytes``
    is the size of ``history.jsonl`` the statuses reflect; ``legacy`` holds the inline
    history of a format 1 file (read-only: the first write migrates it)."""

    model: str
    records: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    history_bytes: int = 0
    legacy: tuple[HistoryEntry, ...] | None = None

    # -- reads ---------------------------------------------------------------
    def __contains__(self, version: object) -> bool:
        return version in self.records

    def __len__(self) -> int:
        return len(self.records)

    def ids(self) -> list[str]:
        """Version ids, oldest first: by publishing time to the millisecond, then id
        (ids alone only resolve seconds)."""
        return sorted(self.records, key=lambda v: (str(self.records[v].get("created_at", "")), v))

    def get(self, version: str) -> Version | None:
        raw = self.records.get(version)
        return Version.from_dict(raw) if raw is not None else None

    def versions(self) -> list[Version]:
        return [Version.from_dict(self.records[v]) for v in self.ids()]

    def status_of(self, version: str) -> str | None:
        raw = self.records.get(version)
        return str(raw.get("status", AVAILABLE)) if raw is not None else None

    # -- transitions ---------------------------------------------------------
    def _with(self, records: Mapping[str, Mapping[str, Any]]) -> Registry:
        return Registry(self.model, records, self.history_bytes, self.legacy)

    def with_version(self, record: Version) -> Registry:
        records = dict(self.records)
        records[record.id] = record.index_record()
        return self._with(records)

    def with_status(self, version: str, status: str) -> Registry:
        raw = self.records.get(version)
        if raw is None or raw.get("status", AVAILABLE) == status:
            return self
        records = dict(self.records)
        records[version] = {**raw, "status": status}
        return self._with(records)

    def without(self, versions: Iterable[str]) -> Registry:
        drop = set(versions)
        if not drop & set(self.records):
            return self
        return self._with({k: v for k, v in self.records.items() if k not in drop})

    def applied(self, entry: HistoryEntry) -> Registry:
        """The index after ``entry``: a publish adds its record, a live move clears the
        target's rolled_back or rejected mark, a rollback marks the version it left, a
        policy's rejection marks its candidate rejected, gc and delete drop
        versions, a repair marks the corrupt and drops the missing ones it lists."""
        updated = self
        if entry.action == PUBLISH and isinstance(entry.details.get("record"), dict):
            updated = updated.with_version(Version.from_dict(entry.details["record"]))
        to = entry.to_version
        if entry.action in LIVE_ACTIONS and to and self.status_of(to) in CLEARED_BY_GOING_LIVE:
            updated = updated.with_status(to, AVAILABLE)
        if entry.action == ROLLBACK and entry.from_version:
            updated = updated.with_status(entry.from_version, ROLLED_BACK)
        if entry.action == POLICY_REJECT and entry.to_version:
            updated = updated.with_status(entry.to_version, REJECTED)
        if entry.action in (GC, DELETE):
            updated = updated.without(entry.details.get("versions") or [])
        if entry.action == REPAIR:
            for version in entry.details.get("corrupt") or []:
                updated = updated.with_status(version, CORRUPT)
            updated = updated.without(entry.details.get("missing") or [])
        return updated

    def at(self, history_bytes: int) -> Registry:
        return Registry(self.model, self.records, history_bytes, None)

    # -- JSON edge -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REGISTRY_FORMAT,
            "model": self.model,
            "history_bytes": self.history_bytes,
            "versions": [self.records[v] for v in self.ids()],
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str) -> Registry:
        if not isinstance(data, dict):
            raise CorruptRegistry(f"{source} is not a JSON object; run `modelswap verify --repair`")
        versions = data.get("versions")
        if not isinstance(versions, list):
            raise CorruptRegistry(f"{source} lacks a 'versions' list; run `modelswap verify --repair`")
        records: dict[str, Mapping[str, Any]] = {}
        for raw in versions:
            if not isinstance(raw, dict) or not has_version_id_shape(raw.get("id")):
                raise CorruptRegistry(f"{source} holds a malformed version record: {str(raw)[:80]}")
            records[raw["id"]] = raw
        legacy = None
        if data.get("format", 1) == 1:  # history kept inline, before history.jsonl
            history = data.get("history", [])
            if not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
                raise CorruptRegistry(f"{source} holds a malformed history list")
            legacy = tuple(HistoryEntry.from_dict(e) for e in history)
        marker = data.get("history_bytes", 0)
        if isinstance(marker, bool) or not isinstance(marker, int) or marker < 0:
            raise CorruptRegistry(f"{source} has a bad history_bytes marker")
        return cls(str(data.get("model", "")), records, marker, legacy)


def read_registry(path: Path, model: str) -> Registry:
    """Read ``versions.json``; an absent file is an empty registry."""
    try:
        raw = read_regular(path)
    except FileNotFoundError:
        return Registry(model)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CorruptRegistry(
            f"{path} is not valid JSON ({exc}); "
            "run `modelswap verify --repair` to rebuild it from the version directories"
        ) from exc
    registry = Registry.from_dict(data, source=str(path))
    return Registry(model, registry.records, registry.history_bytes, registry.legacy)


_MARKER = re.compile(rb'"history_bytes":\s*(\d+)')


def read_marker(path: Path) -> int:
    """The ``history_bytes`` an index file holds, read from its first bytes (the keys are
    written sorted, so it comes before the versions); 0 when absent."""
    with open(path, "rb") as handle:
        match = _MARKER.search(handle.read(256))
    return int(match.group(1)) if match else 0


def write_registry(path: Path, registry: Registry) -> None:
    """Replace ``versions.json`` atomically (one record a line: at 10,000 versions the
    indented form costs a third more to write and parse). Caller holds the store lock."""
    data = registry.to_dict()
    versions = data.pop("versions")
    head = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)[:-1]
    body = b",\n".join(orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in versions)
    atomic_write_bytes(path, head + b', "versions": [\n' + body + b"\n]}\n")


def rollback_target(
    registry: Registry, current: str | None, live: Iterable[str], exists: Callable[[str], bool] | None = None
) -> str | None:
    """Where a rollback with no target goes, or None when there is nowhere to go.

    The most recent version made live (``live``: newest first) before ``current`` that is
    still published (and on disk, when ``exists`` is given) and not marked rolled_back
    or corrupt.
    """
    for version in live:
        if version == current:
            continue
        if registry.status_of(version) != AVAILABLE:
            continue
        if exists is not None and not exists(version):
            continue
        return version
    return None


LOWER_IS_BETTER_SUFFIXES = ("loss", "error", "mse", "mae", "rmse")


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of ``metric`` is better, judged by its name."""
    return metric.lower().endswith(LOWER_IS_BETTER_SUFFIXES)


def best_version(versions: Iterable[Version], metric: str, *, lower_is_better: bool = False) -> Version | None:
    """The version with the best value of ``metric``; ``versions`` oldest first, and ties
    go to the newest. Corrupt versions and those without the metric never win."""
    best: Version | None = None
    for record in versions:
        value = record.metrics.get(metric)
        if not isinstance(value, (int, float)) or record.status == CORRUPT:
            continue
        if best is None:
            best = record
            continue
        current = best.metrics[metric]
        if (value < current) if lower_is_better else (value > current):
            best = record
        elif value == current:
            best = record
    return best
