"""The per-version manifest: what a version holds and how to check it is intact."""

from __future__ import annotations

import hashlib
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from modelswap.core.errors import ValidationFailed
from modelswap.core.schema.signature import Signature
from modelswap.core.store.formats import FORMATS, JOBLIB, SKOPS
from modelswap.core.store.fsio import read_regular
from modelswap.core.store.layout import MANIFEST_FILE, model_file_name

# 2: signature, metadata, and the input example as records for models with named columns
MANIFEST_FORMAT = 2
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    model: str
    version: str
    created_at: str
    files: Mapping[str, FileDigest]
    python_version: str
    sklearn_version: str | None
    joblib_version: str | None
    numpy_version: str | None
    estimator: str
    n_features_in: int | None
    feature_names: tuple[str, ...] | None
    input_example: tuple[Any, ...]  # rows ([...]) or, for named columns, records ({...})
    tags: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    parent: str | None = None
    signature: Signature | None = None  # None: published before signatures (derived on load)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    model_format: str = JOBLIB  # which model file the version holds: model.joblib or model.skops
    manifest_format: int = MANIFEST_FORMAT  # as written: an older manifest keeps its number
    skops_version: str | None = None
    reference: Mapping[str, Any] | None = None  # {"rows", "features"} of reference.json, if any

    @property
    def model_file(self) -> str:
        return model_file_name(self.model_format)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.manifest_format,
            "model": self.model,
            "version": self.version,
            "created_at": self.created_at,
            "files": {n: {"sha256": d.sha256, "size": d.size} for n, d in sorted(self.files.items())},
            "python_version": self.python_version,
            "sklearn_version": self.sklearn_version,
            "joblib_version": self.joblib_version,
            "numpy_version": self.numpy_version,
            "estimator": self.estimator,
            "n_features_in": self.n_features_in,
            "feature_names": list(self.feature_names) if self.feature_names is not None else None,
            "input_example": list(self.input_example),
            "tags": dict(self.tags),
            "description": self.description,
            "parent": self.parent,
            "signature": self.signature.to_dict() if self.signature is not None else None,
            "metadata": dict(self.metadata),
            "model_format": self.model_format,
            "skops_version": self.skops_version,
            "reference": dict(self.reference) if self.reference is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        try:
            names = data.get("feature_names")
            signature = data.get("signature")
            return cls(
                model=str(data["model"]),
                version=str(data["version"]),
                created_at=str(data["created_at"]),
                files={str(n): FileDigest(str(d["sha256"]), int(d["size"])) for n, d in data["files"].items()},
                python_version=str(data.get("python_version", "")),
                sklearn_version=data.get("sklearn_version"),
                joblib_version=data.get("joblib_version"),
                numpy_version=data.get("numpy_version"),
                estimator=str(data.get("estimator", "")),
                n_features_in=data.get("n_features_in"),
                feature_names=tuple(str(n) for n in names) if names is not None else None,
                input_example=tuple(_example(data.get("input_example", []))),
                tags={str(k): str(v) for k, v in (data.get("tags") or {}).items()},
                description=str(data.get("description") or ""),
                parent=data.get("parent"),
                signature=Signature.from_dict(signature, stored=True) if signature is not None else None,
                metadata=dict(data.get("metadata") or {}),
                model_format=_model_format(data.get("model_format") or JOBLIB),
                manifest_format=int(data.get("format", 1)),
                skops_version=data.get("skops_version"),
                reference=_reference(data.get("reference")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValidationFailed(f"manifest is malformed: {exc!r}") from exc


def sha256_file(path: Path) -> FileDigest:
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return FileDigest(digest.hexdigest(), size)


def digest_files(directory: Path) -> dict[str, FileDigest]:
    """sha256 and size of every regular file in ``directory`` except the manifest."""
    return {
        p.name: sha256_file(p)
        for p in sorted(directory.iterdir())
        if p.name != MANIFEST_FILE and p.is_file() and not p.is_symlink()
    }


def library_versions(model_format: str = JOBLIB) -> dict[str, str | None]:
    from importlib.metadata import version

    import joblib
    import numpy
    import sklearn

    return {
        "python_version": platform.python_version(),
        "sklearn_version": sklearn.__version__,
        "joblib_version": joblib.__version__,
        "numpy_version": numpy.__version__,
        "skops_version": version("skops") if model_format == SKOPS else None,
    }


def describe_estimator(estimator: Any) -> tuple[str, int | None, tuple[str, ...] | None]:
    """(class path, n_features_in_, feature names) of a fitted estimator."""
    cls = type(estimator)
    n_features = getattr(estimator, "n_features_in_", None)
    names = getattr(estimator, "feature_names_in_", None)
    return (
        f"{cls.__module__}.{cls.__qualname__}",
        int(n_features) if n_features is not None else None,
        tuple(str(n) for n in names) if names is not None else None,
    )


def _model_format(value: Any) -> str:
    if value not in FORMATS:
        raise ValueError(f"model_format must be one of {', '.join(FORMATS)}, not {value!r}")
    return str(value)


def _example(value: Any) -> list[Any]:
    if not isinstance(value, list) or not all(isinstance(r, (list, dict)) for r in value):
        raise ValueError("input_example must be a list of rows or records")
    return value


def _reference(value: Any) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise ValueError("reference must be an object of rows and features")
    return value


def load_manifest(version_dir: Path) -> Manifest:
    path = version_dir / MANIFEST_FILE
    try:
        data = orjson.loads(read_regular(path))
    except FileNotFoundError as exc:
        raise ValidationFailed(f"{path} is missing") from exc
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValidationFailed(f"{path} is not a JSON object")
    return Manifest.from_dict(data)


def manifest_digest(version_dir: Path) -> str:
    return sha256_file(version_dir / MANIFEST_FILE).sha256


def verify_files(version_dir: Path, manifest: Manifest) -> list[str]:
    """Every way the directory's files differ from the manifest (empty: intact)."""
    problems: list[str] = []
    present = {p.name for p in version_dir.iterdir() if p.name != MANIFEST_FILE} if version_dir.is_dir() else set()
    for name, expected in sorted(manifest.files.items()):
        path = version_dir / name
        if name not in present:
            problems.append(f"{name} is missing")
            continue
        if path.is_symlink() or not path.is_file():
            problems.append(f"{name} is not a regular file")
            continue
        actual = sha256_file(path)
        if actual.size != expected.size:
            problems.append(f"{name} has {actual.size} bytes, manifest says {expected.size}")
        elif actual.sha256 != expected.sha256:
            problems.append(f"{name} sha256 differs from the manifest")
    for extra in sorted(present - set(manifest.files)):
        problems.append(f"{extra} is not in the manifest")
    return problems
