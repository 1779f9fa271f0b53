"""A model's delivery policy: what happens to every new version of the model, whoever publishes it.

``policy.json`` in the model's directory says it in four optional parts:

- ``gate``: the offline gate, judged at once on the versions' published metrics (the
  candidate's ``metric`` may be worse than the live version's by at most ``max_drop``;
  a metric named like a loss or an error is better lower); the signature check of a
  deploy is always part of it;
- ``shadow``: the candidate shadows live traffic for ``seconds`` and at least
  ``min_requests`` requests, and passes when it agreed on ``min_agreement`` of the rows
  and failed on at most ``max_error_rate`` of them; absent: no shadow stage;
- ``rollout``: the stepped rollout's plan (core.delivery.rollout: steps, step_seconds,
  min_requests, max_hold_seconds, gates), promoted at its end; absent: the rollout's
  defaults — a candidate reaches clients only through a rollout;
- ``on_alert``: which Alertmanager alerts about the model start its retrain job, at most
  once per ``cooldown_seconds`` (core.delivery.alerts).

Setting and clearing the policy are journaled changes (``policy_set``, ``policy_clear``)
written with the file. The candidate's walk through the stages is core.delivery.pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelswap.core.delivery import rollout as ro
from modelswap.core.errors import Conflict, InvalidInput
from modelswap.core.store import history
from modelswap.core.store.clock import default_actor, iso
from modelswap.core.store.fsio import atomic_write_json, read_control, unlink_durable
from modelswap.core.store.kernel import Kernel
from modelswap.core.store.layout import ModelPaths
from modelswap.core.training.jobs import RetrainRequest

PARTS = ("gate", "shadow", "rollout", "on_alert")
SEVERITIES = {"info": 0, "warning": 1, "ticket": 1, "critical": 2, "page": 2}  # the shipped rules use ticket/page
ACTIONS = ("retrain",)
DEFAULT_COOLDOWN = 21600.0  # 6 h: a drift alert repeats every few hours while the drift lasts


def _number(data: Mapping[str, Any], where: str, name: str, default: float, *, low: float, high: float) -> float:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"{where}.{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    if not low <= value <= high:
        raise InvalidInput(f"{where}.{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _object(data: Any, where: str, example: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{where} must be an object like {example}")
    return data


def _known(data: Mapping[str, Any], where: str, fields: set[str]) -> None:
    unknown = set(data) - fields
    if unknown:
        raise InvalidInput(
            f"unknown field(s) in {where}: {', '.join(sorted(unknown))}; known: {', '.join(sorted(fields))}"
        )


@dataclass(frozen=True)
class Gate:
    metric: str
    max_drop: float = 0.0

    @classmethod
    def from_dict(cls, data: Any) -> Gate:
        data = _object(data, "gate", '{"metric": "accuracy", "max_drop": 0.01}')
        _known(data, "gate", {"metric", "max_drop"})
        metric = data.get("metric")
        if not isinstance(metric, str) or not 0 < len(metric) <= 64:
            raise InvalidInput('gate.metric must name a published metric, e.g. "accuracy"')
        return cls(metric, _number(data, "gate", "max_drop", 0.0, low=0.0, high=math.inf))

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "max_drop": self.max_drop}


@dataclass(frozen=True)
class ShadowStage:
    seconds: float = 600.0
    min_requests: int = 500
    min_agreement: float | None = 0.95
    max_error_rate: float | None = 0.01
    fraction: float = 1.0
    max_hold_seconds: float = 3600.0

    @classmethod
    def from_dict(cls, data: Any) -> ShadowStage:
        data = _object(data, "shadow", '{"seconds": 600, "min_requests": 500, "min_agreement": 0.95}')
        _known(data, "shadow", {"seconds", "min_requests", "min_agreement", "max_error_rate", "fraction",
                                "max_hold_seconds"})  # fmt: skip
        minimum = data.get("min_requests", 500)
        if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
            raise InvalidInput("shadow.min_requests must be a whole number of at least 1")
        fraction = _number(data, "shadow", "fraction", 1.0, low=0.0, high=1.0)
        if fraction == 0:
            raise InvalidInput("shadow.fraction must be in (0, 1]")
        agreement = data.get("min_agreement", 0.95)
        errors = data.get("max_error_rate", 0.01)
        return cls(
            seconds=_number(data, "shadow", "seconds", 600.0, low=0.1, high=7 * 86400),
            min_requests=minimum,
            min_agreement=None if agreement is None else _number(data, "shadow", "min_agreement", 0.95, low=0, high=1),
            max_error_rate=None if errors is None else _number(data, "shadow", "max_error_rate", 0.01, low=0, high=1),
            fraction=fraction,
            max_hold_seconds=_number(data, "shadow", "max_hold_seconds", 3600.0, low=0.0, high=30 * 86400),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "min_requests": self.min_requests,
            "min_agreement": self.min_agreement,
            "max_error_rate": self.max_error_rate,
            "fraction": self.fraction,
            "max_hold_seconds": self.max_hold_seconds,
        }


@dataclass(frozen=True)
class OnAlert:
    alerts: tuple[str, ...]
    retrain: RetrainRequest
    min_severity: str = "warning"
    action: str = "retrain"
    cooldown_seconds: float = DEFAULT_COOLDOWN

    @classmethod
    def from_dict(cls, model: str, data: Any) -> OnAlert:
        data = _object(data, "on_alert", '{"alerts": ["ModelswapFeatureDrift"], "retrain": {"dataset": "iris"}}')
        _known(data, "on_alert", {"alerts", "min_severity", "action", "cooldown_seconds", "retrain"})
        alerts = data.get("alerts")
        if not isinstance(alerts, list) or not alerts or not all(isinstance(a, str) and a for a in alerts):
            raise InvalidInput('on_alert.alerts must be a list of alert names, e.g. ["ModelswapFeatureDrift"]')
        severity = data.get("min_severity", "warning")
        if not isinstance(severity, str) or severity not in SEVERITIES:
            raise InvalidInput(f"on_alert.min_severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
        action = data.get("action", "retrain")
        if not isinstance(action, str) or action not in ACTIONS:
            raise InvalidInput(f"on_alert.action must be one of {', '.join(ACTIONS)}, got {action!r}")
        retrain = _object(data.get("retrain", {}), "on_alert.retrain", '{"dataset": "iris", "estimator": "logreg"}')
        if {"deploy", "deploy_if_better"} & set(retrain):
            raise InvalidInput(
                "on_alert.retrain takes no deploy or deploy_if_better: the policy decides what goes live"
            )
        try:
            request = RetrainRequest.from_dict(model, retrain)
        except InvalidInput as exc:
            raise InvalidInput(f"on_alert.retrain: {exc.message}") from exc
        return cls(
            alerts=tuple(alerts),
            retrain=request,
            min_severity=severity,
            action=action,
            cooldown_seconds=_number(data, "on_alert", "cooldown_seconds", DEFAULT_COOLDOWN, low=0, high=30 * 86400),
        )

    def to_dict(self) -> dict[str, Any]:
        params = self.retrain.to_dict()
        return {
            "alerts": list(self.alerts),
            "min_severity": self.min_severity,
            "action": self.action,
            "cooldown_seconds": self.cooldown_seconds,
            "retrain": {k: params[k] for k in ("dataset", "estimator", "seed")},
        }


@dataclass(frozen=True)
class Policy:
    gate: Gate | None = None
    shadow: ShadowStage | None = None
    rollout: Mapping[str, Any] = field(default_factory=dict)  # a rollout plan without its version
    on_alert: OnAlert | None = None
    set_at: str = ""  # when it was set: only versions published later are its candidates
    set_by: str = ""

    @classmethod
    def from_dict(cls, model: str, data: Any, *, set_at: str = "", set_by: str = "") -> Policy:
        data = _object(data, "a policy", '{"gate": {...}, "shadow": {...}, "rollout": {...}, "on_alert": {...}}')
        _known(data, "the policy", set(PARTS) | {"set_at", "set_by"})
        rollout = data.get("rollout")
        rollout = {} if rollout is None else rollout  # absent or null: the default steps
        if not isinstance(rollout, Mapping):
            raise InvalidInput('rollout must be an object like {"steps": [5, 25, 50, 100], "step_seconds": 300}')
        if "version" in rollout:
            raise InvalidInput("rollout takes no version: the candidate is the version just published")
        try:
            plan = ro.Plan.from_dict({**rollout, "version": "20000101-000000-000000"})
        except InvalidInput as exc:
            raise InvalidInput(f"rollout: {exc.message}") from exc
        plan_dict = {k: v for k, v in plan.to_dict().items() if k != "version"}
        return cls(
            gate=Gate.from_dict(data["gate"]) if data.get("gate") is not None else None,
            shadow=ShadowStage.from_dict(data["shadow"]) if data.get("shadow") is not None else None,
            rollout=plan_dict,
            on_alert=OnAlert.from_dict(model, data["on_alert"]) if data.get("on_alert") is not None else None,
            set_at=set_at or str(data.get("set_at") or ""),  # a policy read back (GET, then PUT) keeps no old stamp
            set_by=set_by or str(data.get("set_by") or ""),
        )

    def plan(self, version: str) -> ro.Plan:
        return ro.Plan.from_dict({**self.rollout, "version": version})

    def rules(self) -> dict[str, Any]:
        """The policy as set (what ``policy set`` takes back)."""
        return {
            "gate": self.gate.to_dict() if self.gate else None,
            "shadow": self.shadow.to_dict() if self.shadow else None,
            "rollout": dict(self.rollout),
            "on_alert": self.on_alert.to_dict() if self.on_alert else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.rules(), "set_at": self.set_at, "set_by": self.set_by}


def read_policy(paths: ModelPaths) -> Policy | None:
    """``policy.json``, or None when the model has none; a damaged file raises InvalidInput."""
    return read_control(
        paths.policy, lambda data: Policy.from_dict(paths.name, data), "set the policy again or clear it"
    )


def set_policy(kernel: Kernel, model: str, data: Any, *, actor: str | None = None, reason: str = "") -> Policy:
    """Validate ``data`` and write ``policy.json`` with a ``policy_set`` entry as one change.
    Setting the policy it already holds changes nothing (a CronJob may set it every night).
    The policy applies to versions published from now on; a candidate in flight keeps the
    policy it started with."""
    paths = kernel.existing(model)
    who = actor or default_actor()
    with kernel.locked(model):
        now = iso(kernel.clock())
        policy = Policy.from_dict(model, data, set_at=now, set_by=who)
        try:
            old = read_policy(paths)
        except InvalidInput:  # a damaged file: setting the policy again is the repair its error names
            old = None
        if old is not None and old.rules() == policy.rules():
            return old
        entry = history.HistoryEntry(now, history.POLICY_SET, who, None, None, reason, {"policy": policy.rules()})
        kernel.commit(
            paths, kernel.load_registry(paths), entry, lambda: atomic_write_json(paths.policy, policy.to_dict())
        )
    return policy


def clear_policy(kernel: Kernel, model: str, *, actor: str | None = None, reason: str = "") -> Policy:
    """Remove ``policy.json`` with a ``policy_clear`` entry as one change; new versions are
    then left alone, as without a policy (a candidate in flight finishes its walk).
    Conflict when the model has no policy."""
    paths = kernel.existing(model)
    who = actor or default_actor()
    with kernel.locked(model):
        try:
            old = read_policy(paths)
        except InvalidInput:
            old = Policy()  # a damaged file can always be cleared
        if old is None:
            raise Conflict(f"{model} has no delivery policy")
        entry = history.HistoryEntry(iso(kernel.clock()), history.POLICY_CLEAR, who, None, None, reason,
                                     {"policy": old.rules()})  # fmt: skip
        kernel.commit(paths, kernel.load_registry(paths), entry, lambda: unlink_durable(paths.policy))
    return old
