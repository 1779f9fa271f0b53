"""The canary's config (``abtest.json``): its version and fraction, the guard, and the stable variant choice.

``abtest.json`` holds one CanaryConfig; it is absent when no canary runs. The
variant a routing key gets depends only on (canary version, key) and the
fraction, so every process and pod agrees, and raising the fraction only moves
keys from stable to canary, never back. The verbs that write the file are in
core.delivery.canary; this module reads it, for the store's kernel and the serving slots.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modelswap.core.errors import InvalidInput
from modelswap.core.store.fsio import read_control
from modelswap.core.store.ids import validate_version_id

_SCALE = float(1 << 64)


@dataclass(frozen=True)
class Guard:
    """Stop the canary when its error rate over at least ``min_requests`` exceeds ``max_error_rate``."""

    max_error_rate: float
    min_requests: int = 100

    def tripped(self, requests: int, errors: int) -> bool:
        return requests >= self.min_requests and errors / requests > self.max_error_rate

    def to_dict(self) -> dict[str, Any]:
        return {"max_error_rate": self.max_error_rate, "min_requests": self.min_requests}

    @classmethod
    def from_dict(cls, data: Any) -> Guard:
        if not isinstance(data, Mapping):
            raise InvalidInput('guard must be an object like {"max_error_rate": 0.05, "min_requests": 200}')
        unknown = set(data) - {"max_error_rate", "min_requests"}
        if unknown:
            raise InvalidInput(f"unknown guard field(s): {', '.join(sorted(unknown))}")
        rate, minimum = data.get("max_error_rate"), data.get("min_requests", 100)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise InvalidInput("guard.max_error_rate must be a number in [0, 1)")
        if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
            raise InvalidInput("guard.min_requests must be a whole number of at least 1")
        return cls(float(rate), minimum)


@dataclass(frozen=True)
class CanaryConfig:
    version: str
    fraction: float
    guard: Guard | None
    started_by: str
    started_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # the guard as Guard.to_dict has it

    @classmethod
    def from_dict(cls, data: Any) -> CanaryConfig:
        fields = started_fields(data, "canary")
        guard = data.get("guard")
        return cls(**fields, guard=Guard.from_dict(guard) if guard is not None else None)


def started_fields(data: Any, kind: str) -> dict[str, Any]:
    """The fields a control file of a version on a fraction of requests (``abtest.json``,
    ``shadow.json``) holds, checked: version, fraction, started_by, started_at."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"a {kind} config is a JSON object")
    return {
        "version": validate_version_id(data.get("version")),
        "fraction": check_fraction(data.get("fraction")),
        "started_by": str(data.get("started_by", "")),
        "started_at": str(data.get("started_at", "")),
    }


def check_fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput("fraction must be a number between 0 and 1")
    if not 0 < value <= 1:
        raise InvalidInput(f"fraction must be in (0, 1], got {value}")
    return float(value)


def key_bucket(version: str, key: str) -> float:
    """Where a routing key falls in [0, 1) for this canary version (stable across processes)."""
    digest = hashlib.blake2b(f"{version}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def is_canary(config: CanaryConfig, key: str | None, draw: float) -> bool:
    """The variant choice: by the key's bucket when there is a key, else by ``draw`` in [0, 1)."""
    point = key_bucket(config.version, key) if key is not None else draw
    return point < config.fraction


def read_canary(path: Path) -> CanaryConfig | None:
    """``abtest.json``, or None when absent. A damaged file raises InvalidInput naming it."""
    return read_control(path, CanaryConfig.from_dict, "stop the canary or run `modelswap verify --repair`")
