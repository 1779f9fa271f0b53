"""Load and validate one version: digests, memory headroom, model load, smoke predict.

Validation is also the warm-up: the manifest's input example is predicted once,
so the first real request does not pay for lazy initialisation.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelswap.core.errors import InsufficientMemory, InvalidInput, UntrustedTypes, ValidationFailed, VersionNotFound
from modelswap.core.schema.examples import check_example
from modelswap.core.schema.inputs import to_model
from modelswap.core.schema.signature import Signature, legacy_signature
from modelswap.core.serving import native_threads
from modelswap.core.store.formats import load_model
from modelswap.core.store.fsio import refuse_link
from modelswap.core.store.layout import ModelPaths
from modelswap.core.store.manifest import Manifest, load_manifest, verify_files

logger = logging.getLogger(__name__)

# A joblib'd (or skops'd) estimator takes roughly its file size in memory once loaded, plus
# unpickling buffers; refuse when less than this multiple is left.
MEMORY_FACTOR = 2.0
METHODS = ("predict", "predict_proba", "decision_function", "predict_log_proba")


@dataclass(frozen=True)
class LoadedModel:
    """A validated, warmed-up version held in memory."""

    model: str
    version: str
    estimator: Any
    manifest: Manifest
    signature: Signature
    methods: frozenset[str]
    warnings: tuple[str, ...]
    load_seconds: float

    @property
    def n_features(self) -> int:
        return self.signature.width


def memory_headroom() -> int | None:
    """Bytes this process may still allocate: cgroup limit minus usage, else MemAvailable."""
    for limit_path, usage_path in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit_text = Path(limit_path).read_text().strip()
            usage = int(Path(usage_path).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit_text != "max" and int(limit_text) < (1 << 60):
            return int(limit_text) - usage
        break
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(model: str, version: str, size: int, headroom: Callable[[], int | None]) -> None:
    left = headroom()
    if left is not None and size * MEMORY_FACTOR > left:
        raise InsufficientMemory(
            f"not loading {model} {version}: it takes about {size * MEMORY_FACTOR / 2**20:.0f} MiB "
            f"and only {left / 2**20:.0f} MiB is left under this process's memory limit"
        )


def load_version(
    paths: ModelPaths,
    version: str,
    *,
    strict_versions: bool = False,
    trusted_types: Sequence[str] = (),
    share_memory: bool = False,
    headroom: Callable[[], int | None] = memory_headroom,
) -> LoadedModel:
    """Validate and load ``version`` of a model; raise ValidationFailed saying why not.

    1. the manifest's digests match the files;
    2. there is memory for it (InsufficientMemory otherwise);
    3. its model file loads (joblib, or skops with only trusted types) to an object with ``predict``
       (``share_memory``: a joblib file's arrays memory-mapped, see formats.load_model);
    4. a scikit-learn version other than ours is a warning (refused when strict);
    5. it predicts the manifest's input example, one answer per row.
    Safe to call from any thread; touches nothing but the version directory.
    """
    start = time.perf_counter()
    directory = refuse_link(paths.version_dir(version))
    label = f"{paths.name} {version}"
    if not directory.is_dir():
        raise VersionNotFound(f"model {paths.name} has no version {version}")
    manifest = load_manifest(directory)
    problems = verify_files(directory, manifest)  # 1
    if problems:
        raise ValidationFailed(f"{label} is corrupt: " + "; ".join(problems))
    check_memory(paths.name, version, manifest.size, headroom)  # 2
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator = load_estimator(
            directory / manifest.model_file, label, manifest.model_format, trusted_types, share_memory
        )  # 3
    notes.extend(str(w.message).splitlines()[0] for w in caught if "version" in str(w.message).lower())
    mismatch = sklearn_mismatch(manifest)  # 4
    if mismatch:
        if strict_versions:
            raise ValidationFailed(f"{label}: {mismatch} (MODELSWAP_STRICT_VERSIONS=1)")
        notes.append(mismatch)
    signature = signature_of(manifest, estimator)
    smoke_predict(label, estimator, signature, manifest.input_example)  # 5
    methods = frozenset(m for m in METHODS if callable(getattr(estimator, m, None)))
    loaded = LoadedModel(
        model=paths.name,
        version=version,
        estimator=estimator,
        manifest=manifest,
        signature=signature,
        methods=methods,
        warnings=tuple(dict.fromkeys(notes)),
        load_seconds=time.perf_counter() - start,
    )
    for note in loaded.warnings:
        logger.warning("%s: %s", label, note)
    return loaded


def load_estimator(path: Path, label: str, fmt: str, trusted_types: Sequence[str], share_memory: bool = False) -> Any:
    """The estimator in a model file, or ValidationFailed (UntrustedTypes) saying why not."""
    try:
        estimator = load_model(path, fmt, trusted_types, share_memory=share_memory)
    except UntrustedTypes as exc:
        raise UntrustedTypes(f"{label}: {exc.message}", exc.types) from exc
    except Exception as exc:  # unpickling can raise anything; all of it means "cannot load"
        raise ValidationFailed(f"{label}: {path.name} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    native_threads.loaded()
    if not callable(getattr(estimator, "predict", None)):
        kind = type(estimator).__name__
        raise ValidationFailed(f"{label}: {path.name} holds a {kind}, not an estimator with predict()")
    return estimator


def sklearn_mismatch(manifest: Manifest) -> str | None:
    recorded = manifest.sklearn_version
    ours = sklearn_version()
    if recorded and recorded != ours:
        return f"trained with scikit-learn {recorded}, serving with {ours}"
    return None


def sklearn_version() -> str:
    """This environment's scikit-learn version, without importing it when nothing has yet
    (a second on a CLI command that loads no model)."""
    loaded = sys.modules.get("sklearn")
    if loaded is not None:
        return str(loaded.__version__)
    from importlib.metadata import version

    return version("scikit-learn")


def signature_of(manifest: Manifest, estimator: Any) -> Signature:
    """The version's signature; one derived from the estimator for versions published
    before signatures existed (``n_features_in_`` doubles)."""
    if manifest.signature is not None:
        return manifest.signature
    try:
        return legacy_signature(estimator, manifest.n_features_in)
    except InvalidInput as exc:
        raise ValidationFailed(f"{manifest.model} {manifest.version}: {exc.message}") from exc


def smoke_predict(label: str, estimator: Any, signature: Signature, example: Sequence[Any]) -> tuple[np.ndarray, Any]:
    """Predict the input example as a request would be (checked against the signature,
    a DataFrame when the model was fitted on one); (input array, answer) or ValidationFailed."""
    if not example:
        raise ValidationFailed(f"{label}: the manifest has no input example to validate with")
    try:
        X = check_example(signature, example)
    except InvalidInput as exc:
        raise ValidationFailed(f"{label}: {exc.message}") from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            answer = estimator.predict(to_model(signature, X))
    except Exception as exc:  # any failure of the model's own code refuses the version
        raise ValidationFailed(f"{label}: predict on the input example failed: {type(exc).__name__}: {exc}") from exc
    if len(answer) != len(X):
        raise ValidationFailed(f"{label}: predict returned {len(answer)} answers for {len(X)} rows")
    return X, answer
