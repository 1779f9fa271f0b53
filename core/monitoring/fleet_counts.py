"""Monitoring on the volume: each process's counts file, merging the fleet's, and
``monitor.json`` (a model's thresholds).

``<model>/.monitor/<host>-<pid>.json`` is replaced (not fsynced: a lost flush costs a few
seconds of counts) every flush interval by the process it names. Readers sum every file
younger than the retention, so a process that stopped keeps counting for the buckets it
served. ``monitor.json`` is written under the model's lock, atomically.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from modelswap.core.errors import InvalidInput
from modelswap.core.monitoring.counts import Cell, CellKey
from modelswap.core.monitoring.drift import Thresholds
from modelswap.core.serving.fleet import process_id
from modelswap.core.store.fsio import atomic_write_json, fresh_process_files, read_regular
from modelswap.core.store.layout import ModelPaths

logger = logging.getLogger(__name__)


# -- monitor.json --------------------------------------------------------------------
@dataclass(frozen=True)
class AlertThresholds:
    """When the error-rate, latency and performance alerts fire (drift: :class:`Thresholds`)."""

    min_requests: int = 50  # no error-rate or latency verdict on fewer requests in the window
    error_rate_warning: float = 0.05  # over the version's own baseline
    error_rate_critical: float = 0.2
    latency_warning: float = 2.0  # window p99 / baseline p99
    latency_critical: float = 4.0
    latency_floor_ms: float = 25.0  # a p99 under this never alerts (sub-ms models jitter)
    min_feedback: int = 50  # labelled predictions needed for a performance verdict
    quality_warning: float = 0.05  # live metric worse than published by this much
    quality_critical: float = 0.15


@dataclass(frozen=True)
class MonitorConfig:
    drift: Thresholds = Thresholds()
    alerts: AlertThresholds = AlertThresholds()

    def to_dict(self) -> dict[str, Any]:
        return {**self.drift.to_dict(), **dataclasses.asdict(self.alerts)}

    @classmethod
    def from_dict(cls, data: Any) -> MonitorConfig:
        if not isinstance(data, Mapping):
            raise InvalidInput('monitoring settings are an object like {"psi_warning": 0.3}')
        alert_fields = {f.name: f for f in dataclasses.fields(AlertThresholds)}
        drift_part = {k: v for k, v in data.items() if k not in alert_fields}
        alert_part: dict[str, Any] = {}
        for name, value in data.items():
            if name not in alert_fields:
                continue
            number_ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number_ok or value < 0 or value != value:
                raise InvalidInput(f"monitoring setting {name!r} must be a number of 0 or more, got {value!r}")
            if alert_fields[name].type in ("int", int) and value != int(value):
                raise InvalidInput(f"monitoring setting {name!r} must be a whole number, got {value!r}")
            alert_part[name] = int(value) if alert_fields[name].type in ("int", int) else float(value)
        return cls(Thresholds.from_dict(drift_part), AlertThresholds(**alert_part))

    def updated(self, changes: Mapping[str, Any]) -> MonitorConfig:
        return MonitorConfig.from_dict({**self.to_dict(), **changes})


def read_config(paths: ModelPaths) -> MonitorConfig:
    """The model's thresholds: monitor.json, or the defaults when there is none."""
    try:
        data = orjson.loads(read_regular(paths.monitor_config))
    except FileNotFoundError:
        return MonitorConfig()
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{paths.name}: monitor.json is not valid JSON ({exc}); set it again") from exc
    return MonitorConfig.from_dict(data)


def write_config(paths: ModelPaths, config: MonitorConfig) -> None:
    """Replace monitor.json. Caller holds the model's lock."""
    atomic_write_json(paths.monitor_config, config.to_dict())


# -- the fleet's counts --------------------------------------------------------------
def counts_path(paths: ModelPaths, ident: str | None = None) -> Any:
    return paths.monitor_dir / f"{ident or process_id()}.json"


def write_counts(paths: ModelPaths, state: Mapping[str, Any]) -> None:
    paths.monitor_dir.mkdir(exist_ok=True)
    atomic_write_json(counts_path(paths), {"time": time.time(), **state}, durable=False)


def remove_counts(paths: ModelPaths) -> None:
    counts_path(paths).unlink(missing_ok=True)


@dataclass
class FleetCounts:
    """Every process's counts of one model, summed."""

    bucket_seconds: float
    cells: dict[CellKey, Cell]
    cumulative: dict[tuple[str, str], tuple[float, Cell]]  # (version, variant) -> (since, cell)
    processes: int


def read_counts(paths: ModelPaths, *, retention: float, bucket_seconds: float, now: float) -> FleetCounts:
    """Sum the counts files younger than ``retention``; remove older ones (their process
    stopped long ago)."""
    merged = FleetCounts(bucket_seconds, {}, {}, 0)
    for data in fresh_process_files(paths.monitor_dir, stale_before=now - retention):
        if data.get("bucket_seconds") != bucket_seconds:
            logger.info("%s: a process's counts in %ss buckets, not %ss; left out", paths.name,
                        data.get("bucket_seconds"), bucket_seconds)  # fmt: skip
            continue
        merged.processes += 1
        for raw in data.get("cells") or []:
            key = (str(raw["version"]), str(raw["variant"]), float(raw["start"]))
            merged.cells.setdefault(key, Cell()).add(Cell.from_dict(raw))
        for raw in data.get("cumulative") or []:
            pair = (str(raw["version"]), str(raw["variant"]))
            since, cell = merged.cumulative.setdefault(pair, (float(raw["since"]), Cell()))
            cell.add(Cell.from_dict(raw))
            merged.cumulative[pair] = (min(since, float(raw["since"])), cell)
    return merged
