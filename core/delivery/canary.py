"""The canary (A/B test): its config, the stable variant choice, the guard, and its store verbs.

``abtest.json`` holds one CanaryConfig; it is absent when no canary runs. The
variant a routing key gets depends only on (canary version, key) and the
fraction, so every process and pod agrees, and raising the fraction only moves
keys from stable to canary, never back. Start, stop (or abort) and promote write
``abtest.json`` under the model's lock and record every change in history.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from modelswap.core.errors import Conflict, InvalidInput, UnsafePath
from modelswap.core.store import registry as reg
from modelswap.core.store.clock import default_actor, iso
from modelswap.core.store.fsio import atomic_write_json, fsync_dir, read_regular
from modelswap.core.store.ids import validate_version_id
from modelswap.core.store.layout import ModelPaths
from modelswap.core.store.outcomes import Transition
from modelswap.core.store.transitions import schema_change

if TYPE_CHECKING:
    from modelswap.core.store.store import Store

logger = logging.getLogger(__name__)

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
        return {
            "version": self.version,
            "fraction": self.fraction,
            "guard": self.guard.to_dict() if self.guard else None,
            "started_by": self.started_by,
            "started_at": self.started_at,
        }

    @classmethod
    def from_dict(cls, data: Any) -> CanaryConfig:
        if not isinstance(data, Mapping):
            raise InvalidInput("a canary config is a JSON object")
        guard = data.get("guard")
        return cls(
            version=validate_version_id(data.get("version")),
            fraction=check_fraction(data.get("fraction")),
            guard=Guard.from_dict(guard) if guard is not None else None,
            started_by=str(data.get("started_by", "")),
            started_at=str(data.get("started_at", "")),
        )


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
    try:
        raw = read_regular(path)
    except FileNotFoundError:
        return None
    except UnsafePath as exc:
        raise InvalidInput(f"{exc.message}; stop the canary or run `modelswap verify --repair`") from exc
    try:
        return CanaryConfig.from_dict(orjson.loads(raw))
    except (orjson.JSONDecodeError, InvalidInput) as exc:
        raise InvalidInput(f"{path} is damaged ({exc}); stop the canary or run `modelswap verify --repair`") from exc


def start_canary(
    store: Store,
    model: str,
    version: str,
    fraction: float,
    *,
    guard: Guard | None = None,
    actor: str | None = None,
    reason: str = "",
    force: bool = False,
) -> CanaryConfig:
    """Validate ``version`` like a deploy, then write ``abtest.json`` (start or update).

    1. compare its inputs with the live version's (IncompatibleSchema unless ``force``:
       a canary serves the live version's clients); validate outside the lock;
    2. under the lock: the version is published and not the live one;
    3. journal ``canary_start``, then write abtest.json atomically (if that fails, the
       entry is taken back: nothing changed).
    """
    validate_version_id(version)
    fraction = check_fraction(fraction)
    paths = store.existing(model)
    store.require_published(store.load_registry(paths), paths, version)
    change = schema_change(store, model, store.current(model), version, force=force, what=f"a canary of {version}")
    store.validator(paths, version)  # 1
    who = actor or default_actor()
    with store.locked(model):
        registry = store.load_registry(paths)
        store.require_published(registry, paths, version)  # 2
        if store.current(model) == version:
            raise Conflict(f"{model} {version} is already live; a canary must be another version")
        config = CanaryConfig(version, fraction, guard, who, iso(store.clock()))
        entry = reg.HistoryEntry(
            config.started_at, reg.CANARY_START, who, store.current(model), version, reason,
            {"fraction": fraction, "guard": guard.to_dict() if guard else None, **change},
        )  # fmt: skip
        store.commit(paths, registry, entry, lambda: atomic_write_json(paths.abtest, config.to_dict()))  # 3
    logger.info("canary %s: %s at %.3f (actor %s)", model, version, fraction, who)
    return config


def stop_canary(
    store: Store,
    model: str,
    *,
    actor: str | None = None,
    reason: str = "",
    action: str = reg.CANARY_STOP,
    only_version: str | None = None,
) -> CanaryConfig:
    """End the canary: journal ``action`` (canary_stop, or canary_abort by the guard), then
    remove ``abtest.json``.

    1. under the lock, check the canary still runs (and is ``only_version``, if given:
       a process's guard must not stop a newer canary that replaced the one it judged);
    2. journal the entry and remove the file as one change (a removal that fails takes
       the entry back), so a process that sees the canary gone finds the reason in
       history. A crash between the two leaves history ahead of the file;
       ``verify --repair`` completes the stop.
    """
    paths = store.existing(model)
    with store.locked(model):
        config = read_canary(paths.abtest)  # 1
        if config is None or (only_version is not None and config.version != only_version):
            raise Conflict(f"no canary of {model}{' on ' + only_version if only_version else ''} is running")
        entry = reg.HistoryEntry(
            iso(store.clock()), action, actor or default_actor(), config.version, store.current(model), reason
        )
        store.commit(paths, store.load_registry(paths), entry, lambda: _remove_abtest(paths))  # 2
    logger.info("%s %s: %s (actor %s)", action, model, config.version, actor)
    return config


def promote_canary(
    store: Store, model: str, *, actor: str | None = None, reason: str = "", force: bool = False
) -> Transition:
    """Make the canary the live version and end the test (one history entry, ``canary_promote``)."""
    paths = store.existing(model)
    config = read_canary(paths.abtest)
    if config is None:
        raise Conflict(f"no canary of {model} is running")

    def choose(registry: reg.Registry, current: str | None) -> str:
        now = read_canary(paths.abtest)
        if now is None or now.version != config.version:
            raise Conflict(f"the canary of {model} changed while promoting; look again")
        return config.version

    # move_current ends the test: the new live version is the canary's
    return store.move_current(model, choose, reg.PROMOTE, actor, reason, force=force)


def _remove_abtest(paths: ModelPaths) -> None:
    os.unlink(paths.abtest)
    fsync_dir(paths.dir)
