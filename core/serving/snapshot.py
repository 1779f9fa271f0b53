"""What a request holds while it predicts: an immutable snapshot of one loaded version
(with its methods ready to take a prepared request array), and the small values a
serving slot reports (load errors, per-variant counts)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelswap.core.errors import PredictionFailed
from modelswap.core.schema.inputs import to_model
from modelswap.core.schema.signature import Signature
from modelswap.core.serving.loader import LoadedModel

STABLE = "stable"
CANARY = "canary"
SHADOW = "shadow"  # predicts a copy of stable's requests off the response path
PINNED = "pinned"  # a version-pinned request for a version that is neither stable nor canary


@dataclass(frozen=True)
class Snapshot:
    """One loaded version as a request sees it; never changes after creation."""

    model: str
    version: str
    variant: str
    loaded: LoadedModel
    swapped_at: float
    methods: dict[str, Callable[..., Any]] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, loaded: LoadedModel, variant: str) -> Snapshot:
        """A snapshot whose methods take a prepared request array (see core.schema.inputs):
        bound methods as they are for array models, wrapped to build the DataFrame for
        models fitted on one."""
        signature = loaded.signature
        checked = not any(c.nullable for c in signature.columns)
        methods: dict[str, Callable[..., Any]] = {}
        for name in loaded.methods:
            method = getattr(loaded.estimator, name)
            if signature.frame:
                method = _on_frame(method, signature)
            methods[name] = _served(method, assume_finite=checked)
        return cls(loaded.model, loaded.version, variant, loaded, time.time(), methods)

    @property
    def signature(self) -> Signature:
        return self.loaded.signature


def _served(method: Callable[..., Any], *, assume_finite: bool) -> Callable[[np.ndarray], Any]:
    """Every call of a served method, on the model's worker thread.

    ``assume_finite``, for a model whose columns take no nulls: core.schema.inputs.prepare already
    refused anything not finite, so scikit-learn need not scan the rows again (per call, not
    process-wide: a model that takes nulls keeps scikit-learn's own checks).

    An estimator holding a memmap the load could not make a plain view
    (core.store.formats.plain_views: e.g. one held in a tuple) answers with it indexed
    (``classes_[i]`` is a ``numpy.memmap``). Every slice of a memmap and every array made
    from one goes through numpy's Python-level ``__getitem__`` and ``__array_finalize__``
    (1.4 us a slice against 0.1), and each is an object the garbage collector tracks (a
    view would keep it as its base; monitoring keeps 20,000 answers): the answer is copied
    into a plain ndarray (it is the indexing's result, not the mapped file).

    An answer that is not made of numbers, booleans, strings and nulls is refused here
    (PredictionFailed, see ``encodable``), so every protocol and the shadow runner refuse
    it alike and count it as the model's failure. So is model code that exits
    (``sys.exit()`` in a custom transformer: SystemExit, not an ``Exception``): it would
    pass every ``except Exception`` on its way up and end the worker's event loop, and
    every request in flight with it, on the loop or from a worker thread alike. A
    KeyboardInterrupt goes up as it is: it is the user's Ctrl-C (``modelswap score``), not
    the model's.
    """

    # here, once a model is loaded: a CLI command that loads none never pays for it
    from sklearn import get_config, set_config

    def call(X: np.ndarray) -> Any:
        try:
            if assume_finite:  # config_context's work for the one setting, at a fifth of its cost (0.4 us)
                before = get_config()["assume_finite"]
                set_config(assume_finite=True)
                try:
                    answer = method(X)
                finally:
                    set_config(assume_finite=before)
            else:
                answer = method(X)
        except (SystemExit, GeneratorExit) as exc:  # the model's code; a KeyboardInterrupt is the user's (Ctrl-C)
            raise PredictionFailed(f"it raised {type(exc).__name__}") from exc
        return encodable(np.array(answer) if isinstance(answer, np.memmap) else answer)

    return call


# dtype kinds whose values every protocol encodes: booleans, integers, floats, text
PLAIN_KINDS = frozenset("biufU")
SCALARS = (str, bool, int, float, type(None), np.bool_, np.integer, np.floating)
MUST_BE = "but a prediction is made of numbers, booleans, strings and nulls"


def encodable(answer: Any) -> Any:
    """``answer`` as it is when each of its values is a number, a boolean, a string or a
    null, which native JSON, the v2 tensors (JSON and binary) and MLflow's JSON all
    encode; else PredictionFailed naming the offending type. Anything else would reach a
    client as ``"<object object at 0x...>"`` (v2 BYTES takes any value's ``str``) in one
    protocol and an internal error in another. A numeric answer costs one dtype check."""
    array = answer if isinstance(answer, np.ndarray) else _as_array(answer)
    if array is not None:
        if array.dtype.kind in PLAIN_KINDS:
            return answer
        if array.dtype.kind != "O":
            raise PredictionFailed(f"it answered {array.dtype} values, {MUST_BE}")
        odd = next((t for t in set(map(type, array.flat)) if not issubclass(t, SCALARS)), None)
        if odd is None:
            return answer
        raise PredictionFailed(f"it answered {odd.__name__} values, {MUST_BE}")
    raise PredictionFailed(f"it answered a {type(answer).__name__}, {MUST_BE}")


def _as_array(answer: Any) -> np.ndarray | None:
    """A list's (or Series') values as an array of objects; None when it has none."""
    try:
        return np.asarray(answer, dtype=object)
    except (ValueError, TypeError):
        return None


def _on_frame(method: Callable[..., Any], signature: Signature) -> Callable[[np.ndarray], Any]:
    def call(X: np.ndarray) -> Any:
        return method(to_model(signature, X))

    return call


@dataclass(frozen=True)
class LoadError:
    version: str
    message: str
    code: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "message": self.message, "code": self.code, "at": self.at}


class VariantStats:
    """This process's [requests, errors] per variant since the canary config changed."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}

    def of(self, variant: str) -> list[int]:
        counts = self.counts.get(variant)
        if counts is None:
            counts = self.counts[variant] = [0, 0]
        return counts

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {
            v: {"requests": n, "errors": e, "error_rate": (e / n) if n else 0.0} for v, (n, e) in self.counts.items()
        }
