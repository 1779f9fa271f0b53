"""Progressive delivery's parts on a real store: plans and gates, the rollout's journaled
transitions, the lease between processes, the watch written with its deploy, the shadow's
comparison counts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelswap.core.delivery import rollout as ro
from modelswap.core.delivery.driver import Lease, rollout_view, shadow_view
from modelswap.core.delivery.gates import FAIL, HOLD, PASS, judge, prediction_psi
from modelswap.core.delivery.shadow import read_shadow, start_shadow, stop_shadow
from modelswap.core.delivery.shadow_runner import Job, ShadowRunner, fleet_summary
from modelswap.core.delivery.watched_deploy import TRIPPED, Watch, WatchPlan, check_not_tripped, read_watch
from modelswap.core.errors import Conflict, InvalidInput
from modelswap.core.monitoring.counts import Cell, Counts
from modelswap.core.monitoring.profiles import CLASSES, NUMERIC, FeatureProfile
from modelswap.core.operations import Operations
from modelswap.core.serving.loader import load_version
from modelswap.core.serving.snapshot import SHADOW, STABLE, Snapshot
from modelswap.core.store import history
from modelswap.core.store.fsio import write_then
from modelswap.core.store.store import Store
from modelswap.core.store.verify import verify_store

# -- plans and gates ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": [50, 25, 100]}, "rising"),
        ({"steps": [5, 25, 50]}, "ending at 100"),
        ({"steps": []}, "rising"),
        ({"min_requests": 0}, "min_requests"),
        ({"gates": {"max_psy": 0.1}}, "unknown gate(s): max_psy"),
        ({"gates": {"max_psi": True}}, "gate max_psi"),
        ({"step_secs": 3}, "unknown rollout field(s): step_secs"),
    ],
)
def test_a_bad_plan_is_refused_with_what_is_wrong(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        ro.Plan.from_dict({"version": "20261124-010203-abcdef", **change})


def cell(
    requests: int, *, server_errors: int = 0, latency_bucket: int = 2, correct: int = 0, labelled: int = 0
) -> Cell:
    c = Cell(requests=requests)
    c.errors["server"] = server_errors
    c.latency[latency_bucket] = requests
    c.feedback.update({"n": labelled, "correct": correct})
    return c


def test_the_psi_gate_tells_a_shifted_canary_from_sampling_noise_at_any_size() -> None:
    """A healthy canary judged on a small step: draws from the stable shares (three classes,
    and ten numeric bins with rare ones) fail max_psi about one step in a thousand, where
    the bare PSI limit fails one in six at 20 predictions; a constant classifier fails at 30."""
    rng = np.random.default_rng(3)
    labels = FeatureProfile("prediction", CLASSES, categories=("0", "1", "2"))
    bins = FeatureProfile("prediction", NUMERIC, edges=tuple(float(x) for x in range(1, 10)))
    over_limit = failed = trials = 0
    for profile, shares in ((labels, [1 / 3] * 3), (bins, [0.3, 0.2, 0.15, 0.1, 0.08, 0.06, 0.05, 0.03, 0.02, 0.01])):
        for n in (20, 60):
            for _ in range(150):
                stable, canary = Counts(rng.multinomial(3000, shares)), Counts(rng.multinomial(n, shares))
                shift = prediction_psi(stable, profile, canary, profile)
                assert shift is not None and shift.predictions == n
                verdict = judge(ro.GATE_DEFAULTS, n, cell(n), cell(3000), shift=shift)
                over = shift.psi > ro.GATE_DEFAULTS["max_psi"]  # type: ignore[operator]
                assert over or "noise" not in vars(shift)  # the draws are made only for a PSI over its limit
                over_limit += over
                failed += "max_psi" in verdict["failed"]
                trials += 1
    assert over_limit > trials // 10 and failed <= 3, (over_limit, failed, trials)
    constant = prediction_psi(Counts(np.array([300, 300, 300])), labels, Counts(np.array([30, 0, 0])), labels)
    assert constant is not None and constant.psi > 5 * constant.noise
    assert judge(ro.GATE_DEFAULTS, 30, cell(30), cell(900), shift=constant)["failed"] == ["max_psi"]


def test_too_few_canary_requests_is_a_hold_never_a_pass() -> None:
    verdict = judge(ro.GATE_DEFAULTS, 100, cell(99), cell(1000))
    assert verdict["verdict"] == HOLD and verdict["canary"]["requests"] == 99


def test_the_error_gate_compares_the_canary_with_stable() -> None:
    failing = judge(ro.GATE_DEFAULTS, 100, cell(180, server_errors=20), cell(1000, server_errors=10))
    assert failing["verdict"] == FAIL and failing["failed"] == ["max_error_increase"]
    gate = failing["gates"][0]
    assert gate["value"] == pytest.approx(0.1 - 10 / 1010)
    client_errors = cell(200)
    client_errors.errors["client"] = 50  # a client's bad input is not the version's fault
    assert judge(ro.GATE_DEFAULTS, 100, client_errors, cell(1000))["verdict"] == PASS


def test_the_latency_gate_fails_a_slow_canary_but_not_a_bucket_of_noise() -> None:
    slow = judge(ro.GATE_DEFAULTS, 10, cell(100, latency_bucket=7), cell(100, latency_bucket=2))  # 100 vs 2.5 ms
    assert slow["failed"] == ["max_latency_ratio"]
    near = judge(ro.GATE_DEFAULTS, 10, cell(100, latency_bucket=4), cell(100, latency_bucket=2))  # 10 vs 2.5 ms
    assert near["verdict"] == PASS and near["gates"][1]["value"] == 4.0 and "within 25 ms" in near["gates"][1]["note"]
    strict = judge({**ro.GATE_DEFAULTS, "latency_slack_ms": 0}, 10, cell(100, latency_bucket=4), cell(100))
    assert strict["failed"] == ["max_latency_ratio"]


def test_psi_lines_up_class_labels_by_name_and_agreement_and_quality_gate() -> None:
    stable_profile = FeatureProfile("prediction", CLASSES, categories=("0", "1", "2", "__other__"))
    canary_profile = FeatureProfile("prediction", CLASSES, categories=("0", "__other__"))
    stable = Counts(np.array([300, 300, 300, 0]))
    constant = Counts(np.array([900, 0]))
    shift = prediction_psi(stable, stable_profile, constant, canary_profile)
    assert shift is not None and shift.psi > 1 and shift.predictions == 900
    same = prediction_psi(stable, stable_profile, Counts(np.array([300, 300, 300, 0])), stable_profile)
    assert same is not None and same.psi == 0
    verdict = judge(ro.GATE_DEFAULTS, 10, cell(100, correct=20, labelled=40), cell(100, correct=38, labelled=40),
                    shift=shift, shadow={"rows": 500, "agreement": 0.33})  # fmt: skip
    assert set(verdict["failed"]) == {"max_psi", "min_agreement", "max_quality_drop"}
    skipped = judge({**ro.GATE_DEFAULTS, "max_psi": None, "min_agreement": None}, 10, cell(100), cell(100), shift=shift)
    assert skipped["verdict"] == PASS and {g["gate"] for g in skipped["gates"]} == {
        "max_error_increase", "max_latency_ratio", "max_quality_drop"}  # fmt: skip


# -- the rollout's store changes -------------------------------------------------------


def test_start_step_pause_resume_abort_are_journaled_with_their_files(iris_pair: tuple[Store, str, str]) -> None:
    store, a, b = iris_pair
    state = ro.start_rollout(store, "iris", ro.Plan(b, steps=(10, 50, 100)), actor="me", reason="weekly")
    paths = store.paths("iris")
    assert store.canary("iris") == b and json.loads(paths.abtest.read_text())["fraction"] == 0.1
    with pytest.raises(Conflict, match="is running"):
        ro.start_rollout(store, "iris", ro.Plan(b), actor="me")
    stepped = ro.change_rollout(store, "iris", history.ROLLOUT_STEP, actor=ro.ACTOR, expect=state, reason="ok")
    assert stepped.percent == 50 and json.loads(paths.abtest.read_text())["fraction"] == 0.5
    with pytest.raises(Conflict, match="changed while it was judged"):
        ro.change_rollout(store, "iris", history.ROLLOUT_STEP, actor=ro.ACTOR, expect=state)
    ro.change_rollout(store, "iris", history.ROLLOUT_PAUSE, actor="me")
    assert rollout_view(store, "iris")["state"] == "paused"
    assert verify_store(store, ["iris"]).to_dict()["ok"], "verify must not see the rollout's canary as stray"
    ro.change_rollout(store, "iris", history.ROLLOUT_RESUME, actor="me")
    ended = ro.change_rollout(store, "iris", history.ROLLOUT_ABORT, actor="me", reason="enough")
    assert ended.state == ro.ABORTED and store.canary("iris") is None and store.current("iris") == a
    entries = [(e.action, e.from_version, e.to_version) for e in store.history("iris")][:5]
    assert entries == [
        ("rollout_abort", b, a), ("rollout_resume", a, b), ("rollout_pause", a, b),
        ("rollout_step", a, b), ("rollout_start", a, b),
    ]  # fmt: skip
    assert verify_store(store, ["iris"]).to_dict()["ok"]
    with pytest.raises(Conflict, match="no rollout"):
        ro.change_rollout(store, "iris", history.ROLLOUT_PAUSE, actor="me")


def test_each_step_keeps_the_judgement_that_passed_it_through_the_promotion(iris_pair: tuple[Store, str, str]) -> None:
    """The figures of every gate at every step stay readable (the console draws the steps
    with them), not only the last judgement's."""
    store, a, b = iris_pair
    state = ro.start_rollout(store, "iris", ro.Plan(b, steps=(10, 50, 100)), actor="me")
    assert rollout_view(store, "iris")["passed"] == []
    judgements = [
        {"verdict": PASS, "step_percent": p, "gates": [{"gate": "max_psi", "value": v, "limit": 0.2, "passed": True}]}
        for p, v in ((10, 0.01), (50, 0.02), (100, 0.03))
    ]
    for judgement in judgements[:2]:
        state = ro.change_rollout(store, "iris", history.ROLLOUT_STEP, actor=ro.ACTOR, expect=state,
                                  details=judgement)  # fmt: skip
    assert [j["step_percent"] for j in rollout_view(store, "iris")["passed"]] == [10, 50]
    store.deploy("iris", b)  # the promotion's own move, then the rollout is marked promoted
    done = ro.finish_promoted(store, "iris", judgements[2])
    assert done is not None and done.state == ro.PROMOTED
    view = rollout_view(store, "iris")
    assert view["passed"] == judgements and view["state"] == "promoted"
    older = {k: v for k, v in done.to_dict().items() if k != "passed"}  # a file from before: no judgements kept
    assert ro.Rollout.from_dict(older).passed == ()
    with pytest.raises(InvalidInput, match="passed"):
        ro.Rollout.from_dict({**older, "passed": "all"})


def test_a_failed_second_write_puts_the_first_back(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"before": 1}')

    def fail() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_then(path, {"after": 2}, fail)
    assert json.loads(path.read_text()) == {"before": 1}
    with pytest.raises(OSError):
        write_then(tmp_path / "new.json", {"after": 2}, fail)
    assert not (tmp_path / "new.json").exists()


# -- the lease ----------------------------------------------------------------------------


def test_one_process_holds_the_lease_and_another_takes_over_when_it_expires(iris_pair: tuple[Store, str, str]) -> None:
    store, _, _ = iris_pair
    now = [1000.0]
    first, second = Lease(store, 10, lambda: now[0]), Lease(store, 10, lambda: now[0])
    first.me, second.me = "pod-a-1", "pod-b-2"
    paths = store.paths("iris")
    assert first.hold(paths) and not second.hold(paths)
    now[0] += 8  # the holder renews before it runs out
    assert first.hold(paths) and not second.hold(paths)
    now[0] += 12  # the holder died 12 s ago: its lease ran out
    assert second.hold(paths) and json.loads(paths.lease.read_text())["holder"] == "pod-b-2"
    assert not first.hold(paths)
    second.release(paths)
    assert not paths.lease.exists()


# -- the watched deploy ------------------------------------------------------------------


def test_a_watched_deploy_writes_its_watch_with_the_deploy_and_a_trip_blocks_that_version(
    iris_pair: tuple[Store, str, str],
) -> None:
    store, a, b = iris_pair
    ops = Operations(store)
    plan = WatchPlan.from_fields({"watch": 600, "max_error_rate": 0.02})
    assert plan is not None
    ops.deploy("iris", b, actor="me", watch=plan)
    watch = read_watch(store.paths("iris").watch)
    assert watch is not None and (watch.version, watch.previous, watch.state) == (b, a, "watching")
    deploy = store.history("iris")[0]
    assert deploy.action == "deploy" and deploy.details["watch"]["watch"] == 600
    with pytest.raises(Conflict, match="already live"):
        ops.deploy("iris", b, actor="me", watch=plan)
    store.paths("iris").watch.write_text(json.dumps(Watch(plan, b, a, 0.0, TRIPPED, "error rate").to_dict()))
    with pytest.raises(Conflict, match="watch reset"):
        check_not_tripped(store, "iris", b)
    ops.watch_reset("iris", actor="me", reason="understood")
    check_not_tripped(store, "iris", b)
    assert store.history("iris")[0].action == "watch_reset"
    with pytest.raises(InvalidInput, match="need 'watch'"):
        WatchPlan.from_fields({"max_error_rate": 0.1})


# -- the shadow --------------------------------------------------------------------------


def test_shadow_start_and_stop_are_journaled_and_the_runner_counts_agreement(
    iris_pair: tuple[Store, str, str], iris_a: Any
) -> None:
    store, a, b = iris_pair
    config = start_shadow(store, "iris", b, 0.5, actor="me")
    assert read_shadow(store.paths("iris").shadow) == config
    with pytest.raises(Conflict, match="is live"):
        start_shadow(store, "iris", a, actor="me")
    paths = store.paths("iris")
    stable = Snapshot.of(load_version(paths, a), STABLE)
    shadow = Snapshot.of(load_version(paths, b), SHADOW)
    now = [1_800_000_000.0]
    runner = ShadowRunner(clock=lambda: now[0], bucket_seconds=60, keep_seconds=600)
    X = np.asarray([[6.0, 2.9, 4.5, 1.5], [5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3]])
    ours = iris_a.predict(X)
    runner.run_jobs([Job(stable, shadow, config.started_at, X, ours, "predict", 0.001)] * 3)
    now[0] += 120  # two buckets later: agreement over time has two points
    disagreeing = np.asarray([label + 1 for label in shadow.loaded.estimator.predict(X[:1])])
    runner.run_jobs([Job(stable, shadow, config.started_at, X, ours, "predict", 0.001)])
    runner.run_jobs([Job(stable, shadow, config.started_at, X[:1], disagreeing, "predict", 0.001)])
    runner.flush(paths)
    summary = fleet_summary(paths, a, b, config.started_at, stale=60)
    theirs = shadow.loaded.estimator.predict(X)
    agree = float(np.mean(ours == theirs))
    assert summary["rows"] == 13 and summary["agreement"] == pytest.approx((12 * agree) / 13)
    assert [(p["start"], p["rows"]) for p in summary["series"]] == [
        ("2027-01-15T08:00:00.000Z", 9),
        ("2027-01-15T08:02:00.000Z", 4),
    ]
    assert summary["series"][0]["agreement"] == pytest.approx(agree)
    assert summary["series"][1]["agreement"] == pytest.approx(3 * agree / 4)
    assert sum(c["rows"] for c in summary["confusion"]) == 13 and summary["processes"] == 1
    view = shadow_view(store, "iris", stale=60)
    assert view["running"] and view["agreement"] == summary["agreement"] and view["fraction"] == 0.5
    now[0] += 900  # past keep_seconds: the old points go as new ones come
    runner.run_jobs([Job(stable, shadow, config.started_at, X, ours, "predict", 0.001)])
    runner.flush(paths)
    assert len(fleet_summary(paths, a, b, config.started_at, stale=3600)["series"]) == 1
    stop_shadow(store, "iris", actor="me")
    assert not paths.shadow.exists()
    assert [e.action for e in store.history("iris")][:2] == ["shadow_stop", "shadow_start"]


def test_a_damaged_shadow_counts_file_is_left_out_whole_and_the_others_still_sum(
    iris_pair: tuple[Store, str, str], iris_a: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store, a, b = iris_pair
    config = start_shadow(store, "iris", b, 0.5, actor="me")
    paths = store.paths("iris")
    stable = Snapshot.of(load_version(paths, a), STABLE)
    shadow = Snapshot.of(load_version(paths, b), SHADOW)
    runner = ShadowRunner(bucket_seconds=60, keep_seconds=600)
    X = np.asarray([[6.0, 2.9, 4.5, 1.5], [5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3]])
    runner.run_jobs([Job(stable, shadow, config.started_at, X, iris_a.predict(X), "predict", 0.001)])
    runner.flush(paths)
    ours = fleet_summary(paths, a, b, config.started_at, stale=60)
    # Another process's file: a good pair first, then one a broken writer left behind.
    pair = {"live": a, "shadow": b, "started_at": config.started_at}
    damaged = {"time": time.time(), "dropped": 7,
               "pairs": [{**pair, "rows": 100, "agree": 100}, {**pair, "rows": "many"}]}  # fmt: skip
    (paths.shadow_dir / "elsewhere-1.json").write_text(json.dumps(damaged))
    summary = fleet_summary(paths, a, b, config.started_at, stale=60)
    assert (summary["rows"], summary["agreement"], summary["dropped"]) == (3, ours["agreement"], 0)
    assert summary["processes"] == 2  # it was seen, and left out whole: not its good pair either
    assert "a shadow counts file is damaged" in caplog.text
    assert shadow_view(store, "iris", stale=60)["stats"]["rows"] == 3  # the view answers instead of failing
