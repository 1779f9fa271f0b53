"""Writing a new version: stage its files, validate, and rename it into ``versions/``."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib

from modelswap.core.errors import InvalidInput, ValidationFailed
from modelswap.core.examples import infer_signature, normalize, probe_nullable, stored_form
from modelswap.core.fsio import dumps_json, fsync_dir, write_bytes_durable
from modelswap.core.layout import MANIFEST_FILE, METRICS_FILE, MODEL_FILE, ModelPaths, staging_name
from modelswap.core.loader import smoke_predict
from modelswap.core.manifest import Manifest, describe_estimator, digest_files, library_versions, sha256_file
from modelswap.core.signature import Signature, describe_output, fitted_names, legacy_signature


@dataclass(frozen=True)
class StagedVersion:
    version: str
    manifest: Manifest
    manifest_sha256: str
    metrics: dict[str, Any]


@dataclass(frozen=True)
class Details:
    """What a publisher says about a new version besides the model file."""

    metrics: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    example: Any = None  # a DataFrame, records, rows, an ndarray; None: the parent's, or zeros
    signature: Signature | None = None  # overrides inference (the example must fit it)
    parent: str | None = None


def stage_version(
    paths: ModelPaths,
    source: Path | Any,
    details: Details,
    *,
    version: str,
    created_at: str,
    fallback_example: Callable[[], Sequence[Any] | None],
    rand: Callable[[int], str],
    vet: Callable[[Manifest], None] | None = None,
) -> StagedVersion:
    """Write a complete, validated version directory ``versions/<version>``.

    ``source`` is a joblib file's path, an open binary file, or a fitted estimator.
    1. write model.joblib (a copy of ``source``, or the dump of an estimator) and
       metrics.json into a hidden staging directory in ``versions/``, fsyncing each;
    2. load the staged model; take its signature from the example (or the given one),
       predict the example, find the columns that take nulls;
    3. let ``vet`` refuse it (an upload whose inputs break the live version's clients);
       write manifest.json (sha256 + size of every file, signature, example) and fsync it;
    4. fsync the staging directory, rename it to ``versions/<version>``, fsync ``versions/``.
    Anything that fails removes the staging directory; nothing becomes visible.
    No lock is needed: the staging name is unique and the rename is atomic.
    """
    clean_metrics = check_metrics(details.metrics)
    clean_metadata = check_metadata(details.metadata)
    created = [d for d in (paths.dir, paths.versions_dir) if not d.exists()]
    paths.versions_dir.mkdir(parents=True, exist_ok=True)
    staging = paths.versions_dir / staging_name(version, rand(4), os.getpid(), socket.gethostname())
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
        example = details.example if details.example is not None else _usable(fallback_example(), estimator)
        signature, stored = describe_input(label, estimator, example, details.signature)
        manifest = Manifest(
            model=paths.name,
            version=version,
            created_at=created_at,
            files=digest_files(staging),
            estimator=cls,
            n_features_in=n_features,
            feature_names=names,
            input_example=tuple(stored),
            tags={str(k): str(v) for k, v in details.tags.items()},
            description=details.description,
            parent=details.parent,
            signature=signature,
            metadata=clean_metadata,
            **library_versions(),  # type: ignore[arg-type]
        )
        if vet is not None:
            vet(manifest)  # 3
        write_bytes_durable(staging / MANIFEST_FILE, dumps_json(manifest.to_dict()))
        fsync_dir(staging)  # 4
        final = paths.version_dir(version)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for directory in reversed(created):  # a model's failed first publish leaves no model behind
            with contextlib.suppress(OSError):  # another publisher may have filled it meanwhile
                directory.rmdir()
        raise
    fsync_dir(paths.versions_dir)
    return StagedVersion(version, manifest, sha256_file(final / MANIFEST_FILE).sha256, clean_metrics)


def _usable(example: Sequence[Any] | None, estimator: Any) -> Sequence[Any] | None:
    """The parent's example if it has the shape this estimator takes, else None."""
    if example is None:
        return None
    try:
        names, rows = normalize(example, estimator)
    except InvalidInput:
        return None
    n_features = getattr(estimator, "n_features_in_", None)
    return example if n_features is None or len(rows[0]) == int(n_features) else None


def describe_input(label: str, estimator: Any, example: Any, declared: Signature | None) -> tuple[Signature, list[Any]]:
    """(signature, stored example) of a new version, validated by predicting the example.

    Without an example a model that takes plain numbers (``n_features_in_``) is checked
    with a row of zeros; any other model needs one. A declared signature is kept as
    given (its nulls included); an inferred one learns which columns take nulls by probing.
    """
    if example is None:
        n_features = getattr(estimator, "n_features_in_", None)
        if n_features is None or fitted_names(estimator) is not None:
            raise ValidationFailed(f"{label}: cannot tell what input the model takes: give an input example")
        signature, stored = legacy_signature(estimator, int(n_features)), [[0.0] * int(n_features)]
    else:
        names, rows = normalize(example, estimator)
        stored = stored_form(names, rows)
        signature = declared if declared is not None else infer_signature(names, rows, estimator)
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features is not None and int(n_features) != signature.width:
        raise ValidationFailed(
            f"{label}: the input example has {signature.width} features, the model expects {int(n_features)}"
        )
    X, answer = smoke_predict(label, estimator, signature, stored)
    if declared is None:
        signature = signature.with_nullable(probe_nullable(signature, X, estimator.predict))
    return signature.with_output(describe_output(estimator, answer)), stored


def check_metadata(metadata: Any) -> dict[str, Any]:
    """Free-form JSON metadata (MLflow's ``metadata``): an object that serialises."""
    if not isinstance(metadata, Mapping):
        raise InvalidInput("metadata must be a JSON object")
    try:
        dumps_json(dict(metadata))
    except TypeError as exc:
        raise InvalidInput(f"metadata must be plain JSON: {exc}") from exc
    return {str(k): v for k, v in metadata.items()}


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
