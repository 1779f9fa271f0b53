"""The watched deploy: for ``seconds`` after a deploy, the new live version is compared with
its predecessor's baseline, and a breach rolls back by itself (actor ``watch``).

This is the circuit breaker of the users' wish list, tied to rollback instead of failing
requests: it trips on the error rate (the new version's server errors above the
predecessor's rate plus ``max_error_rate``) and, when asked, on latency (p99 above
``max_latency_ratio`` times the predecessor's), once the new version answered
``min_requests`` requests. ``watch.json`` holds the watch; it is written with the deploy as
one change and stays after the watch ends (``passed``, ``tripped``, ``ended``), so on-call
can read what happened. A tripped watch refuses to deploy the same version again until
``reset`` (a person looked at it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modelswap.core.delivery.control import read_clearing
from modelswap.core.delivery.gates import error_rate
from modelswap.core.errors import Conflict, InvalidInput
from modelswap.core.monitoring.counts import Cell
from modelswap.core.store import history
from modelswap.core.store.clock import default_actor, iso
from modelswap.core.store.fsio import atomic_write_json, read_control
from modelswap.core.store.kernel import Kernel
from modelswap.core.store.transitions import Also

logger = logging.getLogger(__name__)

WATCHING, PASSED, TRIPPED, ENDED, RESET = "watching", "passed", "tripped", "ended", "reset"
ACTOR = "watch"
FIELDS = ("watch", "max_error_rate", "max_latency_ratio", "min_requests")


@dataclass(frozen=True)
class WatchPlan:
    seconds: float
    max_error_rate: float = 0.02
    max_latency_ratio: float | None = None
    min_requests: int = 50

    def to_dict(self) -> dict[str, Any]:
        return {
            "watch": self.seconds,
            "max_error_rate": self.max_error_rate,
            "max_latency_ratio": self.max_latency_ratio,
            "min_requests": self.min_requests,
        }

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> WatchPlan | None:
        """The watch a deploy asks for (``watch`` seconds and thresholds), or None."""
        seconds = data.get("watch")
        if seconds is None:
            if any(data.get(k) is not None for k in FIELDS[1:]):
                raise InvalidInput("max_error_rate, max_latency_ratio and min_requests need 'watch' (seconds)")
            return None
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= 7 * 86400:
            raise InvalidInput("watch must be a number of seconds in (0, 604800]")
        rate = data.get("max_error_rate", 0.02)
        rate = 0.02 if rate is None else rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise InvalidInput("max_error_rate must be a number in [0, 1)")
        ratio = data.get("max_latency_ratio")
        if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or ratio < 1):
            raise InvalidInput("max_latency_ratio must be a number of at least 1")
        minimum = data.get("min_requests", 50)
        minimum = 50 if minimum is None else minimum
        if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
            raise InvalidInput("min_requests must be a whole number of at least 1")
        return cls(float(seconds), float(rate), float(ratio) if ratio is not None else None, minimum)


@dataclass(frozen=True)
class Watch:
    """``watch.json``."""

    plan: WatchPlan
    version: str
    previous: str | None
    started_at: float
    state: str = WATCHING
    ended: str = ""
    figures: Mapping[str, Any] | None = None

    @property
    def until(self) -> float:
        return self.started_at + self.plan.seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.plan.to_dict(),
            "version": self.version,
            "previous": self.previous,
            "started_at": self.started_at,
            "until": self.until,
            "state": self.state,
            "ended": self.ended,
            "figures": dict(self.figures) if self.figures is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Watch:
        if not isinstance(data, Mapping) or data.get("state") not in (WATCHING, PASSED, TRIPPED, ENDED, RESET):
            raise InvalidInput("not a watch state")
        plan = WatchPlan.from_fields(data)
        if plan is None:
            raise InvalidInput("a watch without seconds")
        return cls(plan, str(data["version"]), data.get("previous"), float(data["started_at"]),
                   str(data["state"]), str(data.get("ended", "")), data.get("figures"))  # fmt: skip


def read_watch(path: Path) -> Watch | None:
    """``watch.json``, or None when absent; a damaged file raises InvalidInput naming it."""
    return read_control(path, Watch.from_dict, "reset the watch to remove it")


def watch_file(kernel: Kernel, model: str, plan: WatchPlan) -> Also:
    """The ``also`` of a watched deploy (see :meth:`modelswap.core.store.store.Store.deploy`):
    ``watch.json`` for the move from ``current`` to ``chosen``, written with it as one change.
    Conflict when the version is live already: a watch needs a predecessor to compare with."""
    paths = kernel.existing(model)

    def also(current: str | None, chosen: str) -> tuple[Path, Any]:
        if current == chosen:
            raise Conflict(f"{model} {chosen} is already live: a watch needs a version to compare with")
        return paths.watch, Watch(plan, chosen, current, kernel.clock().timestamp()).to_dict()

    return also


def check_not_tripped(kernel: Kernel, model: str, version: str) -> None:
    """Conflict when the last watch of ``model`` tripped on ``version`` and was not reset."""
    try:
        watch = read_watch(kernel.existing(model).watch)
    except InvalidInput:
        return
    if watch is not None and watch.state == TRIPPED and watch.version == version:
        raise Conflict(
            f"the watch rolled {model} {version} back ({watch.ended}); "
            f"`modelswap watch reset {model}` once it is understood, then deploy again"
        )


def breach(watch: Watch, new: Cell, baseline: Cell) -> dict[str, Any] | None:
    """The figures of a breach of ``watch`` by the new version's counts, or None."""
    answered = new.requests + new.failed
    if answered < watch.plan.min_requests:
        return None
    rate, base = error_rate(new) or 0.0, error_rate(baseline) or 0.0
    figures = {"requests": answered, "error_rate": rate, "baseline_error_rate": base,
               "p99_ms": new.p99_ms(), "baseline_p99_ms": baseline.p99_ms()}  # fmt: skip
    if rate > base + watch.plan.max_error_rate:
        return {**figures, "breach": f"error rate {rate:.2%} > {base:.2%} + {watch.plan.max_error_rate:.2%}"}
    ratio, p99, base_p99 = watch.plan.max_latency_ratio, new.p99_ms(), baseline.p99_ms()
    if ratio is not None and p99 is not None and base_p99 and p99 > ratio * base_p99:
        return {**figures, "breach": f"p99 {p99:.1f} ms > {ratio:g} x {base_p99:.1f} ms"}
    return None


def end_watch(
    kernel: Kernel, model: str, state: str, *, reason: str, expect: Watch | None = None,
    figures: Mapping[str, Any] | None = None, actor: str | None = None,
) -> Watch:  # fmt: skip
    """Set the watch's final state (passed, ended, reset) with its history entry."""
    paths = kernel.existing(model)
    with kernel.locked(model):
        if state == RESET:  # a damaged file: the reset removes it
            watch = read_clearing(paths.watch, read_watch, kind="watch", model=model)
        else:
            try:
                watch = read_watch(paths.watch)
            except InvalidInput:
                watch = None
        if watch is None or (expect is not None and (watch.version, watch.state) != (expect.version, expect.state)):
            raise Conflict(f"no such watch of {model} (it changed meanwhile)")
        if state != RESET and watch.state != WATCHING:
            raise Conflict(f"the watch of {model} already {watch.state}")
        new = replace(watch, state=state, ended=reason, figures=figures or watch.figures)
        action = {PASSED: history.WATCH_PASS, RESET: history.WATCH_RESET}.get(state)
        if action is None:
            atomic_write_json(paths.watch, new.to_dict())
        else:
            entry = history.HistoryEntry(iso(kernel.clock()), action, actor or default_actor(), watch.version,
                                         kernel.current(model), reason, dict(figures or {}))  # fmt: skip
            kernel.commit(
                paths, kernel.load_registry(paths), entry, lambda: atomic_write_json(paths.watch, new.to_dict())
            )
    logger.info("watch %s: %s %s (%s)", model, watch.version, state, reason)
    return new
