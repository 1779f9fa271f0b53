"""Load and validate one version: digests, memory headroom, joblib load, smoke predict.

Validation is also the warm-up: the manifest's input example is predicted once,
so the first real request does not pay for lazy initialisation.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from modelswap.core.errors import InsufficientMemory, ValidationFailed, VersionNotFound
from modelswap.core.layout import MODEL_FILE, ModelPaths
from modelswap.core.manifest import Manifest, load_manifest, verify_files

logger = logging.getLogger(__name__)

# A joblib'd estimator takes roughly its file size in memory once loaded, plus
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
    methods: frozenset[str]
    warnings: tuple[str, ...]
    load_seconds: float

    @property
    def n_features(self) -> int | None:
        return self.manifest.n_features_in


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
    headroom: Callable[[], int | None] = memory_headroom,
) -> LoadedModel:
    """Validate and load ``version`` of a model; raise ValidationFailed saying why not.

    1. the manifest's digests match the files;
    2. there is memory for it (InsufficientMemory otherwise);
    3. joblib loads an object with ``predict``;
    4. a scikit-learn version other than ours is a warning (refused when strict);
    5. it predicts the manifest's input example, one answer per row.
    Safe to call from any thread; touches nothing but the version directory.
    """
    start = time.perf_counter()
    directory = paths.version_dir(version)
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
        try:
            estimator = joblib.load(directory / MODEL_FILE)  # 3
        except Exception as exc:  # unpickling can raise anything; all of it means "cannot load"
            raise ValidationFailed(f"{label}: {MODEL_FILE} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    notes.extend(str(w.message).splitlines()[0] for w in caught if "version" in str(w.message).lower())
    if not callable(getattr(estimator, "predict", None)):
        raise ValidationFailed(
            f"{label}: {MODEL_FILE} holds a {type(estimator).__name__}, not an estimator with predict()"
        )
    mismatch = sklearn_mismatch(manifest)  # 4
    if mismatch:
        if strict_versions:
            raise ValidationFailed(f"{label}: {mismatch} (MODELSWAP_STRICT_VERSIONS=1)")
        notes.append(mismatch)
    smoke_predict(label, estimator, manifest)  # 5
    methods = frozenset(m for m in METHODS if callable(getattr(estimator, m, None)))
    loaded = LoadedModel(
        model=paths.name,
        version=version,
        estimator=estimator,
        manifest=manifest,
        methods=methods,
        warnings=tuple(dict.fromkeys(notes)),
        load_seconds=time.perf_counter() - start,
    )
    for note in loaded.warnings:
        logger.warning("%s: %s", label, note)
    return loaded


def sklearn_mismatch(manifest: Manifest) -> str | None:
    import sklearn

    recorded = manifest.sklearn_version
    if recorded and recorded != sklearn.__version__:
        return f"trained with scikit-learn {recorded}, serving with {sklearn.__version__}"
    return None


def smoke_predict(label: str, estimator: Any, manifest: Manifest) -> None:
    if not manifest.input_example:
        raise ValidationFailed(f"{label}: the manifest has no input example to validate with")
    rows = np.asarray(manifest.input_example, dtype=np.float64)
    if manifest.n_features_in is not None and rows.shape[1] != manifest.n_features_in:
        raise ValidationFailed(
            f"{label}: the input example has {rows.shape[1]} features, the model expects {manifest.n_features_in}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # feature-name warnings on a bare array are expected
            result = estimator.predict(rows)
    except Exception as exc:  # any failure of the model's own code refuses the version
        raise ValidationFailed(f"{label}: predict on the input example failed: {type(exc).__name__}: {exc}") from exc
    if len(result) != len(rows):
        raise ValidationFailed(f"{label}: predict returned {len(result)} answers for {len(rows)} rows")
