"""The version a batch job scores with: named once, loaded once per process.

:func:`resolve` turns ``None`` (what ``current`` names), an alias or a version id into a
version id at the start of a job, so a deploy or rollback while it runs never mixes
versions. :func:`load` keeps each loaded version for the life of the process: a Dask
worker or a Spark executor's Python worker loads the pinned version on its first
partition and reuses it for the rest (arrays memory-mapped, as a serving process does).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from modelswap.core.errors import NotFound
from modelswap.core.schema.signature import Signature, manifest_signature
from modelswap.core.serving.loader import LoadedModel, load_version
from modelswap.core.store.aliases import resolve as resolve_ref
from modelswap.core.store.kernel import Kernel

_lock = threading.Lock()
_loaded: dict[tuple[str, str, str, tuple[str, ...], bool], LoadedModel] = {}
_loads = 0


def resolve(kernel: Kernel, model: str, version: str | None) -> str:
    """The version id ``version`` names now (None: the live one); it must be published."""
    paths = kernel.existing(model)
    if version is None:
        target = kernel.current(model)
        if target is None:
            raise NotFound(f"{model} has no live version; name one with --version (an id or an alias)")
    else:
        target = resolve_ref(kernel, model, version)
    kernel.require_published(kernel.load_registry(paths), paths, target)
    return target


def load(
    root: str | Path, model: str, version: str, *, trusted_types: Sequence[str] = (), strict_versions: bool = False
) -> LoadedModel:
    """``version`` of ``model`` in the store at ``root``, loaded and validated once per process
    and per load settings: a job that trusts fewer types never gets a load another trusted."""
    global _loads
    key = (str(Path(root).resolve()), model, version, tuple(sorted(trusted_types)), strict_versions)
    with _lock:
        loaded = _loaded.get(key)
        if loaded is None:
            kernel = Kernel(Path(root), trusted_types=trusted_types, strict_versions=strict_versions)
            loaded = load_version(
                kernel.existing(model),
                version,
                strict_versions=strict_versions,
                trusted_types=trusted_types,
                share_memory=True,
            )
            _loaded[key] = loaded
            _loads += 1
        return loaded


def loads() -> int:
    """How many versions this process has loaded (the tests count them per worker)."""
    return _loads


def signature(kernel: Kernel, model: str, version: str) -> Signature:
    """``version``'s signature from its manifest, without loading the model (a driver
    building Dask's meta or Spark's schema); loaded here only for versions published
    before signatures named their output."""
    found = manifest_signature(kernel.manifest(model, version))
    if found is not None and found.output is not None:
        return found
    return load(
        kernel.root, model, version, trusted_types=kernel.trusted_types, strict_versions=kernel.strict_versions
    ).signature
