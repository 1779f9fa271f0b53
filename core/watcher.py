"""Change detection: a readlink poll (the truth; works on NFS) plus inotify as a fast path.

Each model gets one sync thread that waits on an Event with the poll interval
as timeout; inotify (watchdog) only sets that Event early. So whatever the
change source, loading happens in exactly one place per model, off the
request path, and the poll catches whatever inotify misses.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from modelswap.core.layout import ABTEST_FILE, CURRENT_LINK, TMP_MARK

logger = logging.getLogger(__name__)

WATCHED_NAMES = frozenset({CURRENT_LINK, ABTEST_FILE})
RECHECKS = 5  # after a wake that found nothing: 5 looks, 10 ms apart
RECHECK_PAUSE = 0.01


class Syncable(Protocol):
    name: str

    def sync(self) -> object: ...


class Trigger(Protocol):
    """A fast change source: calls ``wake(model)`` when a watched name changes."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class InotifyTrigger:
    """watchdog on each model directory (not on the ``current`` link: a symlink swap
    replaces the link, so the directory is what sees the rename)."""

    def __init__(self, dirs: dict[str, Path], wake: Callable[[str], None]) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        class Handler(FileSystemEventHandler):
            def __init__(self, model: str) -> None:
                self.model = model

            def on_any_event(self, event: FileSystemEvent) -> None:
                names = {Path(str(event.src_path)).name, Path(str(getattr(event, "dest_path", "") or "")).name}
                # The temp link a swap creates beside `current` counts too: watchdog holds a
                # rename back for up to 0.5 s to pair its two halves, but the creation of
                # `current.tmp-*` arrives at once, a moment before the rename.
                if any(name.split(TMP_MARK, 1)[0] in WATCHED_NAMES for name in names if name):
                    wake(self.model)

        self._observer = Observer()
        for model, directory in dirs.items():
            self._observer.schedule(Handler(model), str(directory), recursive=False)

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)


class Watcher:
    """One sync thread per model; ``mode`` is auto (inotify + poll), poll, or off."""

    def __init__(
        self,
        slots: Iterable[Syncable],
        dirs: dict[str, Path],
        *,
        mode: str,
        interval: float,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._on_change = on_change
        self._slots = {slot.name: slot for slot in slots}
        self._dirs = dirs
        self.mode = mode
        self.interval = interval
        self._stop = threading.Event()
        self._wakes = {name: threading.Event() for name in self._slots}
        self._threads: list[threading.Thread] = []
        self._trigger: Trigger | None = None

    def wake(self, model: str) -> None:
        event = self._wakes.get(model)
        if event is not None:
            event.set()

    def start(self) -> None:
        if self.mode == "auto":
            self._trigger = self._start_inotify()
        for name, slot in self._slots.items():
            thread = threading.Thread(
                target=self._run, args=(slot, self._wakes[name]), name=f"sync-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _start_inotify(self) -> Trigger | None:
        try:
            trigger = InotifyTrigger(self._dirs, self.wake)
            trigger.start()
        except (OSError, RuntimeError) as exc:
            # e.g. fs.inotify.max_user_watches reached, or no inotify on this kernel
            logger.warning("inotify unavailable (%s); falling back to polling every %.2fs", exc, self.interval)
            return None
        logger.info("watching %d model directories with inotify, polling every %.2fs", len(self._dirs), self.interval)
        return trigger

    def _run(self, slot: Syncable, wake: threading.Event) -> None:
        timeout = None if self.mode == "off" else self.interval
        woken = False
        while not self._stop.is_set():
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
            woken = wake.wait(timeout)
            wake.clear()

    def stop(self) -> None:
        self._stop.set()
        for event in self._wakes.values():
            event.set()
        if self._trigger is not None:
            self._trigger.stop()
        for thread in self._threads:
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
        while True:
            try:
                self._fn()
            except Exception:  # a failed tick (a full disk, say) must not end the ticker
                logger.exception("%s failed", self._thread.name)
            if self._stop.wait(self._interval):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
