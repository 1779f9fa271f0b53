"""Everything one serving process holds, built by ``create_app`` and started by its lifespan."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from modelswap.core import registry as reg
from modelswap.core.batching import BatchPool
from modelswap.core.canary import CanaryConfig, Guard, read_canary
from modelswap.core.canary_store import promote_canary, start_canary, stop_canary
from modelswap.core.errors import Conflict, ModelswapError
from modelswap.core.fleet import read_fleet, remove_heartbeat, write_heartbeat
from modelswap.core.jobs import Jobs
from modelswap.core.metrics import Metrics
from modelswap.core.outcomes import Transition
from modelswap.core.serving import CANARY, ModelSlot, Serving
from modelswap.core.settings import Settings
from modelswap.core.store import Store
from modelswap.core.watcher import Ticker, Watcher

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class AppState:
    settings: Settings
    store: Store
    serving: Serving
    metrics: Metrics
    token: str | None
    jobs: Jobs
    started_at: float = field(default_factory=time.time)
    batching: BatchPool = field(default_factory=lambda: BatchPool(max_rows=256, wait_s=0.0))
    watcher: Watcher | None = None
    heartbeat: Ticker | None = None

    # -- lifecycle (called from the lifespan) ---------------------------------------
    def load_all(self) -> None:
        """Load every served model's current version (and canary) now, in this thread."""
        for slot in self.serving.slots.values():
            slot.sync()

    def start(self) -> None:
        for slot in self.serving.slots.values():
            slot.on_guard_trip = self._guard_tripped
        self.watcher = Watcher(
            self.serving.slots.values(),
            {name: slot.paths.dir for name, slot in self.serving.slots.items()},
            mode=self.settings.watch,
            interval=self.settings.poll_interval,
            on_change=self.beat_now,
        )
        self.watcher.start()
        self.heartbeat = Ticker(self.beat, self.settings.poll_interval, "heartbeat")
        self.heartbeat.start()

    def stop(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self.watcher is not None:
            self.watcher.stop()
        for slot in self.serving.slots.values():
            try:
                remove_heartbeat(slot.paths)
            except OSError as exc:
                logger.warning("could not remove the heartbeat of %s: %s", slot.name, exc)

    def beat_now(self) -> None:
        """Heartbeat at once after a swap, so the fleet view converges without waiting a tick."""
        try:
            self.beat()
        except OSError as exc:
            logger.warning("heartbeat failed: %s", exc)

    def beat(self) -> None:
        for slot in self.serving.slots.values():
            if slot.paths.dir.is_dir():
                info = slot.info()
                write_heartbeat(
                    slot.paths,
                    {
                        "version": info["serving"],
                        "canary": info["canary"],
                        "last_load_error": info["last_load_error"]["message"] if info["last_load_error"] else None,
                        "loaded_versions": info["loaded_versions"],
                        "last_swap_lag_seconds": info["last_swap_lag_seconds"],
                        "started_at": self.started_at,
                    },
                )

    # -- admin operations (run in a worker thread, never on the event loop) ------
    def deploy(self, model: str, version: str, *, actor: str, reason: str) -> Transition:
        return self._admin(model, "deploy", lambda: self.store.deploy(model, version, actor=actor, reason=reason))

    def rollback(self, model: str, to: str | None, *, actor: str, reason: str) -> Transition:
        return self._admin(model, "rollback", lambda: self.store.rollback(model, to, actor=actor, reason=reason))

    def _admin(self, model: str, action: str, operation: Callable[[], T]) -> T:
        """Run a store change, then sync this process before returning (SPEC §3)."""
        try:
            transition = operation()
        except ModelswapError:
            self.metrics.admin_actions.labels(model, action, "failure").inc()
            raise
        slot = self.serving.slots.get(model)
        if slot is not None and slot.sync():
            self.beat_now()
        self.metrics.admin_actions.labels(model, action, "success").inc()
        return transition

    def reload(self, model: str) -> dict[str, Any]:
        slot = self.serving.slot(model)
        slot.sync(force=True)
        self.metrics.admin_actions.labels(model, "reload", "success").inc()
        return {"model": model, **slot.info()}

    def _guard_tripped(self, slot: ModelSlot, config: CanaryConfig) -> None:
        """Called on the event loop when the guard trips: abort the canary off the loop."""
        stats = slot.canary_stats.of(CANARY)
        reason = (
            f"guard: canary error rate {stats[1]}/{stats[0]} = {stats[1] / stats[0]:.3f} "
            f"> {config.guard.max_error_rate if config.guard else '?'}"
        )
        logger.warning("model %s: %s; stopping canary %s", slot.name, reason, config.version)
        threading.Thread(target=self._abort_canary, args=(slot, config.version, reason), daemon=True).start()

    def _abort_canary(self, slot: ModelSlot, version: str, reason: str) -> None:
        try:
            stop_canary(
                self.store, slot.name, actor="guard", reason=reason, action=reg.CANARY_ABORT, only_version=version
            )
            outcome = "success"
        except Conflict:
            outcome = "noop"  # another process's guard, or a person, ended it first
        except ModelswapError as exc:
            logger.error("model %s: guard could not stop canary %s: %s", slot.name, version, exc.message)
            outcome = "failure"
        self.metrics.admin_actions.labels(slot.name, "canary_abort", outcome).inc()
        if slot.sync():
            self.beat_now()

    # -- canary (worker thread) ---------------------------------------------------------
    def start_canary(
        self, model: str, version: str, fraction: float, guard: Guard | None, *, actor: str, reason: str
    ) -> dict[str, Any]:
        config = self._admin(
            model,
            "canary_start",
            lambda: start_canary(self.store, model, version, fraction, guard=guard, actor=actor, reason=reason),
        )
        return config.to_dict()

    def stop_canary(self, model: str, *, actor: str, reason: str) -> dict[str, Any]:
        config = self._admin(model, "canary_stop", lambda: stop_canary(self.store, model, actor=actor, reason=reason))
        return {"model": model, "stopped": config.version}

    def promote_canary(self, model: str, *, actor: str, reason: str) -> Transition:
        return self._admin(
            model, "canary_promote", lambda: promote_canary(self.store, model, actor=actor, reason=reason)
        )

    def canary(self, model: str) -> dict[str, Any]:
        paths = self.store.existing(model)
        config = read_canary(paths.abtest)
        slot = self.serving.slots.get(model)
        return {
            "model": model,
            "running": config is not None,
            "config": config.to_dict() if config else None,
            "this_process": {
                "canary_loaded": slot.canary_version if slot else None,
                "counts": slot.canary_stats.to_dict() if slot else {},
            },
        }

    # -- reads ------------------------------------------------------------------------
    def fleet(self, model: str) -> dict[str, Any]:
        paths = self.store.existing(model)
        return read_fleet(paths, self.settings.poll_interval, self.store.current(model)).to_dict()
