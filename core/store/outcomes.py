"""Values the store's operations return: transitions, model status, gc plans."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Transition:
    """The outcome of a deploy, rollback or promote."""

    model: str
    action: str
    previous: str | None
    current: str

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "action": self.action, "previous": self.previous, "current": self.current}


@dataclass(frozen=True)
class ModelStatus:
    model: str
    current: str | None
    canary: str | None
    previous: str | None
    versions: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "current": self.current,
            "canary": self.canary,
            "previous": self.previous,
            "versions": self.versions,
        }


@dataclass(frozen=True)
class GcPlan:
    """What gc deleted (or would, with ``dry_run``) and why each kept version stays."""

    model: str
    deleted: tuple[str, ...]
    kept: tuple[str, ...]
    dry_run: bool
    reasons: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "deleted": list(self.deleted),
            "kept": list(self.kept),
            "dry_run": self.dry_run,
            "reasons": {v: list(why) for v, why in self.reasons.items()},
        }
