"""Everything one serving process holds, built by ``create_app`` and started by its lifespan."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from core.errors import ModelswapError
from core.fleet import read_fleet, remove_heartbeat, write_heartbeat
from core.metrics import Metrics
from core.outcomes import Transition
from core.serving import Serving
from core.settings import Settings
from core.store import Store
from core.watcher import Ticker, Watcher

logger = logging.getLogger(__name__)


@dataclass
class AppState:
    settings: Settings
    store: Store
    serving: Serving
    metrics: Metrics
    token: str | None
    started_at: float = field(default_factory=time.time)
    watcher: Watcher | None = None
    heartbeat: Ticker | None = None

    # -- lifecycle (called from the lifespan) ---------------------------------------
    def start(self) -> None:
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
                        "canary": None,
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

    def _admin(self, model: str, action: str, operation: Any) -> Transition:
        """Run a store transition, then swap this process before returning (SPEC §3)."""
        try:
            transition: Transition = operation()
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

    # -- reads ------------------------------------------------------------------------
    def fleet(self, model: str) -> dict[str, Any]:
        paths = self.store.existing(model)
        return read_fleet(paths, self.settings.poll_interval, self.store.current(model)).to_dict()
