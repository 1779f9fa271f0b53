"""Change detection: a readlink poll (the truth; works on NFS) plus inotify as a fast path.

Each model gets one sync thread that waits on an Event; one poll thread looks at every
model each poll interval (a readlink and two stats: :meth:`Syncable.stale`) and sets the
Event of those that changed, and inotify (watchdog) sets it at once. So whatever the
change source, loading happens in exactly one place per model, off the request path, the
poll catches whatever inotify misses, and 100 idle models cost one thread's loop a
second, not 100 thread wake-ups.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from modelswap.core.store.layout import ABTEST_FILE, CURRENT_LINK, SHADOW_FILE, TMP_MARK

logger = logging.getLogger(__name__)

WATCHED_NAMES = frozenset({CURRENT_LINK, ABTEST_FILE, SHADOW_FILE})
RECHECKS = 5  # after a wake that found nothing: 5 looks, 10 ms apart
RECHECK_PAUSE = 0.01


class Syncable(Protocol):
    name: str

    def sync(self) -> object: ...

    def stale(self) -> bool: ...


class InotifyTrigger:
    """watchdog on each model directory (not on the ``current`` link: a symlink swap
    replaces the link, so the directory is what sees the rename), and on the store root,
    where a new model directory appears."""

    def __init__(self, root: Path, wake: Callable[[str], None], on_root: Callable[[], None]) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        class ModelHandler(FileSystemEventHandler):
            def __init__(self, model: str) -> None:
                self.model = model

            def on_any_event(self, event: FileSystemEvent) -> None:
                names = {Path(str(event.src_path)).name, Path(str(getattr(event, "dest_path", "") or "")).name}
                # The temp link a swap creates beside `current` counts too: watchdog holds a
                # rename back for up to 0.5 s to pair its two halves, but the creation of
                # `current.tmp-*` arrives at once, a moment before the rename.
                if any(name.split(TMP_MARK, 1)[0] in WATCHED_NAMES for name in names if name):
                    wake(self.model)

        class RootHandler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.is_directory or event.event_type in ("deleted", "moved"):
                    on_root()

        self._handler = ModelHandler
        self._observer = Observer()
        self._watches: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._observer.schedule(RootHandler(), str(root), recursive=False)

    def add(self, model: str, directory: Path) -> None:
        with self._lock:
            if model not in self._watches:
                self._watches[model] = self._observer.schedule(self._handler(model), str(directory), recursive=False)

    def remove(self, model: str) -> None:
        with self._lock:
            watch = self._watches.pop(model, None)
        if watch is not None:
            with contextlib.suppress(KeyError, OSError):  # its directory may be gone already
                self._observer.unschedule(watch)

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)


class Watcher:
    """One sync thread per model, added and removed as models come and go; ``mode`` is
    auto (inotify + poll), poll, or off. ``on_root`` runs when inotify sees the store
    root change (a model directory created or removed)."""

    def __init__(
        self,
        root: Path,
        *,
        mode: str,
        interval: float,
        on_change: Callable[[], None] | None = None,
        on_root: Callable[[], None] | None = None,
    ) -> None:
        self.root = root
        self.mode = mode
        self.interval = interval
        self._on_change = on_change
        self._on_root = on_root or (lambda: None)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._wakes: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._removed: set[str] = set()
        self._slots: dict[str, Syncable] = {}
        self._trigger: InotifyTrigger | None = None
        self._poller: threading.Thread | None = None

    def wake(self, model: str) -> None:
        event = self._wakes.get(model)
        if event is not None:
            event.set()

    def start(self) -> None:
        if self.mode == "auto":
            self._trigger = self._start_inotify()
        if self.mode != "off":
            self._poller = threading.Thread(target=self._poll, name="sync-poll", daemon=True)
            self._poller.start()

    def _poll(self) -> None:
        """Every interval, wake the sync thread of each model whose files changed."""
        while not self._stop.wait(self.interval):
            with self._lock:
                slots = list(self._slots.values())
            for slot in slots:
                try:
                    if slot.stale():
                        self.wake(slot.name)
                except Exception:  # a model directory being removed, say: the next look tells
                    logger.exception("polling %s failed", slot.name)

    def add(self, slot: Syncable, directory: Path) -> None:
        """Follow ``slot``'s model: a sync thread (which syncs at once) and an inotify watch."""
        with self._lock:
            if slot.name in self._threads or self._stop.is_set():
                return
            self._removed.discard(slot.name)
            wake = self._wakes[slot.name] = threading.Event()
            self._slots[slot.name] = slot
            thread = threading.Thread(target=self._run, args=(slot, wake), name=f"sync-{slot.name}", daemon=True)
            self._threads[slot.name] = thread
        if self._trigger is not None:
            try:
                self._trigger.add(slot.name, directory)
            except OSError as exc:  # max_user_watches reached: the poll still follows it
                logger.warning("no inotify watch on %s (%s); polling it every %.2fs", directory, exc, self.interval)
        thread.start()

    def remove(self, model: str) -> None:
        """Stop following ``model`` and join its thread."""
        with self._lock:
            thread = self._threads.pop(model, None)
            self._slots.pop(model, None)
            self._removed.add(model)
            wake = self._wakes.pop(model, None)
        if self._trigger is not None:
            self._trigger.remove(model)
        if wake is not None:
            wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    def _start_inotify(self) -> InotifyTrigger | None:
        try:
            trigger = InotifyTrigger(self.root, self.wake, self._on_root)
            trigger.start()
        except (OSError, RuntimeError) as exc:
            # e.g. fs.inotify.max_user_watches reached, or no inotify on this kernel
            logger.warning("inotify unavailable (%s); falling back to polling every %.2fs", exc, self.interval)
            return None
        logger.info("watching %s with inotify, polling every %.2fs", self.root, self.interval)
        return trigger

    def _run(self, slot: Syncable, wake: threading.Event) -> None:
        woken = False
        while not self._stop.is_set() and slot.name not in self._removed:
            try:
                changed = slot.sync()
                if not changed and woken:
                    # woken by the temp link of a swap still in flight: look again shortly
                    for _ in range(RECHECKS):
                        if self._stop.wait(RECHECK_PAUSE) or (changed := slot.sync()):
                            break
                if changed and self._on_change is not None:
                    self._on_change()
            except Exception:  # the sync thread must outlive any one bad change
                logger.exception("sync of %s failed", slot.name)
            woken = wake.wait()
            wake.clear()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            threads = list(self._threads.values())
            for event in self._wakes.values():
                event.set()
        if self._trigger is not None:
            self._trigger.stop()
        if self._poller is not None:
            self._poller.join(timeout=10)
        for thread in threads:
            thread.join(timeout=10)
        self._threads.clear()


class Ticker:
    """Calls ``fn`` every ``interval`` seconds on its own thread until stopped."""

    def __init__(self, fn: Callable[[], None], interval: float, name: str) -> None:
        self._fn = fn
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        failing: str | None = None  # one log line per kind of failure, not one per tick
        while True:
            try:
                self._fn()
            except Exception as exc:  # a failed tick (a full disk, say) must not end the ticker
                if str(exc) != failing:
                    logger.error("%s failed (logged once until it changes or recovers): %s", self._thread.name, exc)
                    failing = str(exc)
            else:
                if failing is not None:
                    logger.info("%s works again", self._thread.name)
                    failing = None
            if self._stop.wait(self._interval):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
