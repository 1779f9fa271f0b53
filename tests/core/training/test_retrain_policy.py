"""The retrain job with a delivery policy: it publishes and leaves going live to the policy,
sets the policy from ``--policy`` (after the first version of a new model), and an alert
mapped by the policy's on_alert rule starts it at most once per cool-down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelswap.core.delivery.alerts import BELOW_SEVERITY, COOLDOWN, NOT_IN_RULE, RETRAIN, Alert, handle_alerts
from modelswap.core.delivery.alerts import parse_payload as parse
from modelswap.core.delivery.policy import read_policy, set_policy
from modelswap.core.errors import InvalidInput
from modelswap.core.store import history
from modelswap.core.store.store import Store
from modelswap.core.training.jobs import SUCCEEDED, Jobs
from modelswap.core.training.retrain import main
from tests.server import wait_for

POLICY = {"gate": {"metric": "accuracy", "max_drop": 0.01},
          "on_alert": {"alerts": ["ModelswapFeatureDrift"], "cooldown_seconds": 3600,
                       "retrain": {"dataset": "iris", "estimator": "decision_tree"}}}  # fmt: skip


def actions(store: Store, *only: str) -> list[str]:
    return [e.action for _, e in history.newest_first(store.paths("iris").history) if not only or e.action in only]


def test_retrain_with_a_policy_publishes_and_never_deploys_and_sets_the_policy_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, policy = tmp_path / "models", tmp_path / "policy.json"
    policy.write_text(json.dumps(POLICY))
    assert main(["iris", "--root", str(root), "--deploy", "--policy", str(policy)]) == 0
    store = Store(root)
    first = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert first["deployed"] and store.current("iris") == first["version"]  # nothing was live: deployed as asked
    assert read_policy(store.paths("iris")) is not None  # set after the first version
    args = ["iris", "--root", str(root), "--estimator", "knn", "--deploy-if-better", "accuracy", "--policy"]
    assert main([*args, str(policy)]) == 0
    second = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert not second["deployed"] and "delivery policy decides" in second["reason"]
    assert store.current("iris") == first["version"]
    assert actions(store, history.POLICY_SET) == [history.POLICY_SET]  # the same policy again: no change


def test_retrain_refuses_a_bad_policy_file_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"gate": {"metric": "accuracy", "max_drop": "a lot"}}))
    assert main(["iris", "--root", str(tmp_path / "models"), "--policy", str(policy)]) == 1
    err = capsys.readouterr().err
    assert "--policy" in err and "gate.max_drop must be a number" in err
    assert not (tmp_path / "models" / "iris").exists()


def alert(name: str = "ModelswapFeatureDrift", severity: str = "ticket", feature: str = "petal") -> Alert:
    labels = {"alertname": name, "model": "iris", "severity": severity, "feature": feature}
    return Alert(name, "firing", labels, {"summary": "PSI 1.9"}, "2026-12-06T10:00:00Z", feature)


def test_an_alert_starts_the_policys_retrain_once_per_cooldown_and_history_names_the_alert(tmp_path: Path) -> None:
    store, jobs = Store(tmp_path / "models"), Jobs(tmp_path / "models")
    assert main(["iris", "--root", str(store.root), "--deploy"]) == 0
    set_policy(store, "iris", POLICY, actor="test")
    results = handle_alerts(store, jobs, [alert(severity="info"), alert("ModelswapLoadFailures"), alert(),
                                          alert(feature="sepal")], caller="token:am")  # fmt: skip
    assert [r["outcome"] for r in results] == [BELOW_SEVERITY, NOT_IN_RULE, RETRAIN, COOLDOWN]
    job = results[2]["job"]
    assert results[3]["job"] == job
    (entry,) = [e for _, e in history.newest_first(store.paths("iris").history) if e.action == history.ALERT_RETRAIN]
    assert entry.actor == "policy" and entry.details["job"] == job and entry.details["caller"] == "token:am"
    assert entry.details["labels"]["feature"] == "petal" and entry.details["annotations"] == {"summary": "PSI 1.9"}
    assert entry.details["retrain"]["estimator"] == "decision_tree"
    done = wait_for(lambda: jobs.get(job)["state"] == SUCCEEDED, timeout=60, interval=0.2)
    assert done, jobs.get(job)
    assert jobs.get(job)["actor"] == "policy:ModelswapFeatureDrift"
    assert jobs.get(job)["result"]["deployed"] is False  # the policy decides
    assert len(jobs.of_model("iris")) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the body must be Alertmanager's webhook payload"),
        ({"version": "4"}, "alerts: a list of alerts is required"),
        ({"version": "4", "alerts": [{"status": "firing", "labels": {"a": 1}}]}, "alerts[0].labels"),
    ],
)
def test_a_payload_that_is_not_alertmanagers_is_refused_naming_the_field(body: object, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(body)
    assert message in caught.value.message
