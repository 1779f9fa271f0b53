"""The shadow: a candidate version that predicts on a copy of live traffic, off the
response path, so its answers can be compared with the live version's.

``shadow.json`` holds one ShadowConfig; it is absent when no shadow runs. Every serving
process follows it (core.serving.slots) and hands a ``fraction`` of its stable requests to its
shadow runner (core.delivery.shadow_runner). Start and stop write the file under the model's lock and
record the change in history (``shadow_start`` / ``shadow_stop``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from modelswap.core.delivery.canary import check_fraction
from modelswap.core.errors import Conflict, InvalidInput, UnsafePath
from modelswap.core.store import history
from modelswap.core.store.clock import default_actor, iso
from modelswap.core.store.fsio import atomic_write_json, fsync_dir, read_regular
from modelswap.core.store.ids import validate_version_id
from modelswap.core.store.layout import ModelPaths
from modelswap.core.store.transitions import schema_change

if TYPE_CHECKING:
    from pathlib import Path

    from modelswap.core.store.store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowConfig:
    version: str
    fraction: float
    started_by: str
    started_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "fraction": self.fraction,
            "started_by": self.started_by,
            "started_at": self.started_at,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ShadowConfig:
        if not isinstance(data, Mapping):
            raise InvalidInput("a shadow config is a JSON object")
        return cls(
            version=validate_version_id(data.get("version")),
            fraction=check_fraction(data.get("fraction")),
            started_by=str(data.get("started_by", "")),
            started_at=str(data.get("started_at", "")),
        )


def read_shadow(path: Path) -> ShadowConfig | None:
    """``shadow.json``, or None when absent. A damaged file raises InvalidInput naming it."""
    try:
        raw = read_regular(path)
    except FileNotFoundError:
        return None
    except UnsafePath as exc:
        raise InvalidInput(f"{exc.message}; stop the shadow to remove it") from exc
    try:
        return ShadowConfig.from_dict(orjson.loads(raw))
    except (orjson.JSONDecodeError, InvalidInput) as exc:
        raise InvalidInput(f"{path} is damaged ({exc}); stop the shadow to remove it") from exc


def start_shadow(
    store: Store,
    model: str,
    version: str,
    fraction: float = 1.0,
    *,
    actor: str | None = None,
    reason: str = "",
    force: bool = False,
) -> ShadowConfig:
    """Shadow ``version`` on ``fraction`` of the live version's requests (start or update).

    The version is validated like a deploy (it must take the live version's inputs:
    IncompatibleSchema unless ``force``), outside the lock; under the lock it must be
    published and not live; the entry is journaled and the file written as one change.
    """
    validate_version_id(version)
    fraction = check_fraction(fraction)
    paths = store.existing(model)
    store.require_published(store.load_registry(paths), paths, version)
    live = store.current(model)
    if live is None:
        raise Conflict(f"{model} has no live version to shadow: deploy one first")
    change = schema_change(store, model, live, version, force=force, what=f"a shadow of {version}")
    store.validator(paths, version)
    who = actor or default_actor()
    with store.locked(model):
        registry = store.load_registry(paths)
        store.require_published(registry, paths, version)
        if store.current(model) == version:
            raise Conflict(f"{model} {version} is live; a shadow must be another version")
        config = ShadowConfig(version, fraction, who, iso(store.clock()))
        entry = history.HistoryEntry(
            config.started_at, history.SHADOW_START, who, store.current(model), version, reason,
            {"fraction": fraction, **change},
        )  # fmt: skip
        store.commit(paths, registry, entry, lambda: atomic_write_json(paths.shadow, config.to_dict()))
    logger.info("shadow %s: %s on %.3f of requests (actor %s)", model, version, fraction, who)
    return config


def stop_shadow(
    store: Store, model: str, *, actor: str | None = None, reason: str = "", only_version: str | None = None
) -> ShadowConfig:
    """End the shadow: journal ``shadow_stop`` and remove ``shadow.json`` as one change."""
    paths = store.existing(model)
    with store.locked(model):
        try:
            config = read_shadow(paths.shadow)
        except InvalidInput:
            config = None
            if paths.shadow.exists():  # a damaged file: stopping removes it
                _remove(paths)
                raise Conflict(f"the shadow file of {model} was damaged; removed it") from None
        if config is None or (only_version is not None and config.version != only_version):
            raise Conflict(f"no shadow of {model}{' on ' + only_version if only_version else ''} is running")
        entry = history.HistoryEntry(
            iso(store.clock()), history.SHADOW_STOP, actor or default_actor(), config.version,
            store.current(model), reason,
        )  # fmt: skip
        store.commit(paths, store.load_registry(paths), entry, lambda: _remove(paths))
    logger.info("shadow %s: %s stopped (actor %s)", model, config.version, actor)
    return config


def _remove(paths: ModelPaths) -> None:
    os.unlink(paths.shadow)
    fsync_dir(paths.dir)
