"""The reference rows given at publish: sampled, checked against the signature, predicted
by the new model, and profiled (:mod:`modelswap.core.monitoring.profiles`).

Runs where inspection runs (:mod:`modelswap.core.store.inspection`): in the publishing
process, or in the limited child process that validates an upload.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from modelswap.core.errors import InvalidInput, ValidationFailed
from modelswap.core.monitoring.profiles import ReferenceProfile, build_profile
from modelswap.core.schema.examples import plain_value
from modelswap.core.schema.inputs import Table, prepare, records_table, to_model
from modelswap.core.schema.signature import Signature

MAX_REFERENCE_ROWS = 100_000  # more are sampled down to this many (uniformly, seeded)
PREPARE_LIMIT = 10**7


def profile_reference(
    label: str, estimator: Any, signature: Signature, reference: Any, *, seed: int = 0
) -> ReferenceProfile:
    """The profile of ``reference`` (a DataFrame, records, rows or a 2-D array, in the
    version's input format) and of the model's predictions on it. InvalidInput naming
    the column and row when it does not fit the signature; ValidationFailed when the
    model cannot predict it."""
    table = reference_table(signature, reference, seed=seed)
    unknown = [n for n in table.columns or () if signature.named and n not in signature.names]
    if unknown:  # prepare's message would point at MODELSWAP_EXTRA_COLUMNS, a request setting
        raise InvalidInput(
            f"{label}: the reference does not fit the signature: unknown column(s) {', '.join(map(repr, unknown))}; "
            f"the model takes {', '.join(signature.names)} (leave the target out)"
        )
    try:
        X = prepare(signature, table, max_rows=PREPARE_LIMIT)
    except InvalidInput as exc:
        raise InvalidInput(f"{label}: the reference does not fit the signature: {exc.message}") from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            answer = estimator.predict(to_model(signature, X))
    except Exception as exc:  # the model's own code refusing the rows refuses the version
        raise ValidationFailed(f"{label}: predict on the reference failed: {type(exc).__name__}: {exc}") from exc
    if len(answer) != len(X):
        raise ValidationFailed(f"{label}: predict returned {len(answer)} answers for {len(X)} reference rows")
    return build_profile(signature, X, answer, seed=seed)


def reference_table(signature: Signature, reference: Any, *, seed: int = 0) -> Table:
    """``reference`` as a request table of at most MAX_REFERENCE_ROWS rows (a seeded
    uniform sample, in the original order, when there are more)."""
    if type(reference).__name__ == "DataFrame":
        return _frame_table(signature, reference, seed)
    if isinstance(reference, np.ndarray):
        rows = np.atleast_2d(reference)
        if rows.ndim != 2 or not len(rows):
            raise InvalidInput(f"the reference must be a 2-D array of rows, got shape {list(reference.shape)}")
        rows = rows[_sample(len(rows), seed)] if len(rows) > MAX_REFERENCE_ROWS else rows
        if rows.dtype.kind in "biuf":
            return Table(array=rows)
        return Table(rows=[[_cell(v) for v in row] for row in rows.tolist()])
    if isinstance(reference, Sequence) and not isinstance(reference, (str, bytes)) and reference:
        picked: Sequence[Any] = reference
        if len(reference) > MAX_REFERENCE_ROWS:
            picked = [reference[i] for i in _sample(len(reference), seed).tolist()]
        if isinstance(picked[0], dict):
            return records_table(list(picked), what="reference")
        if all(isinstance(r, (list, tuple)) for r in picked):
            return Table(rows=[list(r) for r in picked])
    raise InvalidInput("the reference must be rows ([[...]]), records ([{...}]), a 2-D array or a DataFrame, not empty")


def _frame_table(signature: Signature, frame: Any, seed: int) -> Table:
    if not len(frame):
        raise InvalidInput("the reference has no rows")
    if len(frame) > MAX_REFERENCE_ROWS:
        frame = frame.iloc[_sample(len(frame), seed)]
    names = [str(c) for c in frame.columns]
    numbers = all(isinstance(dtype, np.dtype) and dtype.kind in "iuf" for dtype in frame.dtypes)
    if signature.named and signature.plain_numbers and numbers and sorted(names) == sorted(signature.names):
        ordered = frame[[c for n in signature.names for c in frame.columns if str(c) == n]]
        return Table(array=ordered.to_numpy(dtype=np.float64))  # the fast path: one array, checked at once
    return Table(
        columns={name: [_cell(v) for v in frame[c].tolist()] for name, c in zip(names, frame.columns, strict=True)}
    )


def _sample(n: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, MAX_REFERENCE_ROWS, replace=False))


def _cell(value: Any) -> Any:
    """A plain value as a request would carry it: numpy scalars unwrapped, NaN, NA and
    NaT as None, dates and times as ISO 8601 text."""
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(value)
    value = plain_value(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value
