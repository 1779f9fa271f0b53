"""Model file formats: joblib (a pickle) and skops (a zip of JSON and arrays, no pickle).

Loading a joblib file runs whatever code the pickle names. Loading a skops file
builds only types that skops trusts (scikit-learn's own, numpy's, builtins) plus the
ones the SERVER's settings name (``MODELSWAP_TRUSTED_TYPES``): never types read from
the file or from a request. skops is imported only when a skops file is handled: it
imports every scikit-learn estimator (seconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelswap.core.errors import InvalidInput, UntrustedTypes

JOBLIB = "joblib"
SKOPS = "skops"
FORMATS = (JOBLIB, SKOPS)
SUFFIXES = {".skops": SKOPS, ".joblib": JOBLIB, ".pkl": JOBLIB, ".pickle": JOBLIB}
# A skops file is a zip archive; a joblib file is a pickle, possibly compressed.
ZIP_MAGIC = b"PK\x03\x04"
TRUST_HINT = "MODELSWAP_TRUSTED_TYPES"
# scikit-learn's own compiled tree structures, which skops (0.16) leaves untrusted: decision
# trees, forests, extra trees, AdaBoost and gradient boosting hold Tree, HistGradientBoosting
# holds TreePredictor. Their node arrays hold child and feature indices that predict reads
# without bounds checks, so a crafted file can crash the process that predicts (or make it
# read memory it should not). The word SKLEARN in a list of trusted types stands for them.
SKLEARN = "sklearn"
SKLEARN_TYPES = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
)


def expand_trusted(names: Sequence[str]) -> tuple[str, ...]:
    """The trusted type names, the word ``sklearn`` replaced by :data:`SKLEARN_TYPES`."""
    expanded = (t for name in names for t in (SKLEARN_TYPES if name == SKLEARN else (name,)))
    return tuple(dict.fromkeys(expanded))


def check_format(value: str) -> str:
    if value not in FORMATS:
        raise InvalidInput(f"unknown model format {value!r}: expected one of {', '.join(FORMATS)}")
    return value


def detect_format(name: str | None, head: bytes) -> str:
    """The format of a file from its name and first bytes.

    A ``.skops`` name, or a zip archive whatever its name, is skops: reading it as a
    skops file never unpickles, so a mislabelled file can only fail to load. Anything
    else is taken for a joblib pickle.
    """
    if name is not None and Path(name).suffix.lower() == ".skops":
        return SKOPS
    return SKOPS if head.startswith(ZIP_MAGIC) else JOBLIB


def read_head(path: Path, size: int = 8) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(size)


def dump_model(estimator: Any, path: Path, fmt: str) -> None:
    if check_format(fmt) == SKOPS:
        import skops.io

        skops.io.dump(estimator, path)
    else:
        import joblib

        joblib.dump(estimator, path)


def load_model(path: Path, fmt: str, trusted_types: Sequence[str], *, share_memory: bool = False) -> Any:
    """Load a model file; a skops file only if every type in it is trusted (UntrustedTypes).

    ``share_memory``: the numpy arrays of a joblib file are memory-mapped copy-on-write
    from the file instead of read into private memory, so every worker and pod on a node
    that serves the same (immutable) version shares one copy in the page cache; a write
    into such an array stays private to the process and never reaches the file. Arrays
    only: what unpickles into Python objects (trees' node arrays are copied by their
    ``__setstate__``) stays per process, as does everything in a skops file (a zip). The
    mapped arrays are handed over as plain ndarray views of the mapping (``plain_views``).
    """
    if check_format(fmt) == JOBLIB:
        import joblib

        if not share_memory:
            return joblib.load(path)
        return plain_views(joblib.load(path, mmap_mode="c"))
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    refused = untrusted_types(path, trusted_types)
    if refused:
        raise UntrustedTypes(untrusted_message(path.name, refused), refused)
    try:
        # exactly the server's list: skops refuses anything else on its own as well
        return skops.io.load(path, trusted=list(trusted_types))
    except UntrustedTypesFoundException as exc:
        raise UntrustedTypes(f"{path.name}: {exc}; name trusted types in {TRUST_HINT}", ()) from exc


def untrusted_types(path: Path, trusted_types: Sequence[str]) -> tuple[str, ...]:
    """The types in a skops file that neither skops' defaults nor ``trusted_types`` trust.

    Reads only the file's schema (JSON); builds no object."""
    import skops.io

    allowed = set(trusted_types)
    return tuple(sorted(t for t in skops.io.get_untrusted_types(file=path) if t not in allowed))


def untrusted_message(file_name: str, types: Sequence[str]) -> str:
    listed = ", ".join(types)
    if types and set(types) <= set(SKLEARN_TYPES):
        return (
            f"{file_name} holds types that are not trusted: {listed}. These are scikit-learn's own compiled tree "
            "structures, which skops does not trust: a crafted file can crash the process that predicts with it. "
            f"If the model files come from people you trust, the server's administrator can trust them with "
            f"{TRUST_HINT}={SKLEARN} (on every server that loads the model)"
        )
    return (
        f"{file_name} holds types that are not trusted: {listed}. Loading it would run their code; "
        f"if you trust them, the server's administrator can name them in {TRUST_HINT}={','.join(types)} "
        "(comma-separated, on every server that loads the model)"
    )


def plain_views(model: Any) -> Any:
    """``model`` with each ``numpy.memmap`` it holds (in its attributes, its steps', in
    lists and dicts; not in a tuple, a slotted or compiled object, or a container that
    refuses the change) replaced by a plain ndarray view of the same mapped memory. numpy
    runs Python code (``memmap.__array_finalize__``) for every array made from a memmap:
    twice in a linear model's predict (4.5 of 74 us for one row of a LogisticRegression),
    and every answer indexed from one (``classes_[i]``) is a memmap. What is left a memmap
    still works, at that cost."""
    import types

    import numpy as np

    leaves = (np.ndarray, str, bytes, int, float, types.ModuleType, type)
    seen: set[int] = set()
    todo = [model]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, tuple):
            todo.extend(item for item in obj if not isinstance(item, leaves))
            continue
        try:
            holder = obj if isinstance(obj, (dict, list)) else getattr(obj, "__dict__", None)
        except Exception:  # an object whose attribute lookup fails its own way: left as it is
            continue
        if not isinstance(holder, (dict, list)):
            continue
        mapped = []
        for key, value in holder.items() if isinstance(holder, dict) else enumerate(holder):
            if isinstance(value, np.memmap):
                mapped.append((key, value))
            elif not isinstance(value, leaves):
                todo.append(value)
        for key, value in mapped:  # after the walk over the container: no copy of a big one
            try:
                holder[key] = value.view(np.ndarray)
            except Exception:  # a container that refuses the change: the memmap stays
                pass
    return model
