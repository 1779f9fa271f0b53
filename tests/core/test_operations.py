"""The operations layer: verbs counted once for success and failure, views shaped once."""

from __future__ import annotations

import io
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from modelswap.core.delivery.abtest import Guard
from modelswap.core.delivery.watched_deploy import WatchPlan
from modelswap.core.errors import (
    Conflict,
    InvalidInput,
    InvalidName,
    ModelNotFound,
    NothingToRollBack,
    ValidationFailed,
)
from modelswap.core.metrics import Metrics
from modelswap.core.operations import Operations
from modelswap.core.serving.slots import Serving
from modelswap.core.store.store import Store
from modelswap.core.store.verify import verify_store
from tests.conftest import IRIS_ROW, publish


def admin_count(registry: CollectorRegistry, model: str, action: str, outcome: str) -> float:
    value = registry.get_sample_value(
        "modelswap_admin_actions_total", {"model": model, "action": action, "outcome": outcome}
    )
    return value or 0.0


@pytest.fixture
def ops(store: Store) -> tuple[Operations, CollectorRegistry]:
    registry = CollectorRegistry()
    return Operations(store, metrics=Metrics(registry)), registry


def test_every_verb_counts_success_and_failure_in_one_place(
    ops: tuple[Operations, CollectorRegistry], store: Store, iris_a: Any
) -> None:
    op, registry = ops
    a, b = publish(store, iris_a), publish(store, iris_a)
    op.deploy("iris", a, actor="t")
    with pytest.raises(NothingToRollBack):
        op.rollback("iris", actor="t")
    op.gc("iris", 5, actor="t")
    with pytest.raises(ValidationFailed):
        op.publish("iris", io.BytesIO(b"not a pickle"), actor="t", action="upload", example=[IRIS_ROW])
    op.canary_start("iris", b, 0.2, guard=Guard(0.5, 10), actor="t")
    assert op.canary_abort("iris", a, reason="not the canary") is False  # another canary: noop
    assert op.canary_abort("iris", b, reason="guard tripped") is True
    assert [
        admin_count(registry, "iris", action, outcome)
        for action, outcome in [
            ("deploy", "success"),
            ("rollback", "failure"),
            ("gc", "success"),
            ("upload", "failure"),
            ("canary_start", "success"),
            ("canary_abort", "noop"),
            ("canary_abort", "success"),
        ]
    ] == [1, 1, 1, 1, 1, 1, 1]
    assert store.history("iris")[0].action == "canary_abort" and store.history("iris")[0].actor == "guard"


def test_monitor_thresholds_are_a_counted_verb_that_never_creates_a_model(
    ops: tuple[Operations, CollectorRegistry], store: Store, iris_a: Any
) -> None:
    op, registry = ops
    store.deploy("iris", publish(store, iris_a))
    changed = op.set_monitor_config("iris", {"psi_warning": 0.4})
    assert changed["model"] == "iris" and changed["psi_warning"] == 0.4
    assert op.monitor_config("iris") == changed
    with pytest.raises(InvalidInput, match="psi_warnin"):
        op.set_monitor_config("iris", {"psi_warnin": 1})
    with pytest.raises(ModelNotFound):
        op.set_monitor_config("ghost", {"psi_warning": 1})
    assert not (store.root / "ghost").exists()
    assert op.monitor_config("iris")["psi_warning"] == 0.4
    counted = [admin_count(registry, "iris", "set_monitor_config", o) for o in ("success", "failure")]
    assert counted == [1, 1]


def test_a_bad_model_name_is_refused_before_it_becomes_a_metric_label(
    ops: tuple[Operations, CollectorRegistry],
) -> None:
    op, registry = ops
    with pytest.raises(InvalidName):
        op.deploy("../etc", "20261123-000000-abcdef", actor="t")
    with pytest.raises(ModelNotFound):
        op.deploy("ghost", "20261123-000000-abcdef", actor="t")
    assert admin_count(registry, "../etc", "deploy", "failure") == 0
    assert admin_count(registry, "ghost", "deploy", "failure") == 1


def test_views_mark_live_versions_and_say_when_no_process_serves(
    ops: tuple[Operations, CollectorRegistry], store: Store, iris_a: Any
) -> None:
    op, _ = ops
    a, b, c = (publish(store, iris_a) for _ in range(3))
    op.deploy("iris", a, actor="t")
    op.deploy("iris", b, actor="t")
    op.canary_start("iris", c, 0.1, actor="t")
    view = op.versions("iris")
    assert (view["current"], view["canary"], view["previous"]) == (b, c, a)
    assert [(v["id"], v["live"]) for v in view["versions"]] == [(c, ["canary"]), (b, ["current"]), (a, ["previous"])]
    model = op.model("iris")
    assert model["this_process"] is None and model["current"] == b
    assert op.canary("iris")["this_process"] is None
    assert [e["action"] for e in op.history("iris", limit=2)["history"]] == ["canary_start", "deploy"]
    assert op.version("iris", a)["manifest"]["version"] == a
    assert op.fleet("iris")["summary"] == "no serving process reported in"


def test_with_serving_a_deploy_returns_once_this_process_serves_it(store: Store, iris_a: Any, iris_b: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_b)
    store.deploy("iris", a)
    serving = Serving({"iris": store.paths("iris")}, metrics=Metrics(CollectorRegistry()))
    swaps: list[str] = []
    op = Operations(store, serving=serving, on_swap=lambda: swaps.append("beat"))
    serving.slot("iris").sync()
    op.deploy("iris", b, actor="t")
    assert serving.slot("iris").version == b and swaps == ["beat"]
    assert op.model("iris")["this_process"]["serving"] == b
    assert op.reload("iris")["serving"] == b


def test_a_watched_deploy_of_the_live_version_is_refused_and_leaves_no_temp_link(
    ops: tuple[Operations, CollectorRegistry], store: Store, iris_a: Any
) -> None:
    op, _ = ops
    a = publish(store, iris_a)
    op.deploy("iris", a, actor="t")
    paths = store.paths("iris")
    before = sorted(p.name for p in paths.dir.iterdir())
    with pytest.raises(Conflict, match="already live"):
        op.deploy("iris", a, actor="t", watch=WatchPlan(60))
    assert sorted(p.name for p in paths.dir.iterdir()) == before  # no current.tmp-* beside current
    assert not paths.watch.exists() and store.current("iris") == a
    assert verify_store(store).ok and not verify_store(store).problems
