"""A model's records on disk: the ``versions.json`` index and the ``history.jsonl`` journal
read together, and the one way writers change them (:meth:`Ledger.commit`).

Reads never take the lock: the index is replaced atomically and the journal only
grows, so a reader sees a consistent pair and replays whatever the journal holds past
the index's ``history_bytes``. Parsed indexes are cached by the file's (inode, mtime,
size) and the journal's size: a server process parses a 10,000-version index once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from modelswap.core.errors import CorruptRegistry
from modelswap.core.store import history
from modelswap.core.store import registry as reg
from modelswap.core.store.history import HistoryEntry
from modelswap.core.store.layout import ModelPaths

logger = logging.getLogger(__name__)

# Rewrite the index after a journaled change that left its records as they were only
# once this much journal has piled up past it (readers replay the tail meanwhile).
INDEX_LAG_BYTES = 64 * 1024
# An index smaller than this is rewritten after every change (cheap, and versions.json
# stays current to read with your own eyes); a larger one only when it lags.
SMALL_INDEX_BYTES = 256 * 1024

Key = tuple[int, int, int, int]


class Ledger:
    """Index + journal access for every model of one store (thread-safe for readers)."""

    def __init__(self) -> None:
        # model dir -> (index file key, the registry read from it, with the journal applied
        # up to registry.history_bytes). A journal that grew since is replayed from there.
        self._cache: dict[str, tuple[Key, reg.Registry]] = {}

    # -- reads ---------------------------------------------------------------
    def registry(self, paths: ModelPaths) -> reg.Registry:
        """The index with every journal entry applied (an absent index is empty)."""
        try:
            st = paths.registry.stat()
            key: Key = (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)
        except FileNotFoundError:
            key = (0, 0, -1, 0)
        journal = history.size(paths.history)
        cached = self._cache.get(str(paths.dir))
        if cached is not None and cached[0] == key and cached[1].history_bytes <= journal:
            index = cached[1]
        elif key[2] >= 0:
            index = reg.read_registry(paths.registry, paths.name)
        else:
            index = reg.Registry(paths.name)
        if index.legacy is None and journal > index.history_bytes:
            for end, entry in history.read_from(paths.history, index.history_bytes):
                index = index.applied(entry).at(end)
        self._cache[str(paths.dir)] = (key, index)
        return index

    def newest_first(self, paths: ModelPaths, before: int | None = None) -> Iterator[tuple[int, HistoryEntry]]:
        """(cursor, entry) newest first; a legacy (format 1) index yields its inline history."""
        legacy = self.registry(paths).legacy
        if legacy is None:
            yield from history.newest_first(paths.history, before)
            return
        start = len(legacy) if before is None else min(before, len(legacy))
        for i in range(start - 1, -1, -1):
            yield i, legacy[i]

    def page(
        self, paths: ModelPaths, limit: int | None, before: int | None = None
    ) -> tuple[list[HistoryEntry], int | None]:
        """Up to ``limit`` entries, newest first, and the cursor of the next page (None: no more)."""
        entries: list[HistoryEntry] = []
        cursor: int | None = None
        for position, entry in self.newest_first(paths, before):
            if entry.action in history.NOT_SHOWN:
                continue
            if limit is not None and len(entries) >= limit:
                return entries, cursor
            entries.append(entry)
            cursor = position
        return entries, None

    def live_sequence(self, paths: ModelPaths) -> Iterator[str]:
        """Versions that were made live, newest first."""
        for _, entry in self.newest_first(paths):
            if entry.action in history.LIVE_ACTIONS and entry.to_version:
                yield entry.to_version

    def last(self, paths: ModelPaths, actions: frozenset[str] | None = None) -> HistoryEntry | None:
        for _, entry in self.newest_first(paths):
            if actions is None or entry.action in actions:
                return entry
        return None

    # -- writes (caller holds the store lock) --------------------------------------
    def migrate(self, paths: ModelPaths) -> None:
        """Move a format 1 index's inline history into ``history.jsonl``.

        1. write the journal from the inline history (atomic replace);
        2. write the index as format 2, its marker at the journal's end.
        A crash between 1 and 2 leaves the format 1 index in charge; the next writer
        migrates again, replacing the journal, so it is never doubled.
        """
        try:
            index = self.registry(paths)
        except CorruptRegistry:
            return  # nothing to migrate from; `verify --repair` rebuilds the index
        if index.legacy is None:
            return
        history.write_all(paths.history, list(index.legacy))  # 1
        self.save(paths, index.at(history.size(paths.history)))  # 2
        logger.info("%s: moved %d history entries into %s", paths.name, len(index.legacy), paths.history.name)

    def save(self, paths: ModelPaths, registry: reg.Registry) -> None:
        """Replace ``versions.json`` and remember what it now holds."""
        reg.write_registry(paths.registry, registry)
        st = paths.registry.stat()
        self._cache[str(paths.dir)] = ((st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns), registry)

    def commit(
        self,
        paths: ModelPaths,
        registry: reg.Registry,
        entry: HistoryEntry,
        effect: Callable[[], Any] | None = None,
    ) -> reg.Registry:
        """Journal ``entry``, run ``effect`` (what makes it true), then bring the index up.

        1. append the entry to the journal, fsynced: the commit point;
        2. run ``effect``; if it raises, the entry is taken back and nothing changed;
        3. rewrite the index: a small one every time, a large one once the journal has run
           ``INDEX_LAG_BYTES`` ahead of it (readers replay the tail meanwhile, so a change
           to a 10,000-version model writes O(1) bytes and the index is rewritten once
           per few hundred changes). Failing here loses nothing: the failure is logged
           and the change stands.
        Caller holds the lock, has migrated (see :meth:`migrate`) and passes the registry
        it read under the lock.
        """
        with history.journal(paths.history, entry):  # 1
            if effect is not None:
                effect()  # 2
        end = history.size(paths.history)
        updated = registry.applied(entry)
        try:
            small = paths.registry.stat().st_size <= SMALL_INDEX_BYTES
            behind = end - reg.read_marker(paths.registry)
        except FileNotFoundError:
            small, behind = True, end
        if small or behind > INDEX_LAG_BYTES:
            try:
                self.save(paths, updated.at(end))  # 3
            except OSError as exc:
                logger.warning("%s: %s is behind its journal (%s); readers replay it", paths.name, paths.registry, exc)
        return updated.at(end)
