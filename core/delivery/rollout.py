"""The stepped rollout: its plan and state (``rollout.json``), its store verbs, and the
judgement of one step.

A rollout is a canary whose fraction a serving process moves through ``steps`` (percent),
each held for at least ``step_seconds`` and ``min_requests`` canary requests, then judged
by its gates on that step's counts (core.delivery.driver drives it). Pass: the next step, or the
promotion after the last; fail: abort (canary removed); too little traffic: hold, and
abort after ``max_hold_seconds``: a rollout never advances on no data.

``rollout.json`` is the state on the volume, so a rollout survives restarts and any
serving process can carry it on; it stays after the rollout ends (``promoted`` or
``aborted``) so the outcome can be read, and a new start replaces it. Every change of the
canary is journaled with the file write as one change, like a canary start.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from modelswap.core.delivery.abtest import CanaryConfig, read_canary
from modelswap.core.delivery.control import Control, Start, start_controlled
from modelswap.core.errors import Conflict, InvalidInput
from modelswap.core.store import history
from modelswap.core.store.clock import default_actor, iso
from modelswap.core.store.fsio import atomic_write_json, read_control, write_then
from modelswap.core.store.ids import validate_version_id
from modelswap.core.store.kernel import Kernel
from modelswap.core.store.layout import ModelPaths
from modelswap.core.store.transitions import take_canary_file

logger = logging.getLogger(__name__)

RUNNING, PAUSED, PROMOTED, ABORTED = "running", "paused", "promoted", "aborted"
ACTOR = "rollout"
PLAN_FIELDS = {"version", "steps", "step_seconds", "min_requests", "max_hold_seconds", "gates"}
GATE_DEFAULTS: dict[str, float | None] = {
    "max_error_increase": 0.01,  # canary error rate - stable error rate
    "max_latency_ratio": 1.5,  # canary p99 / stable p99 ...
    "latency_slack_ms": 25.0,  # ... judged only when canary p99 exceeds stable's by more than this
    "max_psi": 0.2,  # PSI of the canary's predictions against stable's
    "min_agreement": 0.9,  # a shadow's agreement, when the version ran as a shadow
    "max_quality_drop": 0.05,  # live accuracy (or relative MAE) from feedback, canary vs stable
}


def _number(data: Mapping[str, Any], name: str, default: float, *, low: float, high: float = math.inf) -> float:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidInput(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Plan:
    """What the rollout was asked to do."""

    version: str
    steps: tuple[float, ...] = (5, 25, 50, 100)
    step_seconds: float = 300.0
    min_requests: int = 200
    max_hold_seconds: float = 3600.0
    gates: Mapping[str, float | None] = field(default_factory=lambda: dict(GATE_DEFAULTS))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "steps": list(self.steps),
            "step_seconds": self.step_seconds,
            "min_requests": self.min_requests,
            "max_hold_seconds": self.max_hold_seconds,
            "gates": dict(self.gates),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Plan:
        if not isinstance(data, Mapping):
            raise InvalidInput('a rollout is an object like {"version": "<id>", "steps": [5, 25, 50, 100]}')
        unknown = set(data) - PLAN_FIELDS
        if unknown:
            raise InvalidInput(f"unknown rollout field(s): {', '.join(sorted(unknown))}")
        steps = data.get("steps", [5, 25, 50, 100])
        if (
            not isinstance(steps, list)
            or not steps
            or any(isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 < s <= 100 for s in steps)
            or any(b <= a for a, b in zip(steps, steps[1:], strict=False))
            or steps[-1] != 100
        ):
            raise InvalidInput("steps must be rising percentages in (0, 100] ending at 100, e.g. [5, 25, 50, 100]")
        minimum = data.get("min_requests", 200)
        if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
            raise InvalidInput("min_requests must be a whole number of at least 1")
        return cls(
            version=validate_version_id(data.get("version")),
            steps=tuple(float(s) for s in steps),
            step_seconds=_number(data, "step_seconds", 300.0, low=0.1, high=7 * 86400),
            min_requests=minimum,
            max_hold_seconds=_number(data, "max_hold_seconds", 3600.0, low=0.0, high=30 * 86400),
            gates=gates_from(data.get("gates")),
        )


def gates_from(data: Any) -> dict[str, float | None]:
    """The defaults with ``data``'s changes; a gate set to null is not judged."""
    if data is None:
        return dict(GATE_DEFAULTS)
    if not isinstance(data, Mapping):
        raise InvalidInput('gates is an object like {"max_error_increase": 0.01, "max_psi": null}')
    unknown = set(data) - set(GATE_DEFAULTS)
    if unknown:
        raise InvalidInput(f"unknown gate(s): {', '.join(sorted(unknown))}; known: {', '.join(GATE_DEFAULTS)}")
    gates = dict(GATE_DEFAULTS)
    for name, value in data.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise InvalidInput(f"gate {name} must be a number of at least 0, or null to skip it")
        gates[name] = float(value) if value is not None else None
    return gates


@dataclass(frozen=True)
class Rollout:
    """``rollout.json``: the plan and where it stands."""

    plan: Plan
    state: str
    step: int  # index into plan.steps
    started_at: float  # epoch seconds
    step_started_at: float
    started_by: str
    live: str | None  # the live version when the rollout started (the baseline)
    held_since: float | None = None
    last_judgement: Mapping[str, Any] | None = None
    ended: str = ""  # why it ended
    passed: tuple[Mapping[str, Any], ...] = ()  # the judgement that passed each step so far, in order

    @property
    def percent(self) -> float:
        return self.plan.steps[self.step]

    @property
    def active(self) -> bool:
        return self.state in (RUNNING, PAUSED)

    def canary(self, *, at: str) -> CanaryConfig:
        return CanaryConfig(self.plan.version, self.percent / 100, None, ACTOR, at)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.plan.to_dict(),
            "state": self.state,
            "step": self.step,
            "step_percent": self.percent,
            "started_at": self.started_at,
            "step_started_at": self.step_started_at,
            "started_by": self.started_by,
            "live": self.live,
            "held_since": self.held_since,
            "last_judgement": dict(self.last_judgement) if self.last_judgement is not None else None,
            "ended": self.ended,
            "passed": [dict(j) for j in self.passed],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Rollout:
        if not isinstance(data, Mapping) or data.get("state") not in (RUNNING, PAUSED, PROMOTED, ABORTED):
            raise InvalidInput("not a rollout state")
        plan = Plan.from_dict({k: data[k] for k in PLAN_FIELDS if k in data})
        step = data.get("step")
        if not isinstance(step, int) or not 0 <= step < len(plan.steps):
            raise InvalidInput("rollout step out of range")
        held = data.get("held_since")
        passed = data.get("passed") or []  # absent in a file written before steps kept their judgements
        if not isinstance(passed, list) or not all(isinstance(j, Mapping) for j in passed):
            raise InvalidInput("rollout passed must be a list of judgements")
        return cls(
            plan, str(data["state"]), step, float(data["started_at"]), float(data["step_started_at"]),
            str(data.get("started_by", "")), data.get("live"), float(held) if held is not None else None,
            data.get("last_judgement"), str(data.get("ended", "")), tuple(passed),
        )  # fmt: skip


def read_rollout(path: Path) -> Rollout | None:
    """``rollout.json``, or None when absent; a damaged file raises InvalidInput naming it."""
    return read_control(path, Rollout.from_dict, "abort the rollout to remove it")


# -- verbs -----------------------------------------------------------------------------
def start_rollout(
    kernel: Kernel, model: str, plan: Plan, *, actor: str | None = None, reason: str = "", force: bool = False
) -> Rollout:
    """Validate the version like a deploy, then write ``rollout.json`` and the first step's
    ``abtest.json`` with one ``rollout_start`` entry (see
    :func:`modelswap.core.delivery.control.start_controlled`). Conflict while another
    rollout is active or a canary of another version runs."""
    version = plan.version

    def build(start: Start) -> Control[Rollout]:
        running = _read_quiet(start.paths)
        if running is not None and running.active:
            raise Conflict(f"a rollout of {running.plan.version} is {running.state}; abort it first")
        canary = read_canary(start.paths.abtest)
        if canary is not None and canary.version != version:
            raise Conflict(f"a canary of {canary.version} runs; stop it first")
        at = start.now.timestamp()
        state = Rollout(plan, RUNNING, 0, at, at, start.actor, start.live)
        details = {**plan.to_dict(), "fraction": state.percent / 100}
        return Control(state, details, lambda: _write_both(start.paths, state, iso(start.now)))

    state = start_controlled(
        kernel, model, version, kind="rollout", action=history.ROLLOUT_START, build=build,
        actor=actor, reason=reason, force=force, needs_live=True,
    )  # fmt: skip
    logger.info("rollout %s: %s starts at %g%% (actor %s)", model, version, state.percent, state.started_by)
    return state


def _write_both(paths: ModelPaths, state: Rollout, at: str) -> None:
    """rollout.json first, abtest.json second: a crash between leaves the state ahead of
    the canary, and the driver sets the canary to the state's step. If the second write
    fails, the first is undone (the caller's journal entry is taken back: nothing changed)."""
    write_then(paths.rollout, state.to_dict(), lambda: atomic_write_json(paths.abtest, state.canary(at=at).to_dict()))


def _read_quiet(paths: ModelPaths) -> Rollout | None:
    try:
        return read_rollout(paths.rollout)
    except InvalidInput as exc:
        logger.warning("%s; treating the rollout as ended", exc.message)
        return None


def change_rollout(
    kernel: Kernel,
    model: str,
    action: str,
    *,
    actor: str | None = None,
    reason: str = "",
    details: Mapping[str, Any] | None = None,
    expect: Rollout | None = None,
    journal: bool = True,
) -> Rollout:
    """One transition of the rollout under the model's lock, journaled with its file writes.

    ``action``: rollout_pause, rollout_resume, rollout_hold (the judgement is kept; journaled
    only when ``journal``: once per step), rollout_step (next step), rollout_abort (canary
    removed). ``expect``: the state the driver judged; if the file changed since (a person
    paused or aborted), Conflict.
    """
    paths = kernel.existing(model)
    with kernel.locked(model):
        state = read_rollout(paths.rollout)
        if state is None or not state.active:
            raise Conflict(f"no rollout of {model} is running")
        if expect is not None and (state.step, state.state, state.step_started_at) != (
            expect.step, expect.state, expect.step_started_at
        ):  # fmt: skip
            raise Conflict(f"the rollout of {model} changed while it was judged")
        now = kernel.clock()
        at = now.timestamp()
        live = kernel.current(model)
        extra: dict[str, Any] = dict(details or {})
        if action == history.ROLLOUT_PAUSE:
            if state.state == PAUSED:
                raise Conflict(f"the rollout of {model} is already paused")
            new = replace(state, state=PAUSED, held_since=None)
        elif action == history.ROLLOUT_RESUME:
            if state.state != PAUSED:
                raise Conflict(f"the rollout of {model} is not paused")
            new = replace(state, state=RUNNING, step_started_at=at, held_since=None)
        elif action == history.ROLLOUT_HOLD:
            new = replace(state, held_since=state.held_since or at, last_judgement=extra or None)
        elif action == history.ROLLOUT_STEP:
            new = replace(state, step=state.step + 1, step_started_at=at, held_since=None, last_judgement=extra,
                          passed=(*state.passed, extra))  # fmt: skip
            extra = {**extra, "fraction": new.percent / 100}
        elif action == history.ROLLOUT_ABORT:
            new = replace(state, state=ABORTED, ended=reason, last_judgement=extra or state.last_judgement)
        else:
            raise ValueError(f"not a rollout action: {action}")
        to = state.plan.version if action != history.ROLLOUT_ABORT else live
        frm = live if action != history.ROLLOUT_ABORT else state.plan.version
        entry = history.HistoryEntry(iso(now), action, actor or default_actor(), frm, to, reason,
                                     {"step_percent": new.percent, **extra})  # fmt: skip

        def effect() -> None:
            if action == history.ROLLOUT_STEP:
                write_then(
                    paths.rollout,
                    new.to_dict(),
                    lambda: atomic_write_json(paths.abtest, new.canary(at=iso(now)).to_dict()),
                )
            elif action == history.ROLLOUT_ABORT:
                write_then(paths.rollout, new.to_dict(), lambda: take_canary_file(paths))
            else:
                atomic_write_json(paths.rollout, new.to_dict())

        if journal:
            kernel.commit(paths, kernel.load_registry(paths), entry, effect)
        else:
            effect()
    logger.info("%s %s: %s at %g%% %s", action, model, state.plan.version, new.percent, reason)
    return new


def finish_promoted(kernel: Kernel, model: str, judgement: Mapping[str, Any] | None = None) -> Rollout | None:
    """Mark the rollout promoted once ``current`` is its version (after the promote's own
    journaled move, with the ``judgement`` that passed the last step; or when a person
    deployed it meanwhile)."""
    paths = kernel.existing(model)
    with kernel.locked(model):
        state = read_rollout(paths.rollout)
        if state is None or not state.active or kernel.current(model) != state.plan.version:
            return None
        passed = (*state.passed, judgement) if judgement is not None else state.passed
        new = replace(state, state=PROMOTED, ended=f"{state.plan.version} is live", passed=passed)
        atomic_write_json(paths.rollout, new.to_dict())
    return new


def ensure_canary(kernel: Kernel, model: str, state: Rollout) -> bool:
    """Make ``abtest.json`` say what the rollout's step says (after a crash between the two
    writes). False when the canary was stopped or replaced by someone else."""
    paths = kernel.existing(model)
    canary = read_canary(paths.abtest)
    if canary is not None and canary.version == state.plan.version:
        if abs(canary.fraction - state.percent / 100) > 1e-9:
            with kernel.locked(model):
                atomic_write_json(paths.abtest, state.canary(at=iso(kernel.clock())).to_dict())
        return True
    return False
