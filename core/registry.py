"""``versions.json``: version records, deploy history, and the pure transitions on them.

The registry keeps the JSON records it read and hands out frozen values on
access, so an operation on a store with 10,000 versions converts only the
records it touches. A transition returns a new Registry; nothing is mutated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from modelswap.core.errors import CorruptRegistry
from modelswap.core.fsio import atomic_write_json
from modelswap.core.ids import is_version_id

REGISTRY_FORMAT = 1

AVAILABLE = "available"
ROLLED_BACK = "rolled_back"
CORRUPT = "corrupt"
STATUSES = (AVAILABLE, ROLLED_BACK, CORRUPT)

# History actions. Those in LIVE_ACTIONS moved `current` to their `to` version.
DEPLOY = "deploy"
ROLLBACK = "rollback"
PROMOTE = "canary_promote"
REPAIR_LIVE = "repair_current"
CANARY_START = "canary_start"
CANARY_STOP = "canary_stop"
CANARY_ABORT = "canary_abort"
PUBLISH = "publish"
DELETE = "delete"
GC = "gc"
REPAIR = "repair"
LIVE_ACTIONS = frozenset({DEPLOY, ROLLBACK, PROMOTE, REPAIR_LIVE})


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
class HistoryEntry:
    time: str
    action: str
    actor: str
    from_version: str | None
    to_version: str | None
    reason: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "time": self.time,
            "action": self.action,
            "actor": self.actor,
            "from": self.from_version,
            "to": self.to_version,
            "reason": self.reason,
        }
        if self.details:
            data["details"] = dict(self.details)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HistoryEntry:
        return cls(
            time=str(data.get("time", "")),
            action=str(data.get("action", "")),
            actor=str(data.get("actor", "")),
            from_version=data.get("from"),
            to_version=data.get("to"),
            reason=str(data.get("reason") or ""),
            details=dict(data.get("details") or {}),
        )


@dataclass(frozen=True)
class Registry:
    """One model's registry. ``records`` and ``events`` hold JSON records, never mutated."""

    model: str
    records: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    events: tuple[Mapping[str, Any], ...] = ()

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

    def history(self) -> list[HistoryEntry]:
        """Deploy history, oldest first."""
        return [HistoryEntry.from_dict(e) for e in self.events]

    def status_of(self, version: str) -> str | None:
        raw = self.records.get(version)
        return str(raw.get("status", AVAILABLE)) if raw is not None else None

    def live_sequence(self) -> Iterator[str]:
        """Versions that were made live, newest first (one per live-moving event)."""
        for event in reversed(self.events):
            if event.get("action") in LIVE_ACTIONS and event.get("to"):
                yield str(event["to"])

    def last_live(self) -> str | None:
        return next(self.live_sequence(), None)

    # -- transitions ---------------------------------------------------------
    def with_version(self, record: Version) -> Registry:
        records = dict(self.records)
        records[record.id] = record.to_dict()
        return Registry(self.model, records, self.events)

    def with_status(self, version: str, status: str) -> Registry:
        raw = self.records.get(version)
        if raw is None or raw.get("status") == status:
            return self
        records = dict(self.records)
        records[version] = {**raw, "status": status}
        return Registry(self.model, records, self.events)

    def without(self, versions: Iterable[str]) -> Registry:
        drop = set(versions)
        records = {k: v for k, v in self.records.items() if k not in drop}
        return Registry(self.model, records, self.events)

    def with_event(self, entry: HistoryEntry) -> Registry:
        return Registry(self.model, self.records, (*self.events, entry.to_dict()))

    # -- JSON edge -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REGISTRY_FORMAT,
            "model": self.model,
            "versions": [self.records[v] for v in self.ids()],
            "history": list(self.events),
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str) -> Registry:
        if not isinstance(data, dict):
            raise CorruptRegistry(f"{source} is not a JSON object; run `modelswap verify --repair`")
        versions = data.get("versions")
        history = data.get("history", [])
        if not isinstance(versions, list) or not isinstance(history, list):
            raise CorruptRegistry(f"{source} lacks a 'versions' or 'history' list; run `modelswap verify --repair`")
        records: dict[str, Mapping[str, Any]] = {}
        for raw in versions:
            if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not is_version_id(raw["id"]):
                raise CorruptRegistry(f"{source} holds a malformed version record: {str(raw)[:80]}")
            records[raw["id"]] = raw
        if not all(isinstance(e, dict) for e in history):
            raise CorruptRegistry(f"{source} holds a malformed history entry")
        return cls(str(data.get("model", "")), records, tuple(history))


def read_registry(path: Path, model: str) -> Registry:
    """Read ``versions.json``; an absent file is an empty registry."""
    try:
        raw = path.read_bytes()
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
    return Registry(model, registry.records, registry.events)


def write_registry(path: Path, registry: Registry) -> None:
    """Replace ``versions.json`` atomically. Caller holds the store lock."""
    atomic_write_json(path, registry.to_dict())


def rollback_target(registry: Registry, current: str | None, exists: Callable[[str], bool] | None = None) -> str | None:
    """Where a rollback with no target goes, or None when there is nowhere to go.

    The most recent version that was live before ``current``, is still published
    (and on disk, when ``exists`` is given) and is not marked rolled_back or corrupt.
    """
    for version in registry.live_sequence():
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
