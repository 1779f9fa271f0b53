"""Alerts that act: Alertmanager's webhook mapped to the models' ``on_alert`` rules.

Alertmanager posts a group of alerts (webhook payload version 4: ``status``, and
``alerts`` each with ``status``, ``labels``, ``annotations``, ``startsAt``,
``fingerprint``). A firing alert labelled with a ``model`` whose policy names the alert
(``on_alert.alerts``) at ``min_severity`` or above starts the model's retrain job — the
job publishes, and the policy judges what it published like any other version.

At most one retrain per ``cooldown_seconds``: Alertmanager repeats a firing group every
``repeat_interval``, a drift alert fires once per drifted feature, and two Alertmanager
replicas may both deliver. The check and the ``alert_retrain`` entry are made under the
model's lock, and the job is started as the entry's effect (a job that cannot start takes
the entry back), so history holds exactly the retrains that started, each with the
alert's name, labels, annotations (the figures) and start time. Every other alert is
ignored with a reason the caller counts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modelswap.core.delivery.policy import SEVERITIES, read_policy
from modelswap.core.errors import Conflict, InvalidInput, ModelswapError
from modelswap.core.store import history
from modelswap.core.store.clock import iso, parse_iso
from modelswap.core.store.ids import new_version_id
from modelswap.core.store.kernel import Kernel
from modelswap.core.training.jobs import Jobs

logger = logging.getLogger(__name__)

ACTOR = "policy"
# outcomes of one alert (the label of modelswap_alertmanager_alerts_total)
RETRAIN = "retrain"
RESOLVED, NO_MODEL, UNKNOWN_MODEL, NO_RULE = "resolved", "no_model_label", "unknown_model", "no_rule"
NOT_IN_RULE, BELOW_SEVERITY, COOLDOWN, JOB_RUNNING = "not_in_rule", "below_severity", "cooldown", "job_running"
JOB_FAILED = "job_failed"  # the retrain job could not be started (nothing recorded: the next firing tries again)
OUTCOMES = (
    RETRAIN, RESOLVED, NO_MODEL, UNKNOWN_MODEL, NO_RULE, NOT_IN_RULE, BELOW_SEVERITY, COOLDOWN, JOB_RUNNING, JOB_FAILED,
)  # fmt: skip


@dataclass(frozen=True)
class Alert:
    name: str
    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: str
    fingerprint: str

    def details(self) -> dict[str, Any]:
        return {"alert": self.name, "status": self.status, "labels": dict(self.labels),
                "annotations": dict(self.annotations), "starts_at": self.starts_at,
                "fingerprint": self.fingerprint}  # fmt: skip


def parse_payload(body: Any) -> list[Alert]:
    """The alerts of an Alertmanager webhook payload; InvalidInput naming the field otherwise."""
    if not isinstance(body, Mapping):
        raise InvalidInput("the body must be Alertmanager's webhook payload (a JSON object)")
    version = body.get("version")
    if version != "4":
        raise InvalidInput(f"version: Alertmanager's webhook payload version 4 is supported, got {version!r}")
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise InvalidInput("alerts: a list of alerts is required")
    parsed = []
    for i, raw in enumerate(alerts):
        if not isinstance(raw, Mapping):
            raise InvalidInput(f"alerts[{i}]: an alert must be an object")
        status = raw.get("status")
        if status not in ("firing", "resolved"):
            raise InvalidInput(f"alerts[{i}].status must be firing or resolved, got {status!r}")
        labels, annotations = raw.get("labels", {}), raw.get("annotations", {})
        for name, value in (("labels", labels), ("annotations", annotations)):
            if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
                raise InvalidInput(f"alerts[{i}].{name} must be an object of strings")
        parsed.append(Alert(str(labels.get("alertname", "")), status, dict(labels), dict(annotations),
                            str(raw.get("startsAt", "")), str(raw.get("fingerprint", ""))))  # fmt: skip
    return parsed


def handle_alerts(
    kernel: Kernel, jobs: Jobs, alerts: list[Alert], *, caller: str, covers: Callable[[str], bool] = lambda m: True
) -> list[dict[str, Any]]:
    """Act on each alert; one result (alert, model, outcome, job) per alert, in order.
    ``covers``: the models the caller's token may act on (the others are unknown to it)."""
    return [
        {"alert": a.name, "model": a.labels.get("model"), **handle(kernel, jobs, a, caller=caller, covers=covers)}
        for a in alerts
    ]


def handle(kernel: Kernel, jobs: Jobs, alert: Alert, *, caller: str, covers: Callable[[str], bool]) -> dict[str, Any]:
    if alert.status != "firing":
        return {"outcome": RESOLVED}
    model = alert.labels.get("model")
    if not model:
        return {"outcome": NO_MODEL}
    if not covers(model):
        return {"outcome": UNKNOWN_MODEL}
    try:
        paths = kernel.existing(model)
        policy = read_policy(paths)
    except ModelswapError:  # no such model, a linked model directory, a damaged policy.json
        return {"outcome": UNKNOWN_MODEL}
    rule = policy.on_alert if policy is not None else None
    if rule is None:
        return {"outcome": NO_RULE}
    if alert.name not in rule.alerts:
        return {"outcome": NOT_IN_RULE}
    severity = alert.labels.get("severity", "info").lower()
    if SEVERITIES.get(severity, 0) < SEVERITIES[rule.min_severity]:
        return {"outcome": BELOW_SEVERITY}
    with kernel.locked(model):
        now = kernel.clock()
        last = history.last(paths.history, frozenset({history.ALERT_RETRAIN}))
        if last is not None and now.timestamp() - parse_iso(last.time).timestamp() < rule.cooldown_seconds:
            return {"outcome": COOLDOWN, "last": last.time, "job": last.details.get("job")}
        job = new_version_id(now, kernel.rand)
        entry = history.HistoryEntry(
            iso(now), history.ALERT_RETRAIN, ACTOR, kernel.current(model), None,
            f"{alert.name} fired: retrain ({rule.retrain.estimator} on {rule.retrain.dataset})",
            {**alert.details(), "job": job, "retrain": rule.retrain.to_dict(), "caller": caller,
             "cooldown_seconds": rule.cooldown_seconds},
        )  # fmt: skip
        start: Callable[[], object] = lambda: jobs.start(rule.retrain, f"{ACTOR}:{alert.name}", job_id=job)  # noqa: E731
        try:
            kernel.commit(paths, kernel.load_registry(paths), entry, start)
        except Conflict as exc:  # a retrain of the model runs already (started by a person, or the CronJob)
            return {"outcome": JOB_RUNNING, "error": exc.message}
        except (ModelswapError, OSError) as exc:  # the job would not start: the entry is taken back
            logger.error("model %s: alert %s could not start a retrain: %s", model, alert.name, exc)
            return {"outcome": JOB_FAILED, "error": getattr(exc, "message", None) or str(exc)}
    logger.warning("model %s: alert %s started retrain job %s", model, alert.name, job)
    return {"outcome": RETRAIN, "job": job}
