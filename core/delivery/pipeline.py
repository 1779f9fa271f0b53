"""A candidate's walk through its model's delivery policy: gate, shadow, rollout.

The serving process holding the model's lease (core.delivery.driver) calls
:meth:`Pipeline.drive` every tick. A version published after the policy was set (by the
CLI, the API, a retrain job: anyone) becomes the candidate: ``candidate.json`` records
where it stands, each stage's start, verdict and figures, and every change of it is a
journaled history entry (actor ``policy``), so the walk survives restarts and a takeover
of the lease by another pod goes on from the file.

- gate: judged at once (metrics against the live version's, and the signature check);
- shadow: started, judged once ``seconds`` passed on the fleet's comparison counts, held
  while fewer than ``min_requests`` were compared (rejected after ``max_hold_seconds``);
- rollout: started with the policy's plan; the rollout driver steps and promotes it, and
  the pipeline reads its outcome from ``rollout.json``.

A failed stage stops its shadow or rollout, leaves the live version alone, and journals
``policy_reject``: the index marks the version ``rejected`` (a later deploy of it makes it
available again). A newer publish while a candidate is in flight supersedes it: its
stage is stopped and ``policy_supersede`` recorded before the newer one starts.

Each stage that starts a control (shadow, rollout) first journals the stage with
``control_started: false``, then starts the control, then sets the flag: a crash between
leaves a flag the next tick settles by looking at the control file, and a control found
gone once started was stopped by a person (the stage fails).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import Any

from modelswap.core.delivery import rollout as ro
from modelswap.core.delivery.control import read_quietly
from modelswap.core.delivery.policy import Policy, ShadowStage, read_policy
from modelswap.core.delivery.shadow import read_shadow, start_shadow, stop_shadow
from modelswap.core.errors import Conflict, IncompatibleSchema, InvalidInput, NotFound, ValidationFailed
from modelswap.core.store import history
from modelswap.core.store import registry as reg
from modelswap.core.store.clock import iso, parse_iso
from modelswap.core.store.fsio import atomic_write_json, read_control
from modelswap.core.store.kernel import Kernel
from modelswap.core.store.layout import ModelPaths
from modelswap.core.store.transitions import schema_change

logger = logging.getLogger(__name__)

ACTOR = "policy"
GATE, SHADOW, ROLLOUT = "gate", "shadow", "rollout"
RUNNING, PROMOTED, REJECTED, SUPERSEDED, ENDED = "running", "promoted", "rejected", "superseded", "ended"
PASS, FAIL, HOLD = "pass", "fail", "hold"

ShadowFigures = Callable[[ModelPaths, str | None, str, str | None], dict[str, Any]]


@dataclass(frozen=True)
class Candidate:
    """``candidate.json``: the newest candidate of the model's policy and where it stands."""

    version: str
    live: str | None  # the live version when it became the candidate
    state: str
    stage: str
    started_at: float
    stage_started_at: float
    policy: Mapping[str, Any]  # the policy's rules when it started (a change applies to the next candidate)
    control_started: bool = False  # the stage's shadow or rollout was started
    held_since: float | None = None
    stages: tuple[Mapping[str, Any], ...] = ()  # each finished stage: stage, started_at, ended_at, verdict, figures
    reason: str = ""
    last_figures: Mapping[str, Any] | None = None  # the running stage's latest figures

    @property
    def active(self) -> bool:
        return self.state == RUNNING

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stages"] = [dict(s) for s in self.stages]
        data["policy"] = dict(self.policy)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Candidate:
        if not isinstance(data, Mapping) or data.get("state") not in (RUNNING, PROMOTED, REJECTED, SUPERSEDED, ENDED):
            raise InvalidInput("not a candidate state")
        held = data.get("held_since")
        return cls(
            str(data["version"]), data.get("live"), str(data["state"]), str(data["stage"]),
            float(data["started_at"]), float(data["stage_started_at"]), dict(data.get("policy") or {}),
            bool(data.get("control_started")), float(held) if held is not None else None,
            tuple(data.get("stages") or ()), str(data.get("reason") or ""), data.get("last_figures"),
        )  # fmt: skip


def read_candidate(paths: ModelPaths) -> Candidate | None:
    return read_control(paths.candidate, Candidate.from_dict, "clear the policy and set it again")


def newest_candidate(kernel: Kernel, paths: ModelPaths, policy: Policy, seen: Candidate | None) -> str | None:
    """The newest version published after the policy was set and after ``seen``'s version,
    still available, while another one is live; None when there is none. With nothing
    live there is nothing to judge a candidate against: a person deploys the first."""
    registry = kernel.load_registry(paths)
    ids = registry.ids()
    if not ids:
        return None
    newest = ids[-1]
    created = str(registry.records[newest].get("created_at", ""))
    if created <= policy.set_at or registry.status_of(newest) != reg.AVAILABLE:
        return None
    if seen is not None:
        if seen.version in registry and ids.index(seen.version) >= ids.index(newest):
            return None
        if seen.version not in registry and created <= iso(datetime.fromtimestamp(seen.started_at, timezone.utc)):
            return None
    live = kernel.current(paths.name)
    return newest if live is not None and live != newest else None


class Pipeline:
    """Moves candidates through their policy; called by the lease holder only."""

    def __init__(self, kernel: Kernel, shadow_figures: ShadowFigures, clock: Callable[[], float]) -> None:
        self.kernel = kernel
        self.shadow_figures = shadow_figures
        self.clock = clock
        self.decisions: list[tuple[str, str]] = []  # (model, action) since the caller last looked: for metrics

    def has_work(self, paths: ModelPaths) -> bool:
        """Whether the model's policy has a candidate to start or to drive (no lock)."""
        candidate = read_quietly(read_candidate, paths)
        if candidate is not None and candidate.active:
            return True
        policy = read_quietly(read_policy, paths)
        return policy is not None and newest_candidate(self.kernel, paths, policy, candidate) is not None

    def drive(self, paths: ModelPaths) -> None:
        candidate = read_quietly(read_candidate, paths)
        policy = read_quietly(read_policy, paths)
        newer = newest_candidate(self.kernel, paths, policy, candidate) if policy is not None else None
        if newer is not None and policy is not None:
            if candidate is not None and candidate.active:
                self.supersede(paths, candidate, newer)
            self.begin(paths, policy, newer)
            return
        if candidate is None or not candidate.active:
            return
        if candidate.stage == ROLLOUT:  # its promotion makes it live: the rollout's outcome says how
            self.drive_rollout(paths, candidate)
        elif self.kernel.current(paths.name) == candidate.version:
            self._stop_control(paths, candidate, f"{candidate.version} was deployed outside the policy")
            self._finish(
                paths, candidate, history.POLICY_PASS, ENDED, f"{candidate.version} went live outside the policy"
            )
        elif candidate.stage == SHADOW:
            self.drive_shadow(paths, candidate)
        elif candidate.stage == GATE:
            self.drive_gate(paths, candidate)

    # -- the start and the gate ------------------------------------------------------------
    def begin(self, paths: ModelPaths, policy: Policy, version: str) -> None:
        now = self.clock()
        live = self.kernel.current(paths.name)
        state = Candidate(version, live, RUNNING, GATE, now, now, policy.rules())
        self._change(paths, history.POLICY_STAGE, state, f"{version} published: the policy's gate judges it",
                     {"stage": GATE, "policy": policy.rules()}, frm=live)  # fmt: skip
        self.drive_gate(paths, state)

    def drive_gate(self, paths: ModelPaths, state: Candidate) -> None:
        """Judge the gate and move on; also for a candidate left at its gate (a crash after
        ``begin`` recorded it, or a judgement that raised), which would otherwise stay there.
        By the policy the candidate began under, as every later stage is: one changed or
        cleared since applies to the next candidate."""
        policy = Policy.from_dict(paths.name, state.policy)
        figures, failure = self.judge_gate(paths.name, policy, state.live, state.version)
        if failure is not None:
            self._reject(paths, state, f"gate: {failure}", figures)
            return
        state = self._passed(paths, state, figures, "gate passed")
        self._start_stage(paths, state, SHADOW if policy.shadow is not None else ROLLOUT)

    def judge_gate(
        self, model: str, policy: Policy, live: str | None, version: str
    ) -> tuple[dict[str, Any], str | None]:
        """(figures, why it failed or None): the signature check, then the metric."""
        figures: dict[str, Any] = {"live": live}
        if live is None:
            return figures, "nothing is live to compare with (deploy a first version by hand)"
        try:
            figures["schema"] = schema_change(self.kernel, model, live, version, force=False, what=f"{version}") or {}
        except (IncompatibleSchema, ValidationFailed, NotFound) as exc:  # the candidate's own fault: rejected
            return figures, exc.message
        if policy.gate is None:
            return figures, None
        metric, registry = policy.gate.metric, self.kernel.registry(model)
        new, old = registry.get(version), registry.get(live)
        value = new.metrics.get(metric) if new else None
        before = old.metrics.get(metric) if old else None
        figures.update(metric=metric, candidate=value, live_value=before, max_drop=policy.gate.max_drop)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return figures, f"{version} has no metric {metric!r}"
        if not isinstance(before, (int, float)) or isinstance(before, bool):
            figures["note"] = f"the live version has no {metric}: not judged"
            return figures, None
        lower = reg.lower_is_better(metric)
        drop = (value - before) if lower else (before - value)
        figures["drop"] = round(drop, 12)
        if drop > policy.gate.max_drop:
            worse = "rose" if lower else "dropped"
            return figures, f"{metric} {worse} from {before:g} to {value:g} (max_drop {policy.gate.max_drop:g})"
        return figures, None

    def _start_stage(self, paths: ModelPaths, state: Candidate, stage: str) -> None:
        """Journal and start ``stage`` (the shadow or the rollout) of the candidate."""
        policy = Policy.from_dict(paths.name, state.policy)
        plan = policy.shadow.to_dict() if stage == SHADOW and policy.shadow else policy.plan(state.version).to_dict()
        now = self.clock()
        state = replace(state, stage=stage, stage_started_at=now, control_started=False, held_since=None,
                        last_figures=None)  # fmt: skip
        self._change(paths, history.POLICY_STAGE, state, f"{stage} starts", {"stage": stage, "plan": plan})
        self._start_control(paths, state)

    def _start_control(self, paths: ModelPaths, state: Candidate) -> Candidate | None:
        """Start the stage's shadow or rollout; the candidate with its flag set, or None when
        it could not start (rejected)."""
        policy = Policy.from_dict(paths.name, state.policy)
        reason = f"policy: {state.stage} of {state.version}"
        try:
            if state.stage == SHADOW and policy.shadow is not None:
                start_shadow(self.kernel, paths.name, state.version, policy.shadow.fraction, actor=ACTOR, reason=reason)
            else:
                ro.start_rollout(self.kernel, paths.name, policy.plan(state.version), actor=ACTOR, reason=reason)
        except (
            Conflict,
            InvalidInput,
            ValidationFailed,
            NotFound,
        ) as exc:  # the candidate cannot run: rejected, not retried
            self._reject(paths, state, f"{state.stage} could not start: {exc.message}", None)
            return None
        flagged = replace(state, control_started=True)
        self._write(paths, flagged)
        return flagged

    def _settle_start(self, paths: ModelPaths, state: Candidate, running: bool) -> Candidate | None:
        """A stage whose flag is unset: its control is running (crash before the flag), or start it."""
        if running:
            flagged = replace(state, control_started=True)
            self._write(paths, flagged)
            return flagged
        return self._start_control(paths, state)

    # -- the shadow ------------------------------------------------------------------------
    def drive_shadow(self, paths: ModelPaths, state: Candidate) -> None:
        shadow = read_quietly(read_shadow, paths.shadow)
        ours = shadow is not None and shadow.version == state.version
        if not state.control_started:
            settled = self._settle_start(paths, state, ours)
            if settled is None:
                return
            state = settled
            shadow = read_quietly(read_shadow, paths.shadow)
            ours = shadow is not None and shadow.version == state.version
        if not ours or shadow is None:
            self._reject(paths, state, "shadow: stopped or replaced outside the policy", state.last_figures)
            return
        stage = Policy.from_dict(paths.name, state.policy).shadow or ShadowStage()
        now = self.clock()
        started = parse_iso(shadow.started_at).timestamp()
        if now - started < stage.seconds:
            return
        stats = self.shadow_figures(paths, self.kernel.current(paths.name), state.version, shadow.started_at)
        verdict, figures = judge_shadow(stage, stats)
        if verdict == HOLD:
            held = now - (state.held_since or now)
            if state.held_since is not None and held >= stage.max_hold_seconds:
                why = (
                    f"shadow: inconclusive: {figures['requests']} requests compared, fewer than min_requests "
                    f"{stage.min_requests}, held {held:.0f}s (max_hold_seconds {stage.max_hold_seconds:g})"
                )
                self._stop_control(paths, state, why)
                self._reject(paths, state, why, figures)
            elif state.held_since is None:
                self._write(paths, replace(state, held_since=now, last_figures=figures))
            return
        if verdict == FAIL:
            why = f"shadow: {figures['failed']}"
            self._stop_control(paths, state, why)
            self._reject(paths, state, why, figures)
            return
        self._stop_control(paths, state, "shadow passed")
        state = self._passed(paths, state, figures, "shadow passed")
        self._start_stage(paths, state, ROLLOUT)

    # -- the rollout -----------------------------------------------------------------------
    def drive_rollout(self, paths: ModelPaths, state: Candidate) -> None:
        rollout = read_quietly(ro.read_rollout, paths.rollout)
        ours = (
            rollout is not None
            and rollout.plan.version == state.version
            and rollout.started_at >= state.stage_started_at
        )
        if not state.control_started:
            settled = self._settle_start(paths, state, ours)
            if settled is None:
                return
            state = settled
            rollout = read_quietly(ro.read_rollout, paths.rollout)
            ours = rollout is not None and rollout.plan.version == state.version
        if not ours or rollout is None:
            self._reject(paths, state, "rollout: stopped or replaced outside the policy", None)
            return
        figures = {"step_percent": rollout.percent, "state": rollout.state, "judgement": rollout.last_judgement}
        if rollout.state == ro.PROMOTED:
            self._finish(paths, state, history.POLICY_PASS, PROMOTED, f"rollout passed every step: {state.version} "
                         "is live", figures=figures)  # fmt: skip
        elif rollout.state == ro.ABORTED:
            self._reject(paths, state, f"rollout: {rollout.ended}", figures)
        elif state.last_figures != figures:
            self._write(paths, replace(state, last_figures=figures))

    # -- supersede, reject, finish ---------------------------------------------------------
    def supersede(self, paths: ModelPaths, state: Candidate, newer: str) -> None:
        why = f"superseded by {newer}, published while {state.version} was at its {state.stage}"
        self._stop_control(paths, state, why)
        self._finish(paths, state, history.POLICY_SUPERSEDE, SUPERSEDED, why, to=newer)

    def _stop_control(self, paths: ModelPaths, state: Candidate, why: str) -> None:
        """Stop the stage's shadow or rollout if it still runs (a person may have ended it)."""
        try:
            if state.stage == SHADOW:
                stop_shadow(self.kernel, paths.name, actor=ACTOR, reason=why, only_version=state.version)
            elif state.stage == ROLLOUT:
                rollout = read_quietly(ro.read_rollout, paths.rollout)
                if rollout is not None and rollout.active and rollout.plan.version == state.version:
                    ro.change_rollout(self.kernel, paths.name, history.ROLLOUT_ABORT, actor=ACTOR, reason=why)
                    self.decisions.append((paths.name, history.ROLLOUT_ABORT))
        except Conflict:
            pass  # already stopped

    def _reject(self, paths: ModelPaths, state: Candidate, why: str, figures: Mapping[str, Any] | None) -> None:
        self._finish(paths, state, history.POLICY_REJECT, REJECTED, why, figures=figures)

    def _passed(self, paths: ModelPaths, state: Candidate, figures: Mapping[str, Any], why: str) -> Candidate:
        now = self.clock()
        record = {"stage": state.stage, "started_at": state.stage_started_at, "ended_at": now, "verdict": PASS,
                  "figures": dict(figures), "reason": why}  # fmt: skip
        passed = replace(state, stages=(*state.stages, record), last_figures=None, held_since=None)
        self._change(paths, history.POLICY_PASS, passed, why, {"stage": state.stage, "figures": dict(figures)})
        return passed

    def _finish(self, paths: ModelPaths, state: Candidate, action: str, end: str, why: str, *,
                figures: Mapping[str, Any] | None = None, to: str | None = None) -> None:  # fmt: skip
        now = self.clock()
        verdict = {history.POLICY_REJECT: FAIL, history.POLICY_PASS: PASS}.get(action, end)
        record = {"stage": state.stage, "started_at": state.stage_started_at, "ended_at": now, "verdict": verdict,
                  "figures": dict(figures or {}), "reason": why}  # fmt: skip
        final = replace(state, state=end, stages=(*state.stages, record), reason=why, held_since=None)
        self._change(paths, action, final, why, {"stage": state.stage, "figures": dict(figures or {})},
                     frm=state.version if to else None, to=to)  # fmt: skip
        logger.info("policy %s: %s %s: %s", paths.name, state.version, end, why)

    # -- writes ------------------------------------------------------------------------------
    def _change(self, paths: ModelPaths, action: str, state: Candidate, why: str, details: Mapping[str, Any], *,
                frm: str | None = None, to: str | None = None) -> None:  # fmt: skip
        """Journal ``action`` and write ``candidate.json`` as one change, under the model's lock."""
        with self.kernel.locked(paths.name):
            now: datetime = self.kernel.clock()
            live = self.kernel.current(paths.name)
            entry = history.HistoryEntry(iso(now), action, ACTOR, frm if frm is not None else live,
                                         to or state.version, why, details)  # fmt: skip
            self.kernel.commit(paths, self.kernel.load_registry(paths), entry,
                               lambda: atomic_write_json(paths.candidate, state.to_dict()))  # fmt: skip
        self.decisions.append((paths.name, action))

    def _write(self, paths: ModelPaths, state: Candidate) -> None:
        """Progress within a stage (a flag, a hold, the latest figures): no history entry."""
        with self.kernel.locked(paths.name):
            atomic_write_json(paths.candidate, state.to_dict())


def judge_shadow(stage: ShadowStage, stats: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(pass, fail or hold, figures) of a shadow's fleet comparison."""
    requests = int(stats.get("requests") or 0)
    agreement, error_rate = stats.get("agreement"), stats.get("error_rate")
    figures: dict[str, Any] = {"requests": requests, "compared": stats.get("compared"), "rows": stats.get("rows"),
                               "agreement": agreement, "error_rate": error_rate, "psi": stats.get("psi"),
                               "min_requests": stage.min_requests, "min_agreement": stage.min_agreement,
                               "max_error_rate": stage.max_error_rate}  # fmt: skip
    if requests < stage.min_requests:
        return HOLD, figures
    failed = []
    if stage.max_error_rate is not None and isinstance(error_rate, (int, float)) and error_rate > stage.max_error_rate:
        failed.append(f"error rate {error_rate:.4f} > max_error_rate {stage.max_error_rate:g}")
    if stage.min_agreement is not None and isinstance(agreement, (int, float)) and agreement < stage.min_agreement:
        failed.append(f"agreement {agreement:.4f} < min_agreement {stage.min_agreement:g}")
    figures["failed"] = "; ".join(failed)
    return (FAIL if failed else PASS), figures


def candidate_view(kernel: Kernel, model: str) -> dict[str, Any]:
    """``GET /v1/models/{m}/policy``: the policy, and the candidate with its stage, figures and verdicts."""
    paths = kernel.existing(model)
    policy = read_policy(paths)
    candidate = read_quietly(read_candidate, paths)
    return {
        "model": model,
        "policy": policy.to_dict() if policy is not None else None,
        "live": kernel.current(model),
        "candidate": candidate.to_dict() if candidate is not None else None,
    }
