"""A serving process's background machinery: initial load, the change watcher, fleet
heartbeats, and the canary guard's abort. Started and stopped by the app's lifespan."""

from __future__ import annotations

import logging
import threading

from modelswap.core.canary import CanaryConfig
from modelswap.core.errors import ModelswapError
from modelswap.core.fleet import remove_heartbeat, write_heartbeat
from modelswap.core.operations import Operations
from modelswap.core.serving import CANARY, ModelSlot, Serving
from modelswap.core.watcher import Ticker, Watcher

logger = logging.getLogger(__name__)


class Runtime:
    """What runs beside the request path in one serving process.

    ``start`` installs the guard callbacks and starts one sync thread per model (inotify
    + readlink poll) and the heartbeat ticker; ``stop`` stops and joins them and removes
    this process's heartbeats (a clean shutdown leaves none behind).
    """

    def __init__(self, serving: Serving, ops: Operations, *, watch: str, poll_interval: float) -> None:
        self.serving = serving
        self.ops = ops
        self.watch = watch
        self.poll_interval = poll_interval
        self.started_at = 0.0
        self.watcher: Watcher | None = None
        self.heartbeat: Ticker | None = None
        self._guards: list[threading.Thread] = []
        ops.on_swap = self.beat_now

    def load_all(self) -> None:
        """Load every served model's current version (and canary) now, in this thread."""
        for slot in self.serving.slots.values():
            slot.sync()

    def start(self, now: float) -> None:
        self.started_at = now
        for slot in self.serving.slots.values():
            slot.on_guard_trip = self._guard_tripped
        self.watcher = Watcher(
            self.serving.slots.values(),
            {name: slot.paths.dir for name, slot in self.serving.slots.items()},
            mode=self.watch,
            interval=self.poll_interval,
            on_change=self.beat_now,
        )
        self.watcher.start()
        self.heartbeat = Ticker(self.beat, self.poll_interval, "heartbeat")
        self.heartbeat.start()

    def stop(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self.watcher is not None:
            self.watcher.stop()
        for thread in self._guards:
            thread.join(timeout=10)
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
                error = info["last_load_error"]
                write_heartbeat(
                    slot.paths,
                    {
                        "version": info["serving"],
                        "canary": info["canary"],
                        "last_load_error": error["message"] if error else None,
                        "loaded_versions": info["loaded_versions"],
                        "last_swap_lag_seconds": info["last_swap_lag_seconds"],
                        "started_at": self.started_at,
                    },
                )

    def _guard_tripped(self, slot: ModelSlot, config: CanaryConfig) -> None:
        """Called on the event loop when the guard trips: abort the canary off the loop."""
        requests, errors = slot.canary_stats.of(CANARY)
        bound = config.guard.max_error_rate if config.guard else float("nan")
        reason = f"guard: canary error rate {errors}/{requests} = {errors / requests:.3f} > {bound}"
        logger.warning("model %s: %s; stopping canary %s", slot.name, reason, config.version)
        thread = threading.Thread(target=self._abort, args=(slot.name, config.version, reason), name="guard")
        self._guards = [t for t in self._guards if t.is_alive()] + [thread]
        thread.start()

    def _abort(self, model: str, version: str, reason: str) -> None:
        try:
            self.ops.canary_abort(model, version, reason=reason)
        except (ModelswapError, OSError) as exc:
            logger.error("model %s: the guard could not stop canary %s: %s", model, version, exc)
