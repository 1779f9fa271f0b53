"""Writing a new version: stage its files, validate, and rename it into ``versions/``."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from modelswap.core.errors import InvalidInput, ModelswapError, ValidationFailed
from modelswap.core.schema.signature import Signature, manifest_signature, schema_change
from modelswap.core.store import registry as reg
from modelswap.core.store.clock import default_actor, iso
from modelswap.core.store.formats import JOBLIB, check_format, detect_format, dump_model, read_head
from modelswap.core.store.fsio import dumps_json, fsync_dir, write_bytes_durable
from modelswap.core.store.ids import new_version_id
from modelswap.core.store.inspection import Inspector, InspectRequest, inspect_model
from modelswap.core.store.kernel import Kernel
from modelswap.core.store.layout import (
    MANIFEST_FILE,
    METRICS_FILE,
    REFERENCE_FILE,
    ModelPaths,
    model_file_name,
    staging_name,
)
from modelswap.core.store.manifest import Manifest, digest_files, library_versions, sha256_file
from modelswap.core.store.retention import discard_unregistered
from modelswap.core.store.sandbox import Sandbox, SandboxLimits

logger = logging.getLogger(__name__)


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
    reference: Any = None  # the training rows (DataFrame, records, rows, ndarray): reference.json


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
    live: Callable[[], Signature | None] = lambda: None,
    model_format: str | None = None,
    trusted_types: Sequence[str] = (),
    inspect: Inspector = inspect_model,
) -> StagedVersion:
    """Write a complete, validated version directory ``versions/<version>``.

    ``source`` is a model file's path, an open binary file, or a fitted estimator;
    ``model_format`` (joblib, skops) defaults to what the file's name or first bytes say,
    and to joblib for an estimator.
    1. write model.joblib or model.skops (a copy of ``source``, or the dump of an
       estimator) and metrics.json into a hidden staging directory in ``versions/``,
       fsyncing each;
    2. ``inspect`` the staged model (in this process, or in a limited child process for
       uploads): load it, take its signature from the example (or the given one),
       predict the example, find the columns that take nulls; predict and profile the
       reference rows, if given, and write the profile as reference.json;
    3. an inferred signature keeps the ``live`` version's optional columns optional
       (Signature.optional_as); let ``vet`` refuse it (an upload whose inputs break the
       live version's clients);
       write manifest.json (sha256 + size of every file, reference.json included,
       signature, example) and fsync it;
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
        model_file, fmt = write_model(staging, source, model_format)  # 1
        write_bytes_durable(staging / METRICS_FILE, dumps_json(clean_metrics))
        request = InspectRequest(
            model_file=model_file,
            model_format=fmt,
            label=label,
            example=details.example,
            fallback_example=fallback_example() if details.example is None else None,
            signature=details.signature,
            trusted_types=tuple(trusted_types),
            reference=details.reference,
        )
        seen = inspect(request)  # 2
        signature = seen.signature if details.signature is not None else seen.signature.optional_as(live())
        if seen.reference is not None:  # before the digests: the manifest covers it
            write_bytes_durable(staging / REFERENCE_FILE, orjson.dumps(seen.reference.to_dict()) + b"\n")
        manifest = Manifest(
            model=paths.name,
            version=version,
            created_at=created_at,
            files=digest_files(staging),
            estimator=seen.estimator,
            n_features_in=seen.n_features_in,
            feature_names=seen.feature_names,
            input_example=seen.example,
            tags={str(k): str(v) for k, v in details.tags.items()},
            description=details.description,
            parent=details.parent,
            signature=signature,
            metadata=clean_metadata,
            model_format=fmt,
            reference=seen.reference.summary() if seen.reference is not None else None,
            **library_versions(fmt),  # type: ignore[arg-type]
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


def write_model(staging: Path, source: Path | Any, model_format: str | None) -> tuple[Path, str]:
    """Write ``source`` into ``staging`` as its format's model file; (path, format)."""
    if isinstance(source, (str, Path)):
        source = Path(source)
        if not source.is_file():
            raise InvalidInput(f"{source} is not a file")
        fmt = check_format(model_format) if model_format else detect_format(source.name, read_head(source))
        copy_durable(source, staging / model_file_name(fmt))
    elif hasattr(source, "read"):  # an open binary file, e.g. an upload
        incoming = staging / "model.incoming"
        with open(incoming, "xb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        fsync_file(incoming)
        name = getattr(source, "name", None)
        fmt = (
            check_format(model_format)
            if model_format
            else detect_format(name if isinstance(name, str) else None, read_head(incoming))
        )
        os.rename(incoming, staging / model_file_name(fmt))
    else:
        fmt = check_format(model_format or JOBLIB)
        dump_model(source, staging / model_file_name(fmt), fmt)
        fsync_file(staging / model_file_name(fmt))
    return staging / model_file_name(fmt), fmt


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


@dataclass(frozen=True)
class PublishOptions:
    actor: str | None = None
    against_live: bool = False  # refuse inputs that break the live version's clients (uploads)
    force: bool = False
    model_format: str | None = None


def publish_version(
    kernel: Kernel,
    model: str,
    source: Path | Any,
    details: Details,
    options: PublishOptions,
    sandbox: SandboxLimits | None = None,
) -> reg.Version:
    """Store.publish's two steps (see its docstring): stage, then journal the record."""
    paths = kernel.paths(model)
    parent = details.parent if details.parent is not None else kernel.current(model)
    details = replace(details, parent=parent)
    now = kernel.clock()
    staged = stage_version(
        paths,
        source,
        details,
        version=new_version_id(now, kernel.rand),
        created_at=iso(now),
        fallback_example=lambda: _parent_example(kernel, paths, parent),
        rand=kernel.rand,
        vet=_live_schema_check(kernel, model, options.force) if options.against_live else None,
        live=lambda: _live_signature(kernel, model),
        model_format=options.model_format,
        trusted_types=kernel.trusted_types,
        inspect=Sandbox(sandbox) if sandbox is not None else inspect_model,
    )  # 1
    record = reg.Version(
        id=staged.version,
        created_at=staged.manifest.created_at,
        metrics=staged.metrics,
        tags=dict(staged.manifest.tags),
        description=details.description,
        manifest_sha256=staged.manifest_sha256,
        size=staged.manifest.size,
        parent=parent,
    )
    actor = options.actor or default_actor()
    entry = reg.HistoryEntry(
        staged.manifest.created_at, reg.PUBLISH, actor, None, record.id, "", {"record": record.index_record()}
    )
    with kernel.locked(model):  # 2
        try:
            kernel.commit(paths, kernel.load_registry(paths), entry)
        except OSError:
            # The version is complete but no one can see it; a publish that reports
            # failure must change nothing, so it goes again.
            discard_unregistered(kernel, paths, staged.version)
            raise
    logger.info("published %s %s (actor %s)", model, staged.version, actor)
    return record


def _live_signature(kernel: Kernel, model: str) -> Signature | None:
    """The live version's signature, or None (no live version, or one whose manifest
    cannot be read: then nothing is carried over, and a deploy checks what it can)."""
    try:
        current = kernel.current(model)
        return manifest_signature(kernel.manifest(model, current)) if current is not None else None
    except (OSError, ModelswapError):
        return None


def _live_schema_check(kernel: Kernel, model: str, force: bool) -> Callable[[Manifest], None]:
    def vet(manifest: Manifest) -> None:
        current = kernel.current(model)
        if current is not None:
            live = manifest_signature(kernel.manifest(model, current))
            schema_change(live, manifest.signature, force=force, what="this version")

    return vet


def _parent_example(kernel: Kernel, paths: ModelPaths, parent: str | None) -> Sequence[Any] | None:
    """The parent's stored input example, for a version published without one."""
    if parent is None or not paths.version_dir(parent).is_dir():
        return None
    try:
        return kernel.manifest(paths.name, parent).input_example or None
    except ValidationFailed:
        return None
