"""The fleet view: each serving process's heartbeat file, and reading them back."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from modelswap.core.errors import UnsafePath
from modelswap.core.store.fsio import atomic_write_json, read_regular
from modelswap.core.store.layout import ModelPaths

logger = logging.getLogger(__name__)

STALE_INTERVALS = 3


def process_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def heartbeat_path(paths: ModelPaths, ident: str | None = None) -> Any:
    return paths.fleet_dir / f"{ident or process_id()}.json"


def write_heartbeat(paths: ModelPaths, state: dict[str, Any]) -> None:
    """Replace this process's heartbeat. Not fsynced: a lost beat is just a late one."""
    paths.fleet_dir.mkdir(exist_ok=True)
    beat = {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time(), **state}
    atomic_write_json(heartbeat_path(paths), beat, durable=False)


def touch_heartbeat(paths: ModelPaths) -> bool:
    """Mark this process's unchanged heartbeat fresh (its mtime: one syscall instead of a
    rewrite and a rename). False when there is none yet."""
    try:
        os.utime(heartbeat_path(paths))
    except FileNotFoundError:
        return False
    return True


def remove_heartbeat(paths: ModelPaths) -> None:
    heartbeat_path(paths).unlink(missing_ok=True)


@dataclass(frozen=True)
class FleetView:
    processes: tuple[dict[str, Any], ...]
    current: str | None

    @property
    def summary(self) -> str:
        total = len(self.processes)
        if total == 0:
            return "no serving process reported in"
        counts = Counter(p.get("version") for p in self.processes)
        on_current = counts.get(self.current, 0)
        text = f"{on_current}/{total} processes on {self.current or 'nothing'}"
        others = [f"{n} on {v or 'nothing'}" for v, n in counts.items() if v != self.current]
        return text + (f" ({', '.join(others)})" if others else "")

    @property
    def converged(self) -> bool:
        return bool(self.processes) and all(p.get("version") == self.current for p in self.processes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "processes": list(self.processes),
            "summary": self.summary,
            "converged": self.converged,
        }


def read_fleet(
    paths: ModelPaths, poll_interval: float, current: str | None, now: Callable[[], float] = time.time
) -> FleetView:
    """Every process whose heartbeat is younger than 3 poll intervals (at least 3 s): its
    ``time``, or the file's mtime when the process only touched an unchanged beat."""
    horizon = now() - max(STALE_INTERVALS * poll_interval, 3.0)
    beats: list[dict[str, Any]] = []
    for entry in _entries(paths):
        try:
            beat = orjson.loads(read_regular(entry))
            touched = entry.stat().st_mtime
        except (FileNotFoundError, orjson.JSONDecodeError, UnsafePath):
            continue  # vanished on shutdown, or a foreign file
        if not isinstance(beat, dict) or not isinstance(beat.get("time"), (int, float)):
            continue
        beat["time"] = max(beat["time"], touched)
        if beat["time"] >= horizon:
            beats.append(beat)
    beats.sort(key=lambda b: (str(b.get("host")), int(b.get("pid") or 0)))
    return FleetView(tuple(beats), current)


def _entries(paths: ModelPaths) -> Iterable[Any]:
    try:
        return [e for e in paths.fleet_dir.iterdir() if e.suffix == ".json" and ".tmp-" not in e.name]
    except FileNotFoundError:
        return []
