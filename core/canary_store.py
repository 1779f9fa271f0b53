"""The canary's write side: start/update, stop (or abort), promote; all under ``.lock``.

``abtest.json`` is written atomically and removed when the canary ends; every
change is recorded in the model's history.
"""

from __future__ import annotations

import logging
import os

from modelswap.core import registry as reg
from modelswap.core.canary import CanaryConfig, Guard, check_fraction, read_canary
from modelswap.core.clock import default_actor, iso
from modelswap.core.errors import Conflict, ValidationFailed, VersionNotFound
from modelswap.core.fsio import atomic_write_json, fsync_dir
from modelswap.core.ids import validate_version_id
from modelswap.core.layout import ModelPaths
from modelswap.core.outcomes import Transition
from modelswap.core.store import Store

logger = logging.getLogger(__name__)


def start_canary(
    store: Store,
    model: str,
    version: str,
    fraction: float,
    *,
    guard: Guard | None = None,
    actor: str | None = None,
    reason: str = "",
) -> CanaryConfig:
    """Validate ``version`` like a deploy, then write ``abtest.json`` (start or update).

    1. validate outside the lock (loading can be slow);
    2. under the lock: the version is published and not the live one;
    3. write abtest.json atomically, then record ``canary_start`` in history.
    """
    validate_version_id(version)
    fraction = check_fraction(fraction)
    paths = store.existing(model)
    if version not in store.registry(model):
        raise VersionNotFound(f"model {model} has no version {version}")
    store.validator(paths, version)  # 1
    who = actor or default_actor()
    with store.locked(model):
        registry = store.load_registry(paths)  # 2
        if version not in registry:
            raise VersionNotFound(f"model {model} has no version {version}")
        if registry.status_of(version) == reg.CORRUPT:
            raise ValidationFailed(f"{model} {version} is marked corrupt by `verify`")
        if store.current(model) == version:
            raise Conflict(f"{model} {version} is already live; a canary must be another version")
        config = CanaryConfig(version, fraction, guard, who, iso(store.clock()))
        atomic_write_json(paths.abtest, config.to_dict())  # 3
        entry = reg.HistoryEntry(
            config.started_at, reg.CANARY_START, who, store.current(model), version, reason,
            {"fraction": fraction, "guard": guard.to_dict() if guard else None},
        )  # fmt: skip
        store.save_registry(paths, registry.with_event(entry))
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
    """Remove ``abtest.json`` and record ``action`` (canary_stop, or canary_abort by the guard).

    ``only_version``: stop only if that version is still the canary (the guard of a
    process must not stop a newer canary that replaced the one it judged).
    """
    paths = store.existing(model)
    with store.locked(model):
        config = read_canary(paths.abtest)
        if config is None or (only_version is not None and config.version != only_version):
            raise Conflict(f"no canary of {model}{' on ' + only_version if only_version else ''} is running")
        _remove_abtest(paths)
        entry = reg.HistoryEntry(
            iso(store.clock()), action, actor or default_actor(), config.version, store.current(model), reason
        )
        store.save_registry(paths, store.load_registry(paths).with_event(entry))
    logger.info("%s %s: %s (actor %s)", action, model, config.version, actor)
    return config


def promote_canary(store: Store, model: str, *, actor: str | None = None, reason: str = "") -> Transition:
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

    def end_test(registry: reg.Registry, locked_paths: ModelPaths) -> reg.Registry:
        _remove_abtest(locked_paths)
        return registry

    return store.move_current(model, choose, reg.PROMOTE, actor, reason, extra=end_test)


def _remove_abtest(paths: ModelPaths) -> None:
    os.unlink(paths.abtest)
    fsync_dir(paths.dir)
