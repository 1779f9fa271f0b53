"""A serving process's background machinery: initial load, the change watcher, fleet
heartbeats, and the canary guard's abort. Started and stopped by the app's lifespan."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from modelswap.core.delivery.abtest import CanaryConfig
from modelswap.core.delivery.driver import Delivery
from modelswap.core.errors import ModelswapError
from modelswap.core.monitoring.monitor import Monitor
from modelswap.core.operations import Operations
from modelswap.core.serving.changes import Ticker, Watcher
from modelswap.core.serving.fleet import remove_heartbeat, touch_heartbeat, write_heartbeat
from modelswap.core.serving.slots import ModelSlot, Serving
from modelswap.core.serving.snapshot import CANARY

logger = logging.getLogger(__name__)


class Runtime:
    """What runs beside the request path in one serving process.

    ``start`` installs the guard callbacks and starts one sync thread per model (inotify
    + readlink poll) and the heartbeat ticker; ``stop`` stops and joins them and removes
    this process's heartbeats (a clean shutdown leaves none behind).
    """

    def __init__(
        self,
        serving: Serving,
        ops: Operations,
        *,
        watch: str,
        poll_interval: float,
        only: tuple[str, ...] | None = None,
        monitor: Monitor | None = None,
        delivery: Delivery | None = None,
    ) -> None:
        self.serving = serving
        self.monitor = monitor
        self.delivery = delivery
        self.ops = ops
        self.watch = watch
        self.poll_interval = poll_interval
        self.only = only  # MODELSWAP_MODELS: serve these (whenever they exist), else every model
        self.started_at = 0.0
        self.watcher: Watcher | None = None
        self.heartbeat: Ticker | None = None
        self._guards: list[threading.Thread] = []
        self._discovering = threading.Lock()
        self._beats: dict[str, dict[str, Any]] = {}  # what each model's heartbeat last said
        ops.on_swap = self.beat_now
        ops.discover = self.discover

    def load_all(self) -> None:
        """Load every served model's current version (and canary) now, in this thread."""
        for slot in self.serving.slots.values():
            slot.sync()

    def start(self, now: float) -> None:
        self.started_at = now
        if self.delivery is not None:
            self.delivery.shadows.start()
        self.watcher = Watcher(
            self.ops.store.root,
            mode=self.watch,
            interval=self.poll_interval,
            on_change=self.beat_now,
            on_root=self.discover,
        )
        self.watcher.start()
        for slot in self.serving.slots.values():
            self._follow(slot)
        self.heartbeat = Ticker(self.tick, self.poll_interval, "heartbeat")
        self.heartbeat.start()

    def tick(self) -> None:
        """Every poll interval: look for models that appeared or went, heartbeat, count
        what monitoring queued (and flush it when due), drive rollouts and watched deploys
        (core.delivery.driver), sample the process metrics."""
        if self._store_changed():
            self.discover()
        self.beat()
        if self.monitor is not None:
            self.monitor.tick()
        if self.delivery is not None:
            self.delivery.tick()
        if self.ops.metrics is not None:
            self.ops.metrics.sample_process()

    def _store_changed(self) -> bool:
        """Whether the store root names a model this process does not serve yet, or no longer
        names one it serves: one listdir, so that 100 served models cost no per-model stat a
        tick (a name that is not a model, e.g. a half-made directory, keeps it True)."""
        try:
            names = {n for n in os.listdir(self.ops.store.root) if not n.startswith(".")}
        except FileNotFoundError:
            names = set()
        if self.only is not None:
            names &= set(self.only)
        served = set(self.serving.slots)
        return bool(names - served) or bool(served - names)

    def discover(self) -> None:
        """Serve every model the store holds now (or those of MODELSWAP_MODELS), and stop
        serving those whose directory is gone. Runs from the poll and from inotify."""
        if self.watcher is None:
            return
        with self._discovering:
            present = set(self.ops.store.models())
            wanted = present if self.only is None else present & set(self.only)
            for name in sorted(wanted - set(self.serving.slots)):
                logger.info("model %s appeared in the store; serving it", name)
                self._follow(self.serving.add(self.ops.store.paths(name)))
            for name in sorted(set(self.serving.slots) - present):
                if self.ops.store.paths(name).dir.exists():
                    continue  # not a model any more (versions/ removed by hand): keep serving what it has
                logger.info("model %s left the store; no longer serving it", name)
                self.watcher.remove(name)
                self.serving.remove(name)

    def _follow(self, slot: ModelSlot) -> None:
        slot.on_guard_trip = self._guard_tripped
        assert self.watcher is not None
        self.watcher.add(slot, slot.paths.dir)

    def stop(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self.delivery is not None:
            self.delivery.shadows.stop()
        if self.monitor is not None:
            self.monitor.stop()
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
        """Each served model's heartbeat: rewritten when what it says changed, else only
        touched (a rewrite is a write and a rename per model per tick; a touch is a syscall)."""
        for slot in list(self.serving.slots.values()):
            info = slot.info()
            error = info["last_load_error"]
            state = {
                "version": info["serving"],
                "canary": info["canary"],
                "shadow": info["shadow"],
                "last_load_error": error["message"] if error else None,
                "loaded_versions": info["loaded_versions"],
                "last_swap_lag_seconds": info["last_swap_lag_seconds"],
                "started_at": self.started_at,
            }
            if self._beats.get(slot.name) == state and touch_heartbeat(slot.paths):
                continue
            if slot.paths.dir.is_dir():
                write_heartbeat(slot.paths, state)
                self._beats[slot.name] = state

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
