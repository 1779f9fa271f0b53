"""Writing a new version: stage its files, validate, and rename it into ``versions/``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib

from modelswap.core.errors import InvalidInput, ValidationFailed
from modelswap.core.fsio import dumps_json, fsync_dir, write_bytes_durable
from modelswap.core.layout import MANIFEST_FILE, METRICS_FILE, MODEL_FILE, STAGING_PREFIX, ModelPaths
from modelswap.core.loader import smoke_predict
from modelswap.core.manifest import (
    Manifest,
    describe_estimator,
    digest_files,
    example_rows,
    library_versions,
    sha256_file,
)

Rows = tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class StagedVersion:
    version: str
    manifest: Manifest
    manifest_sha256: str
    metrics: dict[str, Any]


def stage_version(
    paths: ModelPaths,
    source: Path | Any,
    *,
    version: str,
    created_at: str,
    metrics: Mapping[str, Any],
    tags: Mapping[str, str],
    description: str,
    input_example: Sequence[Sequence[float]] | None,
    parent: str | None,
    fallback_example: Callable[[int | None], Rows],
    rand: Callable[[int], str],
) -> StagedVersion:
    """Write a complete, validated version directory ``versions/<version>``.

    ``source`` is a joblib file's path, an open binary file, or a fitted estimator.
    1. write model.joblib (a copy of ``source``, or the dump of an estimator) and
       metrics.json into a hidden staging directory in ``versions/``, fsyncing each;
    2. load the staged model, describe it, and predict the input example;
    3. write manifest.json (sha256 + size of every file) and fsync it;
    4. fsync the staging directory, rename it to ``versions/<version>``, fsync ``versions/``.
    Anything that fails removes the staging directory; nothing becomes visible.
    No lock is needed: the staging name is unique and the rename is atomic.
    """
    clean_metrics = check_metrics(metrics)
    clean_tags = {str(k): str(v) for k, v in tags.items()}
    paths.versions_dir.mkdir(parents=True, exist_ok=True)
    staging = paths.versions_dir / f"{STAGING_PREFIX}{version}-{rand(4)}"
    staging.mkdir()
    label = f"{paths.name} (new version)"
    try:
        model_file = staging / MODEL_FILE  # 1
        if isinstance(source, (str, Path)):
            copy_durable(Path(source), model_file)
        elif hasattr(source, "read"):  # an open binary file, e.g. an upload
            with open(model_file, "xb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            fsync_file(model_file)
        else:
            joblib.dump(source, model_file)
            fsync_file(model_file)
        write_bytes_durable(staging / METRICS_FILE, dumps_json(clean_metrics))
        estimator = load_estimator(model_file, label)  # 2
        cls, n_features, names = describe_estimator(estimator)
        example = example_rows(input_example) if input_example is not None else fallback_example(n_features)
        manifest = Manifest(
            model=paths.name,
            version=version,
            created_at=created_at,
            files=digest_files(staging),
            estimator=cls,
            n_features_in=n_features,
            feature_names=names,
            input_example=example,
            tags=clean_tags,
            description=description,
            parent=parent,
            **library_versions(),  # type: ignore[arg-type]
        )
        smoke_predict(label, estimator, manifest)
        write_bytes_durable(staging / MANIFEST_FILE, dumps_json(manifest.to_dict()))  # 3
        fsync_dir(staging)  # 4
        final = paths.version_dir(version)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_dir(paths.versions_dir)
    return StagedVersion(version, manifest, sha256_file(final / MANIFEST_FILE).sha256, clean_metrics)


def check_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(metrics, Mapping):
        raise InvalidInput("metrics must be a JSON object of names to numbers")
    clean: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise InvalidInput(f"metric {key!r} must be a number or a string")
        clean[str(key)] = value
    return clean


def load_estimator(path: Path, label: str) -> Any:
    try:
        estimator = joblib.load(path)
    except Exception as exc:  # unpickling can raise anything; all of it means "not a model"
        raise ValidationFailed(f"{label}: {path.name} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    if not callable(getattr(estimator, "predict", None)):
        raise ValidationFailed(f"{label}: the file holds a {type(estimator).__name__}, not an estimator with predict()")
    return estimator


def copy_durable(source: Path, dest: Path) -> None:
    if not source.is_file():
        raise InvalidInput(f"{source} is not a file")
    shutil.copyfile(source, dest)
    fsync_file(dest)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
