from typing import Any

from modelswap.core.store.layout import MANIFEST_FILE, MODEL_FILE
from modelswap.core.store.manifest import Manifest, load_manifest, verify_files
from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, publish


def test_manifest_records_digests_libraries_features_and_example(store: Store, iris_a: Any) -> None:
    version = publish(store, iris_a, tags={"team": "ml"}, description="first")
    manifest = load_manifest(store.paths("iris").version_dir(version))
    import sklearn

    assert set(manifest.files) == {MODEL_FILE, "metrics.json"}
    assert all(len(d.sha256) == 64 and d.size > 0 for d in manifest.files.values())
    assert manifest.sklearn_version == sklearn.__version__
    assert manifest.n_features_in == 4
    assert manifest.input_example == (IRIS_ROW,)
    assert manifest.estimator == "sklearn.linear_model._logistic.LogisticRegression"
    assert manifest.tags == {"team": "ml"} and manifest.description == "first"
    assert Manifest.from_dict(manifest.to_dict()) == manifest


def test_verify_files_finds_flipped_byte_missing_and_extra_files(store: Store, iris_a: Any) -> None:
    version = publish(store, iris_a)
    directory = store.paths("iris").version_dir(version)
    manifest = load_manifest(directory)
    assert verify_files(directory, manifest) == []

    data = bytearray((directory / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (directory / MODEL_FILE).write_bytes(bytes(data))
    (directory / "extra.bin").write_bytes(b"x")
    (directory / "metrics.json").unlink()
    problems = verify_files(directory, manifest)
    assert any("model.joblib sha256 differs" in p for p in problems)
    assert any("metrics.json is missing" in p for p in problems)
    assert any("extra.bin is not in the manifest" in p for p in problems)


def test_manifest_file_is_not_listed_in_itself(store: Store, iris_a: Any) -> None:
    version = publish(store, iris_a)
    assert MANIFEST_FILE not in load_manifest(store.paths("iris").version_dir(version)).files
    assert (store.paths("iris").version_dir(version) / MANIFEST_FILE).is_file()
