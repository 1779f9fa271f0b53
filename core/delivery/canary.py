"""The canary's store verbs: start (or update), stop (or abort) and promote, each journaled.

Start, stop and promote write ``abtest.json`` (core.delivery.abtest: the config and the
variant choice) under the model's lock and record every change in history.
"""

from __future__ import annotations

import logging

from modelswap.core.delivery.abtest import CanaryConfig, Guard, check_fraction, read_canary
from modelswap.core.delivery.control import Control, Start, start_controlled, stop_controlled
from modelswap.core.errors import Conflict
from modelswap.core.store import registry as reg
from modelswap.core.store import transitions
from modelswap.core.store.clock import iso
from modelswap.core.store.fsio import atomic_write_json
from modelswap.core.store.kernel import Kernel
from modelswap.core.store.outcomes import Transition

logger = logging.getLogger(__name__)


def start_canary(
    kernel: Kernel,
    model: str,
    version: str,
    fraction: float,
    *,
    guard: Guard | None = None,
    actor: str | None = None,
    reason: str = "",
    force: bool = False,
) -> CanaryConfig:
    """Validate ``version`` like a deploy, then write ``abtest.json`` (start or update) with a
    ``canary_start`` entry (see :func:`modelswap.core.delivery.control.start_controlled`)."""
    fraction = check_fraction(fraction)

    def build(start: Start) -> Control[CanaryConfig]:
        config = CanaryConfig(version, fraction, guard, start.actor, iso(start.now))
        details = {"fraction": fraction, "guard": guard.to_dict() if guard else None}
        return Control(config, details, lambda: atomic_write_json(start.paths.abtest, config.to_dict()))

    config = start_controlled(
        kernel, model, version, kind="canary", action=reg.CANARY_START, build=build,
        actor=actor, reason=reason, force=force,
    )  # fmt: skip
    logger.info("canary %s: %s at %.3f (actor %s)", model, version, fraction, config.started_by)
    return config


def stop_canary(
    kernel: Kernel,
    model: str,
    *,
    actor: str | None = None,
    reason: str = "",
    action: str = reg.CANARY_STOP,
    only_version: str | None = None,
) -> CanaryConfig:
    """End the canary: journal ``action`` (canary_stop, or canary_abort by the guard) and
    remove ``abtest.json`` as one change, if it still runs on ``only_version`` (when given;
    see :func:`modelswap.core.delivery.control.stop_controlled`). A damaged file raises
    InvalidInput (``verify --repair`` mends it)."""
    paths = kernel.existing(model)
    config = stop_controlled(kernel, model, paths.abtest, read_canary, kind="canary", action=action,
                             actor=actor, reason=reason, only_version=only_version)  # fmt: skip
    logger.info("%s %s: %s (actor %s)", action, model, config.version, actor)
    return config


def promote_canary(
    kernel: Kernel, model: str, *, actor: str | None = None, reason: str = "", force: bool = False
) -> Transition:
    """Make the canary the live version and end the test (one history entry, ``canary_promote``)."""
    paths = kernel.existing(model)
    config = read_canary(paths.abtest)
    if config is None:
        raise Conflict(f"no canary of {model} is running")

    def choose(registry: reg.Registry, current: str | None) -> str:
        now = read_canary(paths.abtest)
        if now is None or now.version != config.version:
            raise Conflict(f"the canary of {model} changed while promoting; look again")
        return config.version

    # move_current ends the test: the new live version is the canary's
    return transitions.move_current(kernel, model, choose, reg.PROMOTE, actor, reason, force=force)
