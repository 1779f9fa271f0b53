"""The shadow: a candidate version that predicts on a copy of live traffic, off the
response path, so its answers can be compared with the live version's.

``shadow.json`` holds one ShadowConfig; it is absent when no shadow runs. Every serving
process follows it (core.serving.slots) and hands a ``fraction`` of its stable requests to its
shadow runner (core.delivery.shadow_runner). Start and stop write the file under the model's lock and
record the change in history (``shadow_start`` / ``shadow_stop``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modelswap.core.delivery.abtest import check_fraction, started_fields
from modelswap.core.delivery.control import Control, Start, start_controlled, stop_controlled
from modelswap.core.store import history
from modelswap.core.store.clock import iso
from modelswap.core.store.fsio import atomic_write_json, read_control
from modelswap.core.store.kernel import Kernel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowConfig:
    version: str
    fraction: float
    started_by: str
    started_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> ShadowConfig:
        return cls(**started_fields(data, "shadow"))


def read_shadow(path: Path) -> ShadowConfig | None:
    """``shadow.json``, or None when absent. A damaged file raises InvalidInput naming it."""
    return read_control(path, ShadowConfig.from_dict, "stop the shadow to remove it")


def start_shadow(
    kernel: Kernel,
    model: str,
    version: str,
    fraction: float = 1.0,
    *,
    actor: str | None = None,
    reason: str = "",
    force: bool = False,
) -> ShadowConfig:
    """Shadow ``version`` on ``fraction`` of the live version's requests (start or update):
    validated like a deploy, then ``shadow.json`` written with a ``shadow_start`` entry
    (see :func:`modelswap.core.delivery.control.start_controlled`)."""
    fraction = check_fraction(fraction)

    def build(start: Start) -> Control[ShadowConfig]:
        config = ShadowConfig(version, fraction, start.actor, iso(start.now))
        return Control(config, {"fraction": fraction}, lambda: atomic_write_json(start.paths.shadow, config.to_dict()))

    config = start_controlled(
        kernel, model, version, kind="shadow", action=history.SHADOW_START, build=build,
        actor=actor, reason=reason, force=force, needs_live=True,
    )  # fmt: skip
    logger.info("shadow %s: %s on %.3f of requests (actor %s)", model, version, fraction, config.started_by)
    return config


def stop_shadow(
    kernel: Kernel, model: str, *, actor: str | None = None, reason: str = "", only_version: str | None = None
) -> ShadowConfig:
    """End the shadow: journal ``shadow_stop`` and remove ``shadow.json`` as one change (see
    :func:`modelswap.core.delivery.control.stop_controlled`); a damaged file is removed."""
    paths = kernel.existing(model)
    config = stop_controlled(kernel, model, paths.shadow, read_shadow, kind="shadow", action=history.SHADOW_STOP,
                             actor=actor, reason=reason, only_version=only_version, clear_damaged=True)  # fmt: skip
    logger.info("shadow %s: %s stopped (actor %s)", model, config.version, actor)
    return config
