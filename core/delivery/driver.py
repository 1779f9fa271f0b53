"""Progressive delivery in a serving process: the driver of stepped rollouts and watched
deploys, the lease that makes one process drive each model, and the views of shadow,
rollout and watch.

Every serving process runs :meth:`Delivery.tick` from its heartbeat thread. For a model
with an active rollout or watch, it takes (or renews) the model's lease: ``.lease`` on the
volume names its holder and an expiry, taken under the model's lock only when absent,
expired or already ours, renewed by its holder well before it runs out. So exactly one
process judges and acts at a time, with 1 or 30 pods; when the holder dies, another takes
over within ``lease_seconds`` and goes on from ``rollout.json``. Every decision is a
journaled store change (core.delivery.rollout, core.delivery.watched_deploy), so the files, not a process's memory,
say where a rollout stands.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from modelswap.core.delivery import rollout as ro
from modelswap.core.delivery import watched_deploy as wt
from modelswap.core.delivery.control import read_quietly
from modelswap.core.delivery.gates import FAIL, HOLD, describe, judge, prediction_psi
from modelswap.core.delivery.pipeline import Pipeline
from modelswap.core.delivery.shadow import read_shadow
from modelswap.core.delivery.shadow_runner import ShadowRunner, fleet_summary
from modelswap.core.errors import Conflict, ModelswapError, UnsafePath
from modelswap.core.monitoring.counts import Cell
from modelswap.core.monitoring.fleet_counts import FleetCounts, read_counts
from modelswap.core.serving.fleet import process_id
from modelswap.core.store import history, transitions
from modelswap.core.store.fsio import atomic_write_json, read_regular
from modelswap.core.store.layout import ModelPaths

if TYPE_CHECKING:
    from modelswap.core.monitoring.monitor import Monitor
    from modelswap.core.operations import Operations

logger = logging.getLogger(__name__)


# -- the lease ---------------------------------------------------------------------------
def read_lease(paths: ModelPaths) -> dict[str, Any] | None:
    try:
        data = orjson.loads(read_regular(paths.lease))
    except (FileNotFoundError, orjson.JSONDecodeError, UnsafePath):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("expires"), (int, float)) else None


class Lease:
    """This process's hold on the models it drives."""

    def __init__(self, store: Any, seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.seconds = seconds
        self.clock = clock
        self.me = process_id()
        self._held: dict[str, float] = {}  # model -> expiry we wrote

    def hold(self, paths: ModelPaths) -> bool:
        """True when this process holds the model's lease now (taking or renewing it)."""
        now = self.clock()
        expiry = self._held.get(paths.name)
        if expiry is not None and now < expiry - self.seconds / 3:
            return True
        if expiry is not None and now < expiry:  # ours and still valid: renew in place
            current = read_lease(paths)
            if current is not None and current.get("holder") == self.me:
                return self._write(paths, now)
        seen = read_lease(paths)
        if seen is not None and seen.get("holder") != self.me and seen["expires"] > now:
            self._held.pop(paths.name, None)
            return False  # another process drives it: no lock taken, every tick of every pod
        with self.store.locked(paths.name):
            current = read_lease(paths)
            if current is not None and current.get("holder") != self.me and current["expires"] > now:
                self._held.pop(paths.name, None)
                return False
            if current is not None and current.get("holder") != self.me:
                logger.warning("model %s: taking over the lease of %s (expired)", paths.name, current.get("holder"))
            return self._write(paths, now)

    def _write(self, paths: ModelPaths, now: float) -> bool:
        expiry = now + self.seconds
        atomic_write_json(paths.lease, {"holder": self.me, "expires": expiry, "since": now}, durable=False)
        self._held[paths.name] = expiry
        return True

    def release(self, paths: ModelPaths) -> None:
        if self._held.pop(paths.name, None) is None:
            return
        current = read_lease(paths)
        if current is not None and current.get("holder") == self.me:
            paths.lease.unlink(missing_ok=True)


# -- the driver ---------------------------------------------------------------------------
class Delivery:
    def __init__(
        self,
        ops: Operations,
        monitor: Monitor,
        shadows: ShadowRunner,
        *,
        lease_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ops = ops
        self.store = ops.store
        self.monitor = monitor
        self.shadows = shadows
        self.clock = clock
        self.lease = Lease(ops.store, lease_seconds, clock)
        self._last_shadow_flush = 0.0
        self._idle: dict[str, int] = {}  # model -> its directory's mtime when nothing needed driving
        self.pipeline = Pipeline(ops.store, self.shadow_figures, clock)

    def shadow_figures(
        self, paths: ModelPaths, live: str | None, version: str, started_at: str | None
    ) -> dict[str, Any]:
        """The fleet's comparison of a shadow, this process's own counts flushed first."""
        self.shadows.flush(paths)
        return fleet_summary(paths, live, version, started_at, stale=self.monitor.retention)

    def tick(self) -> None:
        """From the heartbeat thread: flush shadow counts when due; drive what needs it."""
        now = self.clock()
        flush = now - self._last_shadow_flush >= self.monitor.flush_every
        if flush:
            self._last_shadow_flush = now
        serving = self.ops.serving
        for name, slot in list(serving.slots.items() if serving is not None else []):
            paths = slot.paths
            try:
                if flush and name in self.shadows.models():
                    self.shadows.forget(name, slot.version)
                    self.shadows.flush(paths)
                self.drive(paths)
            except (ModelswapError, OSError) as exc:
                logger.warning("model %s: progressive delivery: %s", name, getattr(exc, "message", exc))
            except Exception:  # one model's damaged state must not stop the others' rollouts
                logger.exception("model %s: progressive delivery failed", name)

    def drive(self, paths: ModelPaths) -> None:
        try:
            seen = paths.dir.stat().st_mtime_ns  # any file written into the model directory changes it
        except FileNotFoundError:
            return
        if self._idle.get(paths.name) == seen:
            return  # nothing to drive last time, and no file in the directory changed since
        rollout = read_quietly(ro.read_rollout, paths.rollout)
        watch = read_quietly(wt.read_watch, paths.watch)
        running = rollout is not None and rollout.state == ro.RUNNING
        watching = watch is not None and watch.state == wt.WATCHING
        policy = paths.policy.exists() or paths.candidate.exists()
        candidate = policy and self.pipeline.has_work(paths)
        if not running and not watching and not candidate:
            self.lease.release(paths)
            self._idle[paths.name] = seen
            return
        self._idle.pop(paths.name, None)
        if not self.lease.hold(paths):
            return
        if candidate:  # first: a candidate's stage may start the rollout driven below (its outcome: next tick)
            self.drive_policy(paths)
            rollout = read_quietly(ro.read_rollout, paths.rollout)
            running = rollout is not None and rollout.state == ro.RUNNING
        if running and rollout is not None:
            self.drive_rollout(paths, rollout)
        if watching and watch is not None:
            self.drive_watch(paths, watch)

    def drive_policy(self, paths: ModelPaths) -> None:
        try:
            self.pipeline.drive(paths)
        finally:
            for model, action in self.pipeline.decisions:
                self.ops.count(model, action)
            if self.pipeline.decisions:
                self.ops.sync(paths.name)
            self.pipeline.decisions.clear()

    # -- the rollout -------------------------------------------------------------------
    def drive_rollout(self, paths: ModelPaths, state: ro.Rollout) -> None:
        model, version = paths.name, state.plan.version
        if self.store.current(model) == version:
            ro.finish_promoted(self.store, model)
            return
        if not ro.ensure_canary(self.store, model, state):
            self._abort(model, state, "the canary was stopped or replaced outside the rollout", None)
            return
        now = self.clock()
        if now - state.step_started_at < state.plan.step_seconds:
            return
        judgement = self.judge(paths, state, now)
        verdict = judgement["verdict"]
        if verdict == HOLD:
            held = now - (state.held_since or now)
            if state.held_since is not None and held >= state.plan.max_hold_seconds:
                n = judgement["canary"]["requests"]
                reason = (f"inconclusive: {n} canary requests at {state.percent:g}%, fewer than min_requests "
                          f"{state.plan.min_requests}, held {held:.0f}s past step_seconds (max_hold_seconds "
                          f"{state.plan.max_hold_seconds:g})")  # fmt: skip
                self._abort(model, state, reason, judgement)
            else:
                ro.change_rollout(self.store, model, history.ROLLOUT_HOLD, actor=ro.ACTOR, expect=state,
                                  reason=f"hold: {judgement['canary']['requests']} of {state.plan.min_requests} "
                                  "canary requests", details=judgement, journal=state.held_since is None)  # fmt: skip
                if state.held_since is None:
                    self.ops.count(model, history.ROLLOUT_HOLD)
        elif verdict == FAIL:
            self._abort(model, state, f"gate failed at {state.percent:g}%: {describe(judgement)}", judgement)
        elif state.step + 1 < len(state.plan.steps):
            ro.change_rollout(self.store, model, history.ROLLOUT_STEP, actor=ro.ACTOR, expect=state,
                              reason=f"step {state.percent:g}% passed", details=judgement)  # fmt: skip
            self.ops.count(model, history.ROLLOUT_STEP)
            self.ops.sync(model)
        else:
            self._promote(model, state, judgement)

    def _promote(self, model: str, state: ro.Rollout, judgement: dict[str, Any]) -> None:
        version = state.plan.version

        def choose(registry: Any, current: str | None) -> str:
            now = read_quietly(ro.read_rollout, self.store.existing(model).rollout)
            if now is None or now.state != ro.RUNNING or now.step != state.step:
                raise Conflict(f"the rollout of {model} changed while promoting")
            return version

        # force: the schema was checked (or a change accepted) when the rollout started
        transitions.move_current(self.store, model, choose, history.PROMOTE, ro.ACTOR,
                                 f"rollout: every step passed ({', '.join(f'{s:g}%' for s in state.plan.steps)})",
                                 force=True, details={"judgement": judgement})  # fmt: skip
        ro.finish_promoted(self.store, model, judgement)
        self.ops.count(model, "rollout_promote")
        self.ops.sync(model)

    def _abort(self, model: str, state: ro.Rollout, reason: str, judgement: dict[str, Any] | None) -> None:
        ro.change_rollout(self.store, model, history.ROLLOUT_ABORT, actor=ro.ACTOR, expect=state,
                          reason=reason, details=judgement)  # fmt: skip
        self.ops.count(model, history.ROLLOUT_ABORT)
        self.ops.sync(model)

    def counts(self, paths: ModelPaths, now: float) -> FleetCounts:
        """The fleet's monitoring counts, this process's own flushed first."""
        self.monitor.tick(force_flush=True)
        step = self.monitor.recorder.bucket_seconds
        return read_counts(paths, retention=self.monitor.retention, bucket_seconds=step, now=now)

    def judge(self, paths: ModelPaths, state: ro.Rollout, now: float) -> dict[str, Any]:
        counts = self.counts(paths, now)
        live = self.store.current(paths.name)
        canary = _since(counts, state.plan.version, "canary", state.step_started_at)
        stable = _since(counts, live, "stable", state.started_at)
        if stable.requests + stable.failed == 0:  # the last step sends stable nothing: its earlier traffic
            stable = _since(counts, live, "stable", 0.0)
        live_ref = self.monitor.reference(paths.name, live) if live else None
        ref = self.monitor.reference(paths.name, state.plan.version)
        shift = prediction_psi(
            stable.prediction, live_ref.prediction if live_ref else None,
            canary.prediction, ref.prediction if ref else None,
        )  # fmt: skip
        shadow = fleet_summary(paths, live, state.plan.version, None, stale=self.monitor.retention)
        result = judge(state.plan.gates, state.plan.min_requests, canary, stable, shift=shift, shadow=shadow)
        return {**result, "step_percent": state.percent, "time": now}

    # -- the watch ---------------------------------------------------------------------
    def drive_watch(self, paths: ModelPaths, watch: wt.Watch) -> None:
        model = paths.name
        current = self.store.current(model)
        if current != watch.version:
            wt.end_watch(self.store, model, wt.ENDED, expect=watch, actor=wt.ACTOR,
                         reason=f"{current} went live during the watch")  # fmt: skip
            return
        now = self.clock()
        counts = self.counts(paths, now)
        new = _since(counts, watch.version, "stable", watch.started_at)
        baseline = _since(counts, watch.previous, "stable", 0.0) if watch.previous else Cell()
        figures = wt.breach(watch, new, baseline)
        if figures is not None:
            self._trip(paths, watch, figures, now)
        elif now >= watch.until:
            answered = new.requests + new.failed
            wt.end_watch(self.store, model, wt.PASSED, expect=watch, actor=wt.ACTOR,
                         reason=f"no breach in {watch.plan.seconds:g}s ({answered} requests)")  # fmt: skip
            self.ops.count(model, history.WATCH_PASS)

    def _trip(self, paths: ModelPaths, watch: wt.Watch, figures: dict[str, Any], now: float) -> None:
        model = paths.name
        reason = f"watch: {figures['breach']} over {figures['requests']} requests"
        tripped = replace(watch, state=wt.TRIPPED, ended=reason, figures={**figures, "detected_at": now})

        def choose(registry: Any, current: str | None) -> str:
            if current != watch.version:
                raise Conflict(f"{model}: {watch.version} is no longer live")
            target = watch.previous or self.store.rollback_target(model, registry, current)
            if target is None:
                raise Conflict(f"{model}: no earlier version to roll back to")
            return target

        transitions.move_current(self.store, model, choose, history.ROLLBACK, wt.ACTOR, reason, force=True,
                                 details={"watch": dict(tripped.figures or {})},
                                 also=lambda current, target: (paths.watch, tripped.to_dict()))  # fmt: skip
        logger.warning("model %s: %s; rolled back to %s", model, reason, watch.previous)
        self.ops.count(model, "watch_rollback")
        self.ops.sync(model)


def _since(counts: FleetCounts, version: str | None, variant: str, since: float) -> Cell:
    """The sum of ``(version, variant)``'s buckets from the one holding ``since`` on."""
    total = Cell()
    if version is None:
        return total
    start = math.floor(since / counts.bucket_seconds) * counts.bucket_seconds
    for (v, var, bucket), cell in counts.cells.items():
        if v == version and var == variant and bucket >= start:
            total.add(cell)
    return total


# -- views -----------------------------------------------------------------------------
def shadow_view(store: Any, model: str, *, stale: float, runner: ShadowRunner | None = None) -> dict[str, Any]:
    paths = store.existing(model)
    config = read_shadow(paths.shadow)
    live = store.current(model)
    stats = fleet_summary(paths, live, config.version, config.started_at, stale=stale) if config else None
    return {
        "model": model,
        "running": config is not None,
        "live": live,
        "version": config.version if config else None,
        "fraction": config.fraction if config else None,
        "config": config.to_dict() if config else None,
        "agreement": stats["agreement"] if stats else None,
        "stats": stats,
        "this_process": {"dropped": runner.dropped.get(model, 0)} if runner is not None else None,
    }


def rollout_view(store: Any, model: str) -> dict[str, Any]:
    paths = store.existing(model)
    state = ro.read_rollout(paths.rollout)
    lease = read_lease(paths)
    return {
        "model": model,
        "running": bool(state and state.active),
        **(state.to_dict() if state else {"version": None, "state": None}),
        "driver": lease.get("holder") if lease and state and state.active else None,
    }


def watch_view(store: Any, model: str) -> dict[str, Any]:
    paths = store.existing(model)
    watch = wt.read_watch(paths.watch)
    return {"model": model, "watching": bool(watch and watch.state == wt.WATCHING),
            **(watch.to_dict() if watch else {"version": None, "state": None})}  # fmt: skip
