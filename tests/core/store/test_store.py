import os
from pathlib import Path
from typing import Any

import joblib
import pytest

from modelswap.core.errors import (
    Conflict,
    CorruptRegistry,
    InvalidName,
    ModelNotFound,
    NoReferenceWarning,
    NothingToRollBack,
    ValidationFailed,
    VersionNotFound,
)
from modelswap.core.store import registry as reg
from modelswap.core.store.layout import MODEL_FILE
from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, publish
from tests.models_for_tests import RaisesOnPredict


def tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under root with its content (files) or target (links)."""
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = "-> " + os.readlink(path)
        elif path.is_file():
            out[key] = path.read_bytes()
    return out


def test_publish_creates_a_complete_registered_version_without_deploying(store: Store, iris_a: Any) -> None:
    version = publish(store, iris_a, metrics={"accuracy": 0.97})
    paths = store.paths("iris")
    assert paths.version_dir(version).is_dir()
    assert store.registry("iris").get(version).metrics == {"accuracy": 0.97}  # type: ignore[union-attr]
    assert store.current("iris") is None
    assert [p.name for p in paths.versions_dir.iterdir()] == [version]


def test_a_publish_without_a_reference_warns_once_that_drift_monitoring_is_off(store: Store, iris_a: Any) -> None:
    import warnings

    import numpy as np

    with pytest.warns(NoReferenceWarning) as said:
        version = store.publish("iris", iris_a, example=[IRIS_ROW]).id
    assert [str(w.message) for w in said] == [
        f"iris {version}: no reference: drift monitoring is off for this version; "
        "pass reference= (the rows it was trained on)"
    ]
    assert said[0].filename == __file__  # pointed at the caller's publish line
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoReferenceWarning)
        store.publish("iris", iris_a, example=[IRIS_ROW], reference=np.array([IRIS_ROW] * 3))


def test_publish_from_a_file_copies_it_and_takes_the_example_from_the_live_parent(
    store: Store, iris_a: Any, iris_file: Path
) -> None:
    first = publish(store, iris_a)
    store.deploy("iris", first)
    second = store.publish("iris", iris_file).id
    manifest = store.manifest("iris", second)
    assert manifest.parent == first and manifest.input_example == (IRIS_ROW,)
    assert (store.paths("iris").version_dir(second) / MODEL_FILE).read_bytes() == iris_file.read_bytes()


def test_deploy_moves_a_relative_current_link_and_records_history(store: Store, iris_a: Any, iris_b: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_b)
    store.deploy("iris", a)
    t = store.deploy("iris", b, actor="alice", reason="better")
    assert (t.previous, t.current) == (a, b)
    assert os.readlink(store.paths("iris").current) == f"versions/{b}"
    last = store.history("iris", limit=1)[0]
    assert (last.action, last.actor, last.from_version, last.to_version, last.reason) == (
        "deploy",
        "alice",
        a,
        b,
        "better",
    )


def test_rollback_without_target_goes_back_and_marks_the_version_left(store: Store, iris_a: Any, iris_b: Any) -> None:
    a, b, c = publish(store, iris_a), publish(store, iris_b), publish(store, iris_a)
    for v in (a, b, c):
        store.deploy("iris", v)
    assert store.rollback("iris").current == b
    assert store.registry("iris").status_of(c) == reg.ROLLED_BACK
    assert store.rollback("iris").current == a
    with pytest.raises(NothingToRollBack):
        store.rollback("iris")
    store.deploy("iris", c)  # an explicit deploy clears the mark
    assert store.registry("iris").status_of(c) == reg.AVAILABLE


def test_rollback_to_a_named_version(store: Store, iris_a: Any, iris_b: Any) -> None:
    a, b, c = publish(store, iris_a), publish(store, iris_b), publish(store, iris_a)
    store.deploy("iris", c)
    t = store.rollback("iris", to=a)
    assert (t.previous, t.current) == (c, a)
    with pytest.raises(Conflict):
        store.rollback("iris", to=a)
    assert b in store.registry("iris")


def test_a_corrupted_version_is_refused_and_nothing_changes(store: Store, iris_a: Any, iris_b: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_b)
    store.deploy("iris", a)
    model_file = store.paths("iris").version_dir(b) / MODEL_FILE
    model_file.write_bytes(model_file.read_bytes()[:-10])
    before = tree(store.root)
    with pytest.raises(ValidationFailed, match="corrupt"):
        store.deploy("iris", b)
    assert tree(store.root) == before


def test_a_version_that_cannot_predict_its_example_is_refused(store: Store, iris_a: Any) -> None:
    a = publish(store, iris_a)
    store.deploy("iris", a)
    with pytest.raises(ValidationFailed, match="predict on the input example failed"):
        store.publish("iris", RaisesOnPredict(), example=[IRIS_ROW])
    assert [p.name for p in store.paths("iris").versions_dir.iterdir()] == [a]


def test_publishing_garbage_or_a_non_estimator_leaves_nothing_behind(store: Store, iris_a: Any, tmp_path: Path) -> None:
    publish(store, iris_a)
    before = tree(store.root)
    garbage = tmp_path / "garbage.joblib"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(ValidationFailed, match="cannot be loaded"):
        store.publish("iris", garbage, example=[IRIS_ROW])
    not_model = tmp_path / "dict.joblib"
    joblib.dump({"weights": [1, 2]}, not_model)
    with pytest.raises(ValidationFailed, match="not an estimator"):
        store.publish("iris", not_model, example=[IRIS_ROW])
    assert tree(store.root) == before


def test_wrong_example_width_is_refused(store: Store, iris_a: Any) -> None:
    with pytest.raises(ValidationFailed):
        store.publish("iris", iris_a, example=[[1.0, 2.0]])


def test_unknown_models_and_versions_are_not_found(store: Store, iris_a: Any) -> None:
    with pytest.raises(ModelNotFound):
        store.registry("nope")
    publish(store, iris_a)
    with pytest.raises(VersionNotFound):
        store.deploy("iris", "20200101-000000-abcdef")


@pytest.mark.parametrize("model", ["../evil", "/etc", "", "A"])
def test_hostile_model_names_touch_nothing(store: Store, iris_a: Any, model: str, tmp_path: Path) -> None:
    before = tree(tmp_path)
    with pytest.raises(InvalidName):
        store.publish(model, iris_a, example=[IRIS_ROW])
    with pytest.raises(InvalidName):
        store.deploy(model, "20261123-000000-abcdef")
    assert tree(tmp_path) == before


def test_a_truncated_registry_is_reported_with_its_path(store: Store, iris_a: Any) -> None:
    publish(store, iris_a)
    path = store.paths("iris").registry
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(CorruptRegistry, match=str(path)):
        store.registry("iris")


def test_damaged_metrics_or_abtest_files_give_clear_errors_not_crashes(store: Store, iris_a: Any) -> None:
    a = publish(store, iris_a)
    store.deploy("iris", a)
    (store.paths("iris").version_dir(a) / "metrics.json").write_text("{nope")
    with pytest.raises(ValidationFailed, match="metrics.json is not valid JSON"):
        store.metrics("iris", a)
    store.paths("iris").abtest.write_text("[broken")
    assert store.canary("iris") is None and store.status("iris").canary is None
    with pytest.raises(ValidationFailed, match="could not convert string to float: 'a'"):
        store.publish("iris", iris_a, example=[["a", "b", "c", "d"]])
    assert store.on_disk("iris") == [a]


def test_status_reports_current_canary_and_previous(store: Store, iris_a: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_a)
    store.deploy("iris", a)
    store.deploy("iris", b)
    status = store.status("iris")
    assert (status.current, status.previous, status.canary, status.versions) == (b, a, None, 2)
    assert store.models() == ["iris"]
