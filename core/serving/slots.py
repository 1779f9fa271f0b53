"""Per-model serving slots: the immutable snapshot a request reads, warm standby, hot swap.

A request takes ``slot.snapshot()`` once and uses it to the end. Loading happens
in the caller's thread (a watcher thread or an admin request's worker thread,
never the event loop) under a per-slot load lock; the swap itself replaces one
reference under an RLock, so a request never sees a half-loaded model.
"""

from __future__ import annotations

import ctypes
import logging
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from modelswap.core.delivery.abtest import CanaryConfig, is_canary, read_canary
from modelswap.core.delivery.shadow import ShadowConfig, read_shadow
from modelswap.core.errors import InvalidInput, ModelNotFound, ModelswapError, NotReady
from modelswap.core.metrics import Metrics
from modelswap.core.serving.loader import LoadedModel, load_version, memory_headroom
from modelswap.core.serving.snapshot import CANARY, PINNED, SHADOW, STABLE, LoadError, Snapshot, VariantStats
from modelswap.core.store.fsio import read_link
from modelswap.core.store.layout import ModelPaths, find_model_file, version_from_link_target

logger = logging.getLogger(__name__)

Loader = Callable[[ModelPaths, str], LoadedModel]


def _stat_key(path: Any) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _file_stamp(paths: ModelPaths, version: str) -> tuple[int, int] | None:
    try:
        st = find_model_file(paths.version_dir(version)).stat()
    except FileNotFoundError:
        return None
    return (st.st_size, st.st_mtime_ns)


class ModelSlot:
    """What one process serves for one model."""

    def __init__(self, paths: ModelPaths, *, keep_loaded: int, loader: Loader, metrics: Metrics) -> None:
        self.paths = paths
        self.name = paths.name
        self.keep_loaded = max(1, keep_loaded)
        self._loader = loader
        self._metrics = metrics
        self._lock = threading.RLock()  # guards the snapshot reference
        self._load_lock = threading.Lock()  # one load/sync at a time per model
        self._snapshot: Snapshot | None = None
        self._cache: OrderedDict[str, tuple[LoadedModel, tuple[int, int] | None]] = OrderedDict()
        self._pinned: OrderedDict[str, Snapshot] = OrderedDict()
        self._canary: Snapshot | None = None
        self._canary_config: CanaryConfig | None = None
        self._abtest_key: tuple[int, int, int] | None = None
        self.shadow: tuple[Snapshot, ShadowConfig] | None = None  # read by the request path as one reference
        self._shadow_key: tuple[int, int, int] | None = None
        self.canary_stats = VariantStats()
        self._stats_lock = threading.Lock()  # the batch's worker thread and the loop both count
        self.on_guard_trip: Callable[[ModelSlot, CanaryConfig], None] | None = None
        self._guard_tripped = False
        self._draw = random.random
        self._failed: str | None = None
        self.last_error: LoadError | None = None
        self.last_swap_lag: float | None = None

    # -- the request path --------------------------------------------------------
    def snapshot(self) -> Snapshot:
        with self._lock:
            snap = self._snapshot
        if snap is None:
            detail = f": last load error: {self.last_error.message}" if self.last_error else ""
            raise NotReady(f"model {self.name} has no loaded version yet{detail}")
        return snap

    def route(self, routing_key: str | None) -> Snapshot:
        """The snapshot for one request: canary for its share of traffic once the canary
        is loaded, stable otherwise. Sticky per routing key across processes."""
        with self._lock:
            stable, canary, config = self._snapshot, self._canary, self._canary_config
        if canary is not None and config is not None and is_canary(config, routing_key, self._draw()):
            return canary
        if stable is None:
            return self.snapshot()  # raises NotReady with the reason
        return stable

    def record(self, snap: Snapshot, ok: bool) -> None:
        """Count an outcome per variant; trip the canary guard when it says so.
        Called on the event loop thread (a failure trips the guard there)."""
        with self._stats_lock:
            stats = self.canary_stats.of(snap.variant)
            stats[0] += 1
            if not ok:
                stats[1] += 1
        config = self._canary_config
        if (
            snap.variant == CANARY
            and not ok
            and config is not None
            and config.guard is not None
            and not self._guard_tripped
            and config.guard.tripped(stats[0], stats[1])
            and self.on_guard_trip is not None
        ):
            self._guard_tripped = True
            self.on_guard_trip(self, config)

    def record_answered(self, snap: Snapshot, requests: int) -> None:
        """Count ``requests`` answered by ``snap`` (a batch; any thread: successes never trip the guard)."""
        with self._stats_lock:
            self.canary_stats.of(snap.variant)[0] += requests

    @property
    def canary_config(self) -> CanaryConfig | None:
        return self._canary_config

    @property
    def canary_version(self) -> str | None:
        snap = self._canary
        return snap.version if snap is not None else None

    @property
    def version(self) -> str | None:
        snap = self._snapshot
        return snap.version if snap is not None else None

    def pinned_ready(self, version: str) -> Snapshot | None:
        """The snapshot of ``version`` for a version-pinned request if it needs no load
        (the live version, or one pinned before); None otherwise. No I/O: the event loop
        calls it, and hands only a load to a thread."""
        snap = self._snapshot
        if snap is not None and snap.version == version:
            return snap
        with self._lock:
            found = self._pinned.get(version)
            if found is not None:
                self._pinned.move_to_end(version)
            return found

    def pinned(self, version: str) -> Snapshot:
        """A snapshot of ``version`` for a version-pinned request (loads it if needed,
        in the caller's thread, without displacing the warm standby)."""
        ready = self.pinned_ready(version)
        if ready is not None:
            return ready
        with self._lock:
            cached = self._cache.get(version)
        loaded = cached[0] if cached is not None else self._loader(self.paths, version)
        pinned = Snapshot.of(loaded, PINNED)
        with self._lock:
            self._pinned[version] = pinned
            while len(self._pinned) > self.keep_loaded:
                self._pinned.popitem(last=False)
        return pinned

    # -- loading -------------------------------------------------------------------
    def prepare(self, version: str) -> LoadedModel:
        """The validated, loaded ``version``: from warm standby when its file is unchanged,
        else loaded now (digests, load, smoke predict). Raises ValidationFailed & co."""
        stamp = _file_stamp(self.paths, version)
        with self._lock:
            cached = self._cache.get(version)
            if cached is not None and cached[1] == stamp and stamp is not None:
                self._cache.move_to_end(version)
                return cached[0]
        start = time.perf_counter()
        try:
            loaded = self._loader(self.paths, version)
        except ModelswapError:
            self._metrics.model_loads.labels(self.name, "failure").inc()
            raise
        self._metrics.model_loads.labels(self.name, "success").inc()
        self._metrics.model_load_seconds.labels(self.name).observe(time.perf_counter() - start)
        with self._lock:
            self._cache[version] = (loaded, stamp)
            self._cache.move_to_end(version)
            self._evict(keep=version)
        return loaded

    def sync(self, *, force: bool = False) -> bool:
        """Serve what ``current`` names. True when this call swapped.

        A target that failed to load is retried only when ``current`` changes again
        (or with ``force``); meanwhile the old version keeps serving.
        """
        with self._load_lock:
            changed = self._sync_canary(force)
            self._sync_shadow(force)
            target = self.link_target()
            if target is None:
                return changed
            if target == self.version and not force:
                return changed
            if target == self._failed and not force:
                return changed
            try:
                loaded = self.prepare(target)
            except ModelswapError as exc:
                self._record_failure(target, exc.message, exc.code)
                return changed
            except Exception as exc:  # a background loader must survive anything a model file does
                logger.exception("loading %s %s failed unexpectedly", self.name, target)
                self._record_failure(target, f"{type(exc).__name__}: {exc}", "load_failed")
                return changed
            swapped = self._swap(loaded)
            if swapped:
                self._observe_lag()
            return swapped or changed

    def stale(self) -> bool:
        """Whether :meth:`sync` has something to do: ``abtest.json`` or ``shadow.json``
        changed, or ``current`` names a version not served and not known to fail. A readlink
        and two stats, for the poll that looks at every model each interval."""
        if _stat_key(self.paths.abtest) != self._abtest_key or _stat_key(self.paths.shadow) != self._shadow_key:
            return True
        target = self.link_target()
        return target is not None and target != self.version and target != self._failed

    def _sync_canary(self, force: bool) -> bool:
        """Follow ``abtest.json``: load a new canary (stable keeps its share meanwhile),
        drop an ended one. True when the canary changed. Caller holds _load_lock."""
        key = _stat_key(self.paths.abtest)
        if key == self._abtest_key and not force:
            return False
        try:
            config = read_canary(self.paths.abtest)
        except InvalidInput as exc:
            self._abtest_key = key
            self.last_error = LoadError("canary", exc.message, exc.code, time.time())
            logger.error("model %s: %s", self.name, exc.message)
            return False
        canary: Snapshot | None = None
        if config is not None:
            try:
                canary = Snapshot.of(self.prepare(config.version), CANARY)
            except ModelswapError as exc:
                self._abtest_key = key
                self._record_failure(config.version, f"canary: {exc.message}", exc.code)
                return False
        self._abtest_key = key
        with self._lock:
            old = self._canary
            self._canary, self._canary_config = canary, config
            self.canary_stats = VariantStats()
            self._guard_tripped = False
        self._metrics.set_serving(self.name, CANARY, old.version if old else None, canary.version if canary else None)
        self._metrics.canary_fraction.labels(self.name).set(config.fraction if config else 0.0)
        logger.info("model %s: canary %s", self.name, f"{config.version} at {config.fraction}" if config else "stopped")
        return True

    def _sync_shadow(self, force: bool) -> None:
        """Follow ``shadow.json``: load the shadow version (into the warm cache) and
        publish it with its config, or drop it. Caller holds _load_lock."""
        key = _stat_key(self.paths.shadow)
        if key == self._shadow_key and not force:
            return
        self._shadow_key = key
        try:
            config = read_shadow(self.paths.shadow)
            shadow = (Snapshot.of(self.prepare(config.version), SHADOW), config) if config is not None else None
        except ModelswapError as exc:
            self.last_error = LoadError("shadow", f"shadow: {exc.message}", exc.code, time.time())
            logger.error("model %s: shadow: %s", self.name, exc.message)
            shadow = None
        self.shadow = shadow
        logger.info("model %s: shadow %s", self.name, f"{shadow[1].version}" if shadow else "off")

    def link_target(self) -> str | None:
        target = read_link(self.paths.current)
        return version_from_link_target(target) if target is not None else None

    def _record_failure(self, version: str, message: str, code: str) -> None:
        self._failed = version
        self.last_error = LoadError(version, message, code, time.time())
        logger.error("model %s: cannot serve %s, still serving %s: %s", self.name, version, self.version, message)

    def _swap(self, loaded: LoadedModel) -> bool:
        with self._lock:
            old = self._snapshot
            if old is not None and old.version == loaded.version:
                return False
            self._snapshot = Snapshot.of(loaded, STABLE)
            self._failed = None
            self.last_error = None
            released = self._evict(keep=loaded.version)
        self._metrics.set_serving(self.name, STABLE, old.version if old else None, loaded.version)
        logger.info("model %s: now serving %s (was %s)", self.name, loaded.version, old.version if old else None)
        if released:
            release_memory()
        return True

    def _evict(self, keep: str) -> bool:
        """Drop the least recently used versions beyond keep_loaded, never the one
        serving nor ``keep``. Caller holds _lock."""
        shadow = self.shadow[0].version if self.shadow is not None else None
        pinned = {self.version, self.canary_version, shadow, keep}
        extra = (self._canary is not None) + (shadow is not None)
        released = False
        for version in list(self._cache):
            if len(self._cache) <= self.keep_loaded + extra:
                break
            if version not in pinned:
                del self._cache[version]
                released = True
        return released

    def _observe_lag(self) -> None:
        """Seconds from the symlink's creation (its lstat mtime) to this swap."""
        try:
            changed = os.lstat(self.paths.current).st_mtime
        except FileNotFoundError:
            return
        self.last_swap_lag = max(0.0, time.time() - changed)
        self._metrics.swap_lag.labels(self.name).observe(self.last_swap_lag)

    def loaded_versions(self) -> list[str]:
        with self._lock:
            return list(self._cache)

    def info(self) -> dict[str, Any]:
        snap = self._snapshot
        return {
            "serving": snap.version if snap else None,
            "serving_since": snap.swapped_at if snap else None,
            "loaded_versions": self.loaded_versions(),
            "warnings": list(snap.loaded.warnings) if snap else [],
            "last_load_error": self.last_error.to_dict() if self.last_error else None,
            "last_swap_lag_seconds": self.last_swap_lag,
            "canary": self.canary_version,
            "shadow": self.shadow[0].version if self.shadow is not None else None,
        }


class Serving:
    """Every model this process serves."""

    def __init__(
        self,
        models: dict[str, ModelPaths],
        *,
        metrics: Metrics,
        keep_loaded: int = 2,
        strict_versions: bool = False,
        trusted_types: Sequence[str] = (),
        share_memory: bool = False,
        headroom: Callable[[], int | None] = memory_headroom,
    ) -> None:
        options: dict[str, Any] = {
            "strict_versions": strict_versions,
            "trusted_types": tuple(trusted_types),
            "share_memory": share_memory,
        }

        def loader(paths: ModelPaths, version: str) -> LoadedModel:
            return load_version(paths, version, headroom=headroom, **options)

        self.metrics = metrics
        self.keep_loaded = keep_loaded
        # Replaced, never mutated: the event loop reads it while discovery adds or drops models.
        self.slots: dict[str, ModelSlot] = {
            name: ModelSlot(paths, keep_loaded=keep_loaded, loader=loader, metrics=metrics)
            for name, paths in models.items()
        }
        self._loader = loader
        self._lock = threading.Lock()

    def add(self, paths: ModelPaths) -> ModelSlot:
        """Serve a model that appeared in the store (its slot loads on its first sync)."""
        with self._lock:
            slot = self.slots.get(paths.name)
            if slot is None:
                slot = ModelSlot(paths, keep_loaded=self.keep_loaded, loader=self._loader, metrics=self.metrics)
                self.slots = {**self.slots, paths.name: slot}
        return slot

    def remove(self, model: str) -> ModelSlot | None:
        """Stop serving a model whose directory is gone; requests for it get 404."""
        with self._lock:
            slot = self.slots.get(model)
            if slot is not None:
                self.slots = {k: v for k, v in self.slots.items() if k != model}
        if slot is not None:
            self.metrics.set_serving(model, STABLE, slot.version, None)
        return slot

    def slot(self, model: str) -> ModelSlot:
        try:
            return self.slots[model]
        except KeyError:
            raise ModelNotFound(f"model {model!r} is not served here") from None

    def validator(self, paths: ModelPaths, version: str) -> object:
        """Store validator: served models load into their slot's warm standby."""
        slot = self.slots.get(paths.name)
        return slot.prepare(version) if slot is not None else self._loader(paths, version)

    def waiting(self) -> list[str]:
        """Models that have a ``current`` but no loaded version in this process yet (a
        model published but never deployed has nothing to wait for)."""
        return [name for name, slot in self.slots.items() if slot.version is None and slot.link_target() is not None]

    def ready(self) -> bool:
        return not self.waiting()


def release_memory() -> None:
    """Ask glibc to hand freed heap back to the OS, so RSS drops after a retire."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, macOS): nothing to trim
        return
    libc.malloc_trim(0)
