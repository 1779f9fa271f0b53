"""The skops format in the store: publish, load, trusted types; and the settings it reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import pytest
import skops.io

from modelswap.core.errors import InvalidInput, UntrustedTypes, ValidationFailed
from modelswap.core.settings import Settings
from modelswap.core.store.formats import JOBLIB, SKOPS, detect_format, load_model, plain_views
from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, ROOT, StepClock
from tests.core.store.test_store import tree
from tests.models_for_tests import Constant, RunsCodeWhenUnpickled, churn_pipeline

CONSTANT = "tests.models_for_tests.Constant"


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    model, frame = churn_pipeline()
    path = tmp_path_factory.mktemp("skops") / "model.skops"
    skops.io.dump(model, path)
    return path, frame


def test_a_skops_file_publishes_loads_and_serves_like_a_joblib_one(
    store: Store, churn: tuple[Path, Any], iris_a: Any
) -> None:
    path, frame = churn
    record = store.publish("churn", path, example=frame.head(3))
    manifest = store.manifest("churn", record.id)
    assert manifest.model_format == SKOPS and manifest.skops_version == skops.__version__
    assert sorted(manifest.files) == ["metrics.json", "model.skops"]  # exactly one model file
    store.deploy("churn", record.id)
    assert list(store.load("churn").predict(frame.head(3))) == ["stayed", "stayed", "stayed"]
    # an estimator object: joblib unless asked
    dumped = store.publish("iris", iris_a, example=[IRIS_ROW])
    asked = store.publish("iris", iris_a, example=[IRIS_ROW], format="skops")
    assert store.manifest("iris", dumped.id).model_format == JOBLIB
    assert sorted(store.manifest("iris", asked.id).files) == ["metrics.json", "model.skops"]
    assert store.load("iris", asked.id).predict([IRIS_ROW]) == store.load("iris", dumped.id).predict([IRIS_ROW])
    with pytest.raises(InvalidInput, match="unknown model format"):
        store.publish("iris", iris_a, format="pickle")


def test_untrusted_types_are_refused_by_name_until_the_store_trusts_them(tmp_path: Path) -> None:
    path = tmp_path / "constant.skops"
    skops.io.dump(Constant(3), path)
    store = Store(tmp_path / "models", clock=StepClock())
    with pytest.raises(UntrustedTypes) as refused:
        store.publish("c", path, example=[IRIS_ROW])
    assert refused.value.types == (CONSTANT,)
    assert CONSTANT in str(refused.value) and "MODELSWAP_TRUSTED_TYPES" in str(refused.value)
    assert tree(store.paths("c").versions_dir) == {}  # nothing staged is left
    trusting = Store(tmp_path / "models", clock=StepClock(), trusted_types=[CONSTANT])
    record = trusting.publish("c", path, example=[IRIS_ROW])
    trusting.deploy("c", record.id)
    assert list(trusting.load("c").predict([IRIS_ROW])) == [3]
    # what a version may load is the loading store's business, not the file's
    with pytest.raises(UntrustedTypes):
        store.load("c")


def test_sklearn_trusts_scikit_learns_own_tree_types_and_nothing_else(tmp_path: Path) -> None:
    """What skops (0.16) leaves untrusted in scikit-learn's tree models is two compiled
    types; the word ``sklearn`` trusts those, and the refusal names the word only when it
    would be enough."""
    import numpy as np
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    X = rng.random((80, 4))
    y = (X[:, 0] > 0.5).astype(int)
    estimators = {
        "forest": RandomForestClassifier(n_estimators=5, random_state=0),
        "boosting": GradientBoostingClassifier(n_estimators=5, random_state=0),
        "hist": HistGradientBoostingClassifier(max_iter=5),
        "extra": ExtraTreesClassifier(n_estimators=5, random_state=0),
        "tree": DecisionTreeClassifier(random_state=0),
    }
    tree_type, predictor_type = (
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    )
    store = Store(tmp_path / "models", clock=StepClock())
    trusting = Store(tmp_path / "models", clock=StepClock(), trusted_types=["sklearn"])
    for name, estimator in estimators.items():
        path = tmp_path / f"{name}.skops"
        skops.io.dump(estimator.fit(X, y), path)
        expected = [predictor_type] if name == "hist" else [tree_type]
        assert skops.io.get_untrusted_types(file=path) == expected
        with pytest.raises(UntrustedTypes) as refused:
            store.publish(name, path, example=X[:2])
        assert "MODELSWAP_TRUSTED_TYPES=sklearn" in str(refused.value) and expected[0] in str(refused.value)
        record = trusting.publish(name, path, example=X[:2])
        trusting.deploy(name, record.id)
        assert list(trusting.load(name).predict(X[:3])) == list(estimator.predict(X[:3]))
    # categorical features bring a generic callable along: the word does not cover it, nor offer itself
    categorical = HistGradientBoostingClassifier(max_iter=5, categorical_features=[0])
    Xc = np.c_[rng.integers(0, 4, 80), X[:, 1:]]
    path = tmp_path / "categorical.skops"
    skops.io.dump(categorical.fit(Xc, y), path)
    with pytest.raises(UntrustedTypes) as refused:
        trusting.publish("categorical", path, example=Xc[:2])
    assert "functools.partial" in refused.value.types and predictor_type not in refused.value.types
    assert "=sklearn" not in str(refused.value)
    assert Settings.from_env({"MODELSWAP_TRUSTED_TYPES": "sklearn, mypkg.models.Ranker"}).trusted_types == (
        predictor_type,
        tree_type,
        "mypkg.models.Ranker",
    )
    with pytest.raises(InvalidInput, match="nor 'sklearn'"):
        Settings.from_env({"MODELSWAP_TRUSTED_TYPES": "scikit-learn"})


def test_a_pickle_named_skops_is_read_as_skops_and_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil = tmp_path / "model.skops"
    joblib.dump(RunsCodeWhenUnpickled(str(marker)), evil)
    store = Store(tmp_path / "models", clock=StepClock())
    with pytest.raises(ValidationFailed, match="model.skops cannot be loaded"):
        store.publish("x", evil, example=[IRIS_ROW])
    assert not marker.exists()
    assert detect_format("model.joblib", b"PK\x03\x04") == SKOPS  # a zip is skops whatever its name
    assert detect_format(None, b"\x80\x04") == JOBLIB
    assert detect_format("upload.SKOPS", b"\x80\x04") == SKOPS


def test_upload_settings_are_read_and_validated() -> None:
    settings = Settings.from_env(
        {
            "MODELSWAP_TRUSTED_TYPES": f" {CONSTANT}, mypkg.models.Ranker ,{CONSTANT}",
            "MODELSWAP_ALLOW_PICKLE_UPLOADS": "1",
            "MODELSWAP_UPLOAD_VALIDATION_TIMEOUT": "5",
            "MODELSWAP_UPLOAD_VALIDATION_MEMORY": "1.5G",
        }
    )
    assert settings.trusted_types == (CONSTANT, "mypkg.models.Ranker")
    assert settings.allow_pickle_uploads and settings.upload_validation_timeout == 5.0
    assert settings.upload_validation_memory == 1536 * 2**20
    defaults = Settings.from_env({})
    assert defaults.trusted_types == () and not defaults.allow_pickle_uploads
    assert (defaults.upload_validation_timeout, defaults.upload_validation_memory) == (60.0, 4 * 2**30)
    for name, value in [
        ("MODELSWAP_TRUSTED_TYPES", "Constant"),
        ("MODELSWAP_TRUSTED_TYPES", "os.system;x"),
        ("MODELSWAP_UPLOAD_VALIDATION_MEMORY", "lots"),
        ("MODELSWAP_UPLOAD_VALIDATION_MEMORY", "300M"),
        ("MODELSWAP_UPLOAD_VALIDATION_TIMEOUT", "0"),
        ("MODELSWAP_ALLOW_PICKLE_UPLOADS", "maybe"),
    ]:
        with pytest.raises(InvalidInput, match=name):
            Settings.from_env({name: value})


def test_the_cli_publishes_a_skops_file(tmp_path: Path, churn: tuple[Path, Any]) -> None:
    path, frame = churn
    example = tmp_path / "example.json"
    example.write_text(frame.head(2).to_json(orient="records"))
    root = tmp_path / "models"
    result = subprocess.run(
        [sys.executable, "-m", "modelswap", "--root", str(root), "publish", "churn", str(path)]
        + ["--example", str(example), "--deploy", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("MODELSWAP_")},
    )
    assert result.returncode == 0, result.stderr
    published = json.loads(result.stdout)
    assert published["deployed"]
    assert (root / "churn" / "versions" / published["version"] / "model.skops").is_file()


def test_a_shared_joblib_model_holds_plain_arrays_over_its_mapped_file(tmp_path: Path) -> None:
    """Memory-mapped, every array of a fitted pipeline (its steps', a ColumnTransformer's
    transformers', lists and dicts of arrays) is a plain ndarray over the file's mapping:
    numpy runs Python code for every array made from a memmap, and answers would be ones."""
    import numpy as np

    model, frame = churn_pipeline()
    model.extra_ = {"table": np.arange(8.0), "parts": [np.ones(4)]}  # containers of arrays, too
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    shared = load_model(path, JOBLIB, [], share_memory=True)

    arrays: list[np.ndarray] = []

    def collect(obj: Any, seen: set[int]) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            arrays.append(obj)
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                collect(item, seen)
        elif isinstance(obj, dict):
            for item in obj.values():
                collect(item, seen)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            collect(vars(obj), seen)

    collect(shared, set())
    mapped = [a for a in arrays if isinstance(a.base, np.memmap)]
    assert len(mapped) >= 5 and all(type(a) is np.ndarray for a in arrays)
    assert {Path(a.base.filename) for a in mapped} == {path.resolve()}
    answer = shared.predict(frame.head(5))
    assert type(answer) is np.ndarray and answer.tolist() == model.predict(frame.head(5)).tolist()
    assert shared.extra_["parts"][0].tolist() == [1.0] * 4


class _Frozen(dict):  # type: ignore[type-arg]
    def __setitem__(self, key: Any, value: Any) -> None:
        raise TypeError("frozen")


class _Holder:
    pass


def test_plain_views_leave_what_they_cannot_change_and_never_fail_a_load(tmp_path: Path) -> None:
    import numpy as np

    mapped = np.memmap(tmp_path / "values.bin", dtype="float64", mode="w+", shape=(3,))
    holder = _Holder()
    holder.frozen = _Frozen(a=mapped)  # type: ignore[attr-defined]
    holder.plain = {"b": mapped}  # type: ignore[attr-defined]
    holder.items = [mapped, (mapped,)]  # type: ignore[attr-defined]
    holder.itself = holder  # type: ignore[attr-defined]  # a cycle
    assert plain_views(holder) is holder
    assert type(holder.plain["b"]) is np.ndarray and type(holder.items[0]) is np.ndarray  # type: ignore[attr-defined]
    assert isinstance(holder.frozen["a"], np.memmap) and isinstance(holder.items[1][0], np.memmap)  # type: ignore[attr-defined]
