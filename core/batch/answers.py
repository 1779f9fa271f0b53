"""What a batch job writes for each row: the method's answer as named, typed columns.

``predict`` gives one column ``prediction`` (typed by the class labels: string, whole
number or number; a number for a regressor; ``prediction_<i>`` for several outputs);
``predict_proba`` one ``proba_<class>`` per class; ``decision_function`` ``decision``, or
one ``decision_<class>`` per class. The columns come from the signature and the fitted
estimator before any row is scored, so an empty input, Dask's ``meta`` and Spark's schema
all agree with what the rows get.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from modelswap.core.batch import BATCH_METHODS
from modelswap.core.errors import InvalidInput
from modelswap.core.schema.signature import Output, Signature

PREFIX = {"predict_proba": "proba", "decision_function": "decision"}


@dataclass(frozen=True)
class Answers:
    """The output columns of ``method``: names and Arrow types, in order."""

    method: str
    names: tuple[str, ...]
    types: tuple[pa.DataType, ...]

    @classmethod
    def of(cls, signature: Signature, method: str, label: str) -> Answers:
        """The columns ``method`` gives for a version with ``signature`` (its output names
        the methods and class labels); ``label`` names the version in errors."""
        if method not in BATCH_METHODS:
            raise InvalidInput(f"method must be one of {', '.join(BATCH_METHODS)}, got {method!r}")
        output = signature.output or Output(("predict",))
        if method not in output.methods:
            offered = ", ".join(m for m in BATCH_METHODS if m in output.methods)
            raise InvalidInput(f"{label} has no {method}; it offers {offered}")
        classes = output.classes
        if method == "predict":
            kind = _label_type(classes)
            if output.shape:
                width = int(np.prod(output.shape))
                return cls(method, tuple(f"prediction_{i}" for i in range(width)), (kind,) * width)
            return cls(method, ("prediction",), (kind,))
        prefix = PREFIX[method]
        if classes is None:
            raise InvalidInput(f"{label}: {method} needs a classifier's class labels, and its signature has none")
        if method == "decision_function" and len(classes) == 2:
            return cls(method, (prefix,), (pa.float64(),))
        return cls(method, tuple(f"{prefix}_{c}" for c in classes), (pa.float64(),) * len(classes))

    def check_keep(self, keep: Sequence[str], *, also: Sequence[str] = ()) -> None:
        """Kept columns must not take an answer's name (or ``also``'s: a rejects file's own)."""
        taken = set(self.names) | set(also)
        clash = [k for k in keep if k in taken]
        if clash:
            raise InvalidInput(
                f"cannot keep {', '.join(map(repr, clash))}: the output names a column of its own so "
                f"({', '.join([*self.names, *also])})"
            )
        if len(set(keep)) != len(keep):
            raise InvalidInput("a column is named twice in keep")

    @property
    def fields(self) -> list[pa.Field]:
        return [pa.field(n, t) for n, t in zip(self.names, self.types, strict=True)]

    def columns(self, result: Any) -> list[np.ndarray]:
        """The estimator's ``result`` for a chunk as this output's columns (NumPy)."""
        answer = np.asarray(result)
        answer = answer.reshape(-1, 1) if answer.ndim == 1 else answer.reshape(len(answer), -1)
        if answer.shape[1] != len(self.names):
            raise InvalidInput(
                f"{self.method} answered {answer.shape[1]} value(s) per row, the signature says {len(self.names)}"
            )
        return [answer[:, i] for i in range(answer.shape[1])]

    def arrays(self, result: Any) -> list[pa.Array]:
        """The same as Arrow arrays of this output's types."""
        return [_array(values, kind) for values, kind in zip(self.columns(result), self.types, strict=True)]


def _label_type(classes: Sequence[Any] | None) -> pa.DataType:
    if classes is None:
        return pa.float64()  # a regressor
    if all(isinstance(c, bool) for c in classes):
        return pa.bool_()
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return pa.int64()
    if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in classes):
        return pa.float64()
    return pa.string()


def _array(values: np.ndarray, kind: pa.DataType) -> pa.Array:
    if pa.types.is_string(kind) and values.dtype.kind not in "OU":
        values = values.astype(str)  # labels that are numbers, declared as text
    return pa.array(values, type=kind)
