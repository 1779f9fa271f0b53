"""The delivery policy on a real store: its validation, its journaled set and clear, and a
candidate's walk (gate, shadow, rollout) with each stage's verdict, the rejected status,
the supersede rule and the recovery of a stage interrupted between its two writes.

The shadow's fleet figures are handed to the pipeline here as the judge takes them (the
comparison counts themselves are tested in test_driver.py; tests/api/http/test_policy.py
runs the whole walk on real servers with real traffic)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from modelswap.core.delivery import rollout as ro
from modelswap.core.delivery.pipeline import Pipeline, candidate_view, judge_shadow, read_candidate
from modelswap.core.delivery.policy import Policy, ShadowStage, clear_policy, read_policy, set_policy
from modelswap.core.delivery.shadow import read_shadow, stop_shadow
from modelswap.core.errors import Conflict, InvalidInput
from modelswap.core.store import history
from modelswap.core.store import registry as reg
from modelswap.core.store.fsio import atomic_write_json
from modelswap.core.store.layout import ModelPaths
from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, fit_iris

SHADOW = {"seconds": 60, "min_requests": 100, "min_agreement": 0.95, "max_hold_seconds": 600}
POLICY = {"gate": {"metric": "accuracy", "max_drop": 0.01}, "shadow": SHADOW,
          "rollout": {"steps": [50, 100], "step_seconds": 30, "min_requests": 20}}  # fmt: skip


class Clock:
    """One wall clock for the store (a second per write, so versions and history sort) and
    the pipeline (read without moving)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 2, 0, 0, tzinfo=timezone.utc).timestamp()

    def store(self) -> datetime:
        self.now += 1
        return datetime.fromtimestamp(self.now, timezone.utc)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Figures:
    """The shadow's fleet comparison the pipeline is shown (what fleet_summary would sum)."""

    def __init__(self) -> None:
        self.stats: dict[str, Any] = {"requests": 0, "agreement": None, "error_rate": None}
        self.asked: list[tuple[str | None, str]] = []

    def __call__(self, paths: Any, live: str | None, version: str, started_at: str | None) -> dict[str, Any]:
        self.asked.append((live, version))
        return dict(self.stats)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Store:
    return Store(tmp_path / "models", clock=clock.store, lock_timeout=10)


@pytest.fixture
def figures() -> Figures:
    return Figures()


@pytest.fixture
def pipeline(store: Store, figures: Figures, clock: Clock) -> Pipeline:
    return Pipeline(store, figures, clock)


def publish(store: Store, estimator: Any, accuracy: float = 0.9, **kwargs: Any) -> str:
    kwargs.setdefault("example", [IRIS_ROW])
    return store.publish("iris", estimator, metrics={"accuracy": accuracy}, **kwargs).id


def live_with_policy(store: Store, policy: dict[str, Any] | None = None) -> str:
    a = publish(store, fit_iris(), 0.95)
    store.deploy("iris", a)
    set_policy(store, "iris", policy or POLICY, actor="test")
    return a


def entries(store: Store, *actions: str) -> list[history.HistoryEntry]:
    found = [e for _, e in history.newest_first(store.paths("iris").history)]
    return list(reversed([e for e in found if not actions or e.action in actions]))


# -- the policy itself ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"gate": {"metric": "accuracy", "max_drop": -1}}, "gate.max_drop must be a number"),
        ({"gate": {"max_drop": 0.1}}, "gate.metric must name"),
        ({"gate": {"metric": "accuracy", "drop": 0.1}}, "unknown field(s) in gate: drop"),
        ({"shadow": {"min_requests": 0}}, "shadow.min_requests"),
        ({"shadow": {"min_agreement": 1.5}}, "shadow.min_agreement must be a number in [0, 1]"),
        ({"rollout": {"steps": [50, 25, 100]}}, "rollout: steps must be rising"),
        ({"rollout": {"version": "20261124-010203-abcdef"}}, "rollout takes no version"),
        ({"on_alert": {"alerts": []}}, "on_alert.alerts must be a list"),
        ({"on_alert": {"alerts": ["X"], "min_severity": "loud"}}, "on_alert.min_severity must be one of"),
        ({"on_alert": {"alerts": ["X"], "min_severity": []}}, "on_alert.min_severity must be one of"),
        ({"on_alert": {"alerts": ["X"], "action": {}}}, "on_alert.action must be one of"),
        ({"rollout": []}, "rollout must be an object"),
        ({"on_alert": {"alerts": ["X"], "action": "page"}}, "on_alert.action must be one of"),
        ({"on_alert": {"alerts": ["X"], "retrain": {"dataset": "/etc/passwd"}}}, "on_alert.retrain: dataset"),
        ({"on_alert": {"alerts": ["X"], "retrain": {"deploy": True}}}, "takes no deploy"),
        ({"gates": {}}, "unknown field(s) in the policy: gates"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field_and_nothing_is_written(
    store: Store, policy: dict[str, Any], message: str
) -> None:
    publish(store, fit_iris())
    before = entries(store)
    with pytest.raises(InvalidInput) as caught:
        set_policy(store, "iris", policy)
    assert message in caught.value.message
    assert read_policy(store.paths("iris")) is None and entries(store) == before


def test_set_and_clear_are_journaled_and_setting_the_same_policy_again_changes_nothing(store: Store) -> None:
    publish(store, fit_iris())
    policy = set_policy(store, "iris", POLICY, actor="alice", reason="weekly retrains")
    assert policy.set_by == "alice" and policy.gate is not None and policy.gate.max_drop == 0.01
    assert policy.rollout["steps"] == [50.0, 100.0] and policy.rollout["gates"]["max_psi"] == 0.2  # defaults filled
    assert policy.shadow is not None and (policy.shadow.max_error_rate, policy.shadow.fraction) == (0.01, 1.0)
    assert Policy.from_dict("iris", {"shadow": {}}).shadow == ShadowStage()  # every default as documented
    again = set_policy(store, "iris", {**POLICY, **read_policy(store.paths("iris")).to_dict()})  # type: ignore[union-attr]
    assert again == policy
    (entry,) = entries(store, history.POLICY_SET)
    assert entry.actor == "alice" and entry.details["policy"]["shadow"]["seconds"] == 60
    clear_policy(store, "iris", actor="bob")
    assert read_policy(store.paths("iris")) is None
    assert [e.action for e in entries(store, history.POLICY_SET, history.POLICY_CLEAR)] == [
        "policy_set",
        "policy_clear",
    ]
    with pytest.raises(Conflict, match="no delivery policy"):
        clear_policy(store, "iris")


def test_without_a_policy_a_publish_is_left_alone(store: Store, pipeline: Pipeline) -> None:
    a = publish(store, fit_iris())
    store.deploy("iris", a)
    publish(store, fit_iris(C=0.5))
    assert not pipeline.has_work(store.paths("iris"))
    pipeline.drive(store.paths("iris"))
    assert read_candidate(store.paths("iris")) is None and store.current("iris") == a


def test_versions_published_before_the_policy_are_not_its_candidates(store: Store, pipeline: Pipeline) -> None:
    a = publish(store, fit_iris(), 0.95)
    store.deploy("iris", a)
    publish(store, fit_iris(C=0.5))
    set_policy(store, "iris", POLICY)
    assert not pipeline.has_work(store.paths("iris"))


# -- the gate ---------------------------------------------------------------------------
def test_a_candidate_worse_than_max_drop_is_rejected_at_the_gate_and_a_deploy_makes_it_available(
    store: Store, pipeline: Pipeline
) -> None:
    a = live_with_policy(store)
    b = publish(store, fit_iris(C=0.5), 0.93)  # 0.02 below live, max_drop 0.01
    paths = store.paths("iris")
    assert pipeline.has_work(paths)
    pipeline.drive(paths)
    candidate = read_candidate(paths)
    assert candidate is not None and candidate.state == "rejected" and candidate.stage == "gate"
    assert "accuracy dropped from 0.95 to 0.93 (max_drop 0.01)" in candidate.reason
    assert store.registry("iris").status_of(b) == reg.REJECTED and store.current("iris") == a
    assert read_shadow(paths.shadow) is None and ro.read_rollout(paths.rollout) is None
    stage, reject = entries(store, history.POLICY_STAGE, history.POLICY_REJECT)
    assert (stage.actor, stage.details["stage"], reject.actor, reject.to_version) == ("policy", "gate", "policy", b)
    assert reject.details["figures"]["drop"] == pytest.approx(0.02)
    assert not pipeline.has_work(paths)  # judged once
    store.deploy("iris", b, reason="a person knows better")
    assert store.registry("iris").status_of(b) == reg.AVAILABLE


def test_a_candidate_whose_inputs_break_live_clients_is_rejected_at_the_gate(store: Store, pipeline: Pipeline) -> None:
    live_with_policy(store)
    narrow = DummyClassifier().fit(np.zeros((3, 2)), [0, 1, 2])
    b = publish(store, narrow, 0.99, example=[[0.0, 0.0]])
    pipeline.drive(store.paths("iris"))
    candidate = read_candidate(store.paths("iris"))
    assert candidate is not None and candidate.state == "rejected" and candidate.reason.startswith("gate: ")
    assert store.registry("iris").status_of(b) == reg.REJECTED


# -- the shadow -------------------------------------------------------------------------
def test_a_candidate_passes_the_gate_and_shadows_then_rolls_out_when_the_shadow_agrees(
    store: Store, pipeline: Pipeline, figures: Figures, clock: Clock
) -> None:
    a = live_with_policy(store)
    b = publish(store, fit_iris(C=0.5), 0.945)
    paths = store.paths("iris")
    pipeline.drive(paths)
    candidate = read_candidate(paths)
    assert candidate is not None and (candidate.stage, candidate.control_started) == ("shadow", True)
    shadow = read_shadow(paths.shadow)
    assert shadow is not None and shadow.version == b and shadow.started_by == "policy"
    clock.advance(30)
    pipeline.drive(paths)  # before seconds: not judged
    assert figures.asked == []
    clock.advance(31)
    figures.stats = {"requests": 150, "compared": 150, "rows": 150, "agreement": 0.97, "error_rate": 0.0}
    pipeline.drive(paths)
    assert figures.asked == [(a, b)]
    candidate = read_candidate(paths)
    assert candidate is not None and candidate.stage == "rollout" and candidate.control_started
    assert [s["stage"] for s in candidate.stages] == ["gate", "shadow"]
    assert candidate.stages[1]["figures"]["agreement"] == 0.97
    assert read_shadow(paths.shadow) is None
    rollout = ro.read_rollout(paths.rollout)
    assert rollout is not None and rollout.plan.version == b and rollout.plan.steps == (50.0, 100.0)
    assert rollout.started_by == "policy" and store.canary("iris") == b
    kinds = [(e.action, e.details.get("stage")) for e in entries(store) if e.actor == "policy"]
    assert kinds == [
        ("policy_stage", "gate"), ("policy_pass", "gate"), ("policy_stage", "shadow"), ("shadow_start", None),
        ("shadow_stop", None), ("policy_pass", "shadow"), ("policy_stage", "rollout"), ("rollout_start", None),
    ]  # fmt: skip


def test_a_shadow_that_disagrees_is_stopped_and_the_candidate_rejected(
    store: Store, pipeline: Pipeline, figures: Figures, clock: Clock
) -> None:
    a = live_with_policy(store)
    b = publish(store, fit_iris(C=0.5), 0.95)
    paths = store.paths("iris")
    pipeline.drive(paths)
    clock.advance(61)
    figures.stats = {"requests": 300, "agreement": 0.6, "error_rate": 0.0}
    pipeline.drive(paths)
    candidate = read_candidate(paths)
    assert candidate is not None and candidate.state == "rejected" and candidate.stage == "shadow"
    assert candidate.reason == "shadow: agreement 0.6000 < min_agreement 0.95"
    assert read_shadow(paths.shadow) is None and store.current("iris") == a and store.canary("iris") is None
    assert store.registry("iris").status_of(b) == reg.REJECTED
    (reject,) = entries(store, history.POLICY_REJECT)
    assert reject.details["figures"]["agreement"] == 0.6 and reject.details["stage"] == "shadow"


def test_a_shadow_without_enough_requests_holds_then_is_rejected_as_inconclusive(
    store: Store, pipeline: Pipeline, figures: Figures, clock: Clock
) -> None:
    live_with_policy(store)
    publish(store, fit_iris(C=0.5), 0.95)
    paths = store.paths("iris")
    pipeline.drive(paths)
    clock.advance(61)
    figures.stats = {"requests": 10, "agreement": 1.0}
    pipeline.drive(paths)
    held = read_candidate(paths)
    assert held is not None and held.state == "running" and held.held_since == clock.now
    assert held.last_figures is not None and held.last_figures["requests"] == 10
    clock.advance(599)
    pipeline.drive(paths)
    assert read_candidate(paths).state == "running"  # type: ignore[union-attr]
    clock.advance(2)
    pipeline.drive(paths)
    candidate = read_candidate(paths)
    assert candidate is not None and candidate.state == "rejected"
    assert candidate.reason.startswith("shadow: inconclusive: 10 requests compared, fewer than min_requests 100")


def test_the_shadow_judge_fails_on_errors_and_passes_without_an_agreement_figure() -> None:
    stage = ShadowStage(min_requests=10, min_agreement=0.9, max_error_rate=0.01)
    assert judge_shadow(stage, {"requests": 5})[0] == "hold"
    verdict, figures = judge_shadow(stage, {"requests": 50, "agreement": 0.99, "error_rate": 0.2})
    assert verdict == "fail" and figures["failed"] == "error rate 0.2000 > max_error_rate 0.01"
    assert judge_shadow(stage, {"requests": 50, "agreement": None, "error_rate": 0.0})[0] == "pass"  # a regressor


# -- the rollout, supersede, recovery --------------------------------------------------
def test_a_person_aborting_the_policys_rollout_rejects_the_candidate(
    store: Store, pipeline: Pipeline, figures: Figures
) -> None:
    a = live_with_policy(store, {"rollout": {"steps": [50, 100], "step_seconds": 30}})
    b = publish(store, fit_iris(C=0.5), 0.95)
    paths = store.paths("iris")
    pipeline.drive(paths)
    candidate = read_candidate(paths)
    assert candidate is not None and candidate.stage == "rollout" and store.canary("iris") == b
    ro.change_rollout(store, "iris", history.ROLLOUT_ABORT, actor="carol", reason="looks wrong")
    pipeline.drive(paths)
    candidate = read_candidate(paths)
    assert candidate is not None and candidate.state == "rejected" and candidate.reason == "rollout: looks wrong"
    assert store.current("iris") == a and store.registry("iris").status_of(b) == reg.REJECTED


def test_a_newer_publish_supersedes_the_candidate_in_flight(store: Store, pipeline: Pipeline, clock: Clock) -> None:
    live_with_policy(store)
    b = publish(store, fit_iris(C=0.5), 0.95)
    paths = store.paths("iris")
    pipeline.drive(paths)
    assert read_shadow(paths.shadow).version == b  # type: ignore[union-attr]
    c = publish(store, fit_iris(C=0.7), 0.95)
    assert pipeline.has_work(paths)
    pipeline.drive(paths)
    (superseded,) = entries(store, history.POLICY_SUPERSEDE)
    assert (superseded.from_version, superseded.to_version) == (b, c)
    assert "superseded by " + c in superseded.reason
    candidate = read_candidate(paths)
    assert candidate is not None and candidate.version == c and candidate.stage == "shadow"
    assert read_shadow(paths.shadow).version == c  # type: ignore[union-attr]
    assert store.registry("iris").status_of(b) == reg.AVAILABLE  # superseded, not rejected
    stops = entries(store, history.SHADOW_STOP)
    assert stops[-1].from_version == b and stops[-1].actor == "policy"


def test_a_stage_journaled_before_its_shadow_started_starts_it_on_the_next_tick(
    store: Store, pipeline: Pipeline
) -> None:
    """A crash between the stage's entry and the shadow's start leaves the flag unset."""
    live_with_policy(store)
    b = publish(store, fit_iris(C=0.5), 0.95)
    paths = store.paths("iris")
    pipeline.drive(paths)
    stop_shadow(store, "iris", actor="test")
    candidate = read_candidate(paths)
    assert candidate is not None
    atomic_write_json(paths.candidate, replace(candidate, control_started=False).to_dict())
    pipeline.drive(paths)
    assert read_shadow(paths.shadow).version == b  # type: ignore[union-attr]
    assert read_candidate(paths).control_started  # type: ignore[union-attr]
    stop_shadow(store, "iris", actor="dave")  # stopped once started: a person ended the stage
    pipeline.drive(paths)
    assert read_candidate(paths).state == "rejected"  # type: ignore[union-attr]


def test_the_view_has_the_policy_and_the_candidates_stage_figures_and_verdicts(
    store: Store, pipeline: Pipeline
) -> None:
    live_with_policy(store)
    b = publish(store, fit_iris(C=0.5), 0.95)
    pipeline.drive(store.paths("iris"))
    view = candidate_view(store, "iris")
    assert view["policy"]["gate"] == {"metric": "accuracy", "max_drop": 0.01} and view["policy"]["set_at"]
    candidate = view["candidate"]
    assert candidate["version"] == b and candidate["state"] == "running" and candidate["stage"] == "shadow"
    (gate,) = candidate["stages"]
    assert gate["verdict"] == "pass" and gate["figures"]["candidate"] == 0.95 and gate["figures"]["live_value"] == 0.95
    assert Policy.from_dict("iris", candidate["policy"]).rules() == Policy.from_dict("iris", POLICY).rules()


def test_a_policy_with_nothing_live_waits_for_a_person_to_deploy_the_first_version(
    store: Store, pipeline: Pipeline
) -> None:
    publish(store, fit_iris())
    set_policy(store, "iris", POLICY)
    publish(store, fit_iris(C=0.5))
    assert not pipeline.has_work(store.paths("iris"))


def left_at_its_gate(store: Store, clock: Clock) -> ModelPaths:
    """A live version under POLICY and a candidate left at its gate, as a crash between
    begin's gate entry and its judgement leaves it; the model's paths."""
    from modelswap.core.delivery.pipeline import Candidate

    a = live_with_policy(store)
    b = publish(store, fit_iris(C=0.5), 0.95)
    paths = store.paths("iris")
    atomic_write_json(paths.candidate, Candidate(b, a, "running", "gate", clock(), clock(), POLICY).to_dict())
    return paths


def test_a_candidate_left_at_its_gate_is_judged_on_the_next_tick(
    store: Store, pipeline: Pipeline, clock: Clock
) -> None:
    paths = left_at_its_gate(store, clock)
    pipeline.drive(paths)
    candidate = read_candidate(paths)
    assert candidate is not None and candidate.stage == "shadow" and candidate.stages[0]["verdict"] == "pass"


def test_a_candidate_at_its_gate_is_judged_by_the_policy_it_began_under_even_once_cleared(
    store: Store, pipeline: Pipeline, clock: Clock
) -> None:
    paths = left_at_its_gate(store, clock)
    clear_policy(store, "iris")
    assert pipeline.has_work(paths)
    pipeline.drive(paths)
    candidate = read_candidate(paths)
    assert candidate is not None and candidate.stage == "shadow" and candidate.stages[0]["verdict"] == "pass"


def test_a_candidate_whose_manifest_is_damaged_is_rejected_at_the_gate_not_retried_every_tick(
    store: Store, pipeline: Pipeline
) -> None:
    live_with_policy(store)
    b = publish(store, fit_iris(C=0.5), 0.95)
    paths = store.paths("iris")
    (paths.version_dir(b) / "manifest.json").write_text("{ not json")
    pipeline.drive(paths)
    candidate = read_candidate(paths)
    assert candidate is not None and (candidate.state, candidate.stage) == ("rejected", "gate")
    assert not pipeline.has_work(paths)


def test_a_damaged_policy_file_is_repaired_by_setting_the_policy_again(store: Store) -> None:
    live_with_policy(store)
    paths = store.paths("iris")
    paths.policy.write_text("{not json")
    with pytest.raises(InvalidInput):
        read_policy(paths)
    set_policy(store, "iris", POLICY, actor="test", reason="repair")
    assert read_policy(paths) is not None and entries(store, history.POLICY_SET)[-1].reason == "repair"


def test_an_alert_naming_a_linked_model_directory_is_an_unknown_model_not_an_error(
    store: Store, tmp_path: Path
) -> None:
    from modelswap.core.delivery.alerts import Alert, handle
    from modelswap.core.training.jobs import Jobs

    live_with_policy(store)
    (store.root / "elsewhere").symlink_to(store.root / "iris")
    alert = Alert("ModelswapFeatureDrift", "firing", {"model": "elsewhere", "severity": "page"}, {}, "", "f")
    outcome = handle(store, Jobs(store.root), alert, caller="test", covers=lambda model: True)
    assert outcome == {"outcome": "unknown_model"}
