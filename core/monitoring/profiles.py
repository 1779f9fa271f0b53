"""A version's reference profile: its training data and its predictions on them, summarised.

Published with a reference (the rows the model was trained on), a version keeps
``reference.json``: per input column the bins its values fell into (deciles of a
number, the most frequent categories of a string), the share of nulls, and a bounded
sample of the numbers; and the same for the model's predictions on those rows (class
shares for a classifier, deciles for a regressor). Monitoring counts served requests
into the same bins (:meth:`FeatureProfile.count`, on every batch: cheap) and compares
the two distributions (:mod:`modelswap.core.monitoring.drift`).

Pure: NumPy only, no model and no request. Datetimes are numbers here (int64
nanoseconds); booleans are numbers (0/1).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from modelswap.core.errors import InvalidInput
from modelswap.core.schema.signature import STRING, Signature
from modelswap.core.store.fsio import read_regular
from modelswap.core.store.layout import REFERENCE_FILE

__all__ = [
    "CATEGORICAL",
    "CLASSES",
    "NUMERIC",
    "OTHER",
    "PREDICTION",
    "REFERENCE_FILE",
    "FeatureProfile",
    "ReferenceProfile",
    "build_profile",
    "column_values",
    "load_reference",
]

NUMERIC, CATEGORICAL, CLASSES = "numeric", "categorical", "classes"
KINDS = (NUMERIC, CATEGORICAL, CLASSES)
OTHER = "__other__"  # the bucket of every category not in the table (and of unseen ones)
PREDICTION = "prediction"  # the name of the predictions' profile
PROFILE_FORMAT = 1
DECILES = tuple(i / 10 for i in range(1, 10))
SAMPLE_SIZE = 1000  # numbers kept per numeric column for the KS test
TOP_CATEGORIES = 50


@dataclass(frozen=True)
class FeatureProfile:
    """The reference distribution of one column (or of the predictions).

    NUMERIC: ``edges`` are the interior bin edges, ascending; a bin is right-closed,
    ``(edges[i-1], edges[i]]``, so a value equal to an edge counts in the bin below it.
    CATEGORICAL and CLASSES: ``categories`` name the buckets; the last is OTHER.
    ``proportions`` (one per bin or bucket) are over the non-null reference values and
    sum to 1 (all 0 for a column that was null in every reference row); ``nulls`` is the
    share of reference rows that were null.
    """

    name: str
    kind: str
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    proportions: tuple[float, ...] = ()
    nulls: float = 0.0
    sample: tuple[float, ...] = ()

    @property
    def bins(self) -> int:
        return len(self.edges) + 1 if self.kind == NUMERIC else len(self.categories)

    @functools.cached_property
    def _edges(self) -> np.ndarray:
        """The edges and +inf: NaN sorts after +inf, so one ``searchsorted`` puts every
        number in its bin and every NaN one past the last (the nulls' slot)."""
        return np.append(np.asarray(self.edges, dtype=np.float64), np.inf)

    @functools.cached_property
    def _index(self) -> dict[Any, int]:
        """Category -> bucket; None -> one past the buckets (the nulls' slot)."""
        index: dict[Any, int] = {c: i for i, c in enumerate(self.categories)}
        index[None] = len(self.categories)
        return index

    def count(self, values: np.ndarray) -> tuple[np.ndarray, int]:
        """(counts per bin, int64 of length ``bins``, of the non-null values; nulls).

        NUMERIC takes a 1-D float64 array (NaN is null): one ``searchsorted`` on the
        edges. CATEGORICAL and CLASSES take a 1-D object array (None is null) whose
        values are compared as text; a value not in the table counts in OTHER. (A dict
        lookup per value: faster than ``np.unique`` on object arrays at every batch size
        measured, 64 to 10,000 rows.)
        """
        if self.kind == NUMERIC:
            counts = np.bincount(np.searchsorted(self._edges, values, side="left"), minlength=self.bins + 1)
            return counts[:-1].astype(np.int64, copy=False), int(counts[-1])
        index, bins = self._index, self.bins
        miss = bins + 1  # not text, NaN, or unseen: looked at again, those values only
        slots = np.fromiter(map(index.get, values, itertools.repeat(miss)), dtype=np.intp, count=len(values))
        counts = np.bincount(slots, minlength=miss + 1)
        if counts[miss]:
            for j in np.flatnonzero(slots == miss).tolist():
                slots[j] = _slot(index, values[j], bins - 1)
            counts = np.bincount(slots, minlength=miss + 1)
        return counts[:bins].astype(np.int64, copy=False), int(counts[bins])

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == NUMERIC:
            data["edges"] = list(self.edges)
        else:
            data["categories"] = list(self.categories)
        data["proportions"] = list(self.proportions)
        data["nulls"] = self.nulls
        if self.kind == NUMERIC:
            data["sample"] = list(self.sample)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> FeatureProfile:
        """A column's profile from its JSON form; InvalidInput saying what is wrong."""
        if not isinstance(data, Mapping):
            raise InvalidInput("a feature profile must be an object with 'name', 'kind' and 'proportions'")
        name, kind = data.get("name"), data.get("kind")
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"a feature profile's name must be a non-empty string, got {name!r}")
        if kind not in KINDS:
            raise InvalidInput(f"feature {name!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        what = f"feature {name!r}"
        edges = _numbers(data.get("edges", []), f"{what} edges")
        if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
            raise InvalidInput(f"{what}: edges must be strictly ascending")
        categories = data.get("categories", [])
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise InvalidInput(f"{what}: categories must be a list of strings")
        if len(set(categories)) != len(categories):
            raise InvalidInput(f"{what}: a category is named twice")
        if kind == NUMERIC and categories:
            raise InvalidInput(f"{what}: a numeric profile has edges, not categories")
        if kind != NUMERIC and (edges or not categories or categories[-1] != OTHER):
            raise InvalidInput(f"{what}: a {kind} profile has categories ending with {OTHER!r}, and no edges")
        sample = _numbers(data.get("sample", []), f"{what} sample")
        if len(sample) > SAMPLE_SIZE or (sample and kind != NUMERIC):
            raise InvalidInput(f"{what}: a sample is kept for numeric profiles only, at most {SAMPLE_SIZE} values")
        profile = cls(name, kind, tuple(edges), tuple(categories), (), 0.0, tuple(sample))
        proportions = _numbers(data.get("proportions"), f"{what} proportions")
        if len(proportions) != profile.bins:
            raise InvalidInput(f"{what}: {len(proportions)} proportions for {profile.bins} bins")
        total = sum(proportions)
        if any(p < 0 for p in proportions) or not (total == 0 or abs(total - 1) < 1e-6):
            raise InvalidInput(f"{what}: proportions must be 0 or more and sum to 1")
        nulls = data.get("nulls", 0.0)
        if isinstance(nulls, bool) or not isinstance(nulls, (int, float)) or not 0 <= nulls <= 1:
            raise InvalidInput(f"{what}: nulls must be a share between 0 and 1, got {nulls!r}")
        return cls(name, kind, tuple(edges), tuple(categories), tuple(proportions), float(nulls), tuple(sample))


def _slot(index: Mapping[Any, int], value: Any, other: int) -> int:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return index[None]
    return index.get(str(value), other)


def _numbers(value: Any, what: str) -> list[float]:
    if not isinstance(value, list):
        raise InvalidInput(f"{what} must be a list of numbers")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        raise InvalidInput(f"{what} must hold finite numbers only")
    return [float(v) for v in value]


@dataclass(frozen=True)
class ReferenceProfile:
    """What a version was trained on (``rows`` of it, sampled) and what it predicted there."""

    rows: int
    features: tuple[FeatureProfile, ...]  # in signature column order
    prediction: FeatureProfile | None  # None when the predictions could not be profiled

    def feature(self, name: str) -> FeatureProfile | None:
        return self._by_name.get(name)

    @functools.cached_property
    def _by_name(self) -> dict[str, FeatureProfile]:
        """Features by name: a view asks for each drifted feature's profile."""
        return {f.name: f for f in self.features}

    def summary(self) -> dict[str, Any]:
        """What views show: the number of rows and the columns profiled."""
        return {"rows": self.rows, "features": [f.name for f in self.features]}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROFILE_FORMAT,
            "rows": self.rows,
            "features": [f.to_dict() for f in self.features],
            "prediction": self.prediction.to_dict() if self.prediction is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ReferenceProfile:
        """A profile from its JSON form (``reference.json``); InvalidInput if malformed."""
        if not isinstance(data, Mapping):
            raise InvalidInput("a reference profile must be an object with 'rows' and 'features'")
        fmt, rows, features = data.get("format", PROFILE_FORMAT), data.get("rows"), data.get("features")
        if fmt != PROFILE_FORMAT:
            raise InvalidInput(f"reference profile format {fmt!r} is not one this modelswap reads ({PROFILE_FORMAT})")
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise InvalidInput(f"a reference profile's rows must be a whole number of 1 or more, got {rows!r}")
        if not isinstance(features, list) or not features:
            raise InvalidInput("a reference profile's features must be a non-empty list")
        parsed = tuple(FeatureProfile.from_dict(f) for f in features)
        names = [f.name for f in parsed]
        if len(set(names)) != len(names):
            raise InvalidInput("a reference profile names a feature twice")
        if any(f.kind == CLASSES for f in parsed):
            raise InvalidInput(f"a feature profile's kind is {NUMERIC} or {CATEGORICAL}")
        prediction = data.get("prediction")
        return cls(rows, parsed, FeatureProfile.from_dict(prediction) if prediction is not None else None)


# -- building ----------------------------------------------------------------------------
def build_profile(signature: Signature, X: np.ndarray, predictions: Any, *, seed: int = 0) -> ReferenceProfile:
    """The profile of reference rows ``X`` (as :func:`modelswap.core.schema.inputs.prepare`
    returns them: float64, or objects with None for null) and the model's predictions on
    them. ``seed`` fixes the numeric samples, so one reference gives one profile."""
    if X.ndim != 2 or X.shape[1] != signature.width or len(X) == 0:
        raise InvalidInput(f"the reference must be rows of {signature.width} columns, got shape {list(X.shape)}")
    features = []
    for i, column in enumerate(signature.columns):
        name = column.name if column.name is not None else f"#{i}"
        if column.type == STRING:
            features.append(_categorical(name, X[:, i]))
        else:
            features.append(_numeric(name, _floats(X[:, i]), np.random.default_rng([seed, i])))
    prediction = _prediction(signature, predictions, len(X), np.random.default_rng([seed, signature.width]))
    return ReferenceProfile(len(X), tuple(features), prediction)


def column_values(feature: FeatureProfile, column: np.ndarray) -> np.ndarray:
    """One column of a prepared request array as :meth:`FeatureProfile.count` takes it:
    float64 (a float64 column as is, no copy; objects converted, None and NaT as NaN,
    datetimes as nanoseconds) for NUMERIC, objects for the others (numbers and labels
    of another dtype as text)."""
    if feature.kind == NUMERIC:
        return _floats(column)
    if column.dtype == object:
        return column
    return column.astype(str).astype(object)


def _floats(column: np.ndarray) -> np.ndarray:
    if column.dtype == np.float64:
        return column
    if column.dtype.kind == "M":
        out = column.astype("datetime64[ns]").astype(np.int64).astype(np.float64)
        out[np.isnat(column)] = math.nan
        return out
    try:
        return column.astype(np.float64)  # None becomes NaN, a datetime64 its nanoseconds
    except (TypeError, ValueError):
        return np.array([_float(v) for v in column], dtype=np.float64)


def _float(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, np.datetime64):
        return math.nan if np.isnat(value) else float(value.astype("datetime64[ns]").astype(np.int64))
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _numeric(name: str, values: np.ndarray, rng: np.random.Generator) -> FeatureProfile:
    """Deciles (the inverted CDF: each edge is a reference value), deduplicated, and no
    edge at the maximum: every bin holds reference values, a constant column has one bin."""
    missing = ~np.isfinite(values)
    present = values[~missing]
    nulls = float(np.count_nonzero(missing)) / len(values)
    if not len(present):
        return FeatureProfile(name, NUMERIC, (), (), (0.0,), nulls, ())
    edges = np.unique(np.quantile(present, DECILES, method="inverted_cdf"))
    edges = edges[edges < present.max()]
    counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
    sample = present if len(present) <= SAMPLE_SIZE else rng.choice(present, SAMPLE_SIZE, replace=False)
    return FeatureProfile(
        name,
        NUMERIC,
        tuple(float(e) for e in edges),
        (),
        tuple(float(c) / len(present) for c in counts),
        nulls,
        tuple(float(v) for v in np.sort(sample)),
    )


def _categorical(name: str, column: np.ndarray, *, table: Sequence[str] | None = None) -> FeatureProfile:
    """The most frequent categories (ties by name), at most TOP_CATEGORIES, and OTHER;
    ``table`` fixes the categories instead (a classifier's classes: kind CLASSES)."""
    present = [v for v in column.tolist() if v is not None and not (isinstance(v, float) and math.isnan(v))]
    nulls = (len(column) - len(present)) / len(column)
    names, counts = np.unique(np.array([str(v) for v in present], dtype=str), return_counts=True)
    seen = {str(n): int(c) for n, c in zip(names.tolist(), counts.tolist(), strict=True)}
    if table is None:
        ranked = sorted((n for n in seen if n != OTHER), key=lambda n: (-seen[n], n))
        categories = tuple(ranked[:TOP_CATEGORIES])
    else:
        categories = tuple(dict.fromkeys(c for c in table if c != OTHER))
    kept = [seen.get(c, 0) for c in categories]
    other = len(present) - sum(kept)
    total = len(present)
    proportions = tuple(c / total for c in (*kept, other)) if total else (0.0,) * (len(categories) + 1)
    return FeatureProfile(
        name, CLASSES if table is not None else CATEGORICAL, (), (*categories, OTHER), proportions, nulls
    )


def _prediction(signature: Signature, predictions: Any, rows: int, rng: np.random.Generator) -> FeatureProfile | None:
    """Class shares for a classifier (``output.classes``), deciles for numbers, the most
    frequent values of anything else; None for an answer that is not one value per row."""
    answer = np.asarray(predictions)
    if answer.ndim != 1 or len(answer) != rows:
        return None
    classes = signature.output.classes if signature.output is not None else None
    if classes is not None:
        return _categorical(PREDICTION, answer.astype(object), table=[str(c) for c in classes])
    if answer.dtype.kind in "biuf":
        return _numeric(PREDICTION, answer.astype(np.float64), rng)
    return _categorical(PREDICTION, answer.astype(object))


def load_reference(version_dir: Path) -> ReferenceProfile | None:
    """The profile in ``version_dir/reference.json``; None when the version has none.

    Reads no digest: a serving process reads it after :func:`modelswap.core.serving.loader.load_version`
    has checked the version's files against the manifest. InvalidInput if malformed.
    """
    path = version_dir / REFERENCE_FILE
    try:
        raw = read_regular(path)
    except FileNotFoundError:
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{path} is not valid JSON: {exc}") from exc
    try:
        return ReferenceProfile.from_dict(data)
    except InvalidInput as exc:
        raise InvalidInput(f"{path}: {exc.message}") from exc
