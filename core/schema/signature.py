"""A version's signature: its named, typed input columns and its output, inferred at publish.

MLflow's model signature is the model here: ordered columns with a name, a type
(``double``, ``long``, ``boolean``, ``string``, ``datetime``), whether nulls are allowed
and whether a request must send the column (MLflow's ``ColSpec(required=...)``), plus the
output (the methods, class labels for classifiers, the shape of one answer). ``frame``
says the estimator was fitted on a pandas DataFrame and must be fed one. A signature is
stored in ``manifest.json``; a version published before signatures existed gets one
derived from the fitted estimator (``n_features_in_``, ``feature_names_in_``).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from modelswap.core.errors import IncompatibleSchema, InvalidInput

DOUBLE, LONG, BOOLEAN, STRING, DATETIME = "double", "long", "boolean", "string", "datetime"
TYPES = (DOUBLE, LONG, BOOLEAN, STRING, DATETIME)
NUMERIC = frozenset({DOUBLE, LONG, BOOLEAN})
# What each type may widen to without losing meaning (a client sending the old type still works).
WIDENS_TO = {LONG: {DOUBLE}, BOOLEAN: set(), DOUBLE: set(), STRING: set(), DATETIME: set()}
METHODS = ("predict", "predict_proba", "decision_function", "predict_log_proba")


@dataclass(frozen=True)
class Column:
    """One input column. ``name`` is None for a model that only knows positions.

    ``nullable``: a request may send null in it. ``required``: a request must send the
    column; one that is not may be left out, and is then null in every row (so it is
    nullable too). A dropped or misspelled field is a 400, not a silent null."""

    name: str | None
    type: str
    nullable: bool = False
    required: bool = True

    def label(self, index: int) -> str:
        return repr(self.name) if self.name is not None else f"#{index}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "nullable": self.nullable, "required": self.required}

    @classmethod
    def from_dict(cls, data: Any, *, stored: bool = False) -> Column:
        """A column from its JSON form. ``stored``: from a manifest, where a column without
        ``required`` was written before columns could be optional, when a nullable column
        could be left out: it stays so (required unless nullable). Declared without it, a
        column is required; ``"required": false`` makes it nullable unless it says otherwise."""
        if not isinstance(data, Mapping):
            raise InvalidInput('a signature column is an object like {"name": "plan", "type": "string"}')
        name, kind = data.get("name"), data.get("type")
        if name is not None and (not isinstance(name, str) or not name):
            raise InvalidInput(f"a column name must be a non-empty string, got {name!r}")
        if kind not in TYPES:
            raise InvalidInput(f"column {name!r}: type must be one of {', '.join(TYPES)}, got {kind!r}")
        if "required" in data:
            required = data["required"]
            if not isinstance(required, bool):
                raise InvalidInput(f"column {name!r}: 'required' must be true or false")
        nullable = data.get("nullable", False if "required" not in data else not required)
        if not isinstance(nullable, bool):
            raise InvalidInput(f"column {name!r}: 'nullable' must be true or false")
        if "required" not in data:
            required = not nullable if stored else True
        if not required and not nullable:
            raise InvalidInput(
                f"column {name!r}: a column that is not required must be nullable (left out, it is null in every row)"
            )
        return cls(name, kind, nullable, required)


@dataclass(frozen=True)
class Output:
    """What the model answers: its methods, class labels (classifiers), one answer's shape."""

    methods: tuple[str, ...]
    classes: tuple[Any, ...] | None = None
    shape: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "methods": list(self.methods),
            "classes": list(self.classes) if self.classes is not None else None,
            "shape": list(self.shape),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Output:
        if not isinstance(data, Mapping):
            raise InvalidInput("a signature output is an object with 'methods'")
        classes = data.get("classes")
        return cls(
            tuple(str(m) for m in data.get("methods") or ()),
            tuple(classes) if isinstance(classes, list) else None,
            tuple(int(n) for n in data.get("shape") or ()),
        )


@dataclass(frozen=True)
class Signature:
    columns: tuple[Column, ...]
    frame: bool = False
    output: Output | None = None

    @functools.cached_property
    def width(self) -> int:  # asked per request
        return len(self.columns)

    @functools.cached_property
    def named(self) -> bool:
        return bool(self.columns) and all(c.name is not None for c in self.columns)

    @functools.cached_property
    def name_set(self) -> frozenset[str]:
        """The columns' names, when every column has one (else empty): asked per request."""
        return frozenset(self.names) if self.named else frozenset()

    @property
    def numeric(self) -> bool:
        """Every column is a number (or boolean): requests can travel as one float64 array."""
        return all(c.type in NUMERIC for c in self.columns)

    @functools.cached_property
    def plain_numbers(self) -> bool:
        """Rows of plain numbers fit every column (numbers, none boolean): the fast path."""
        return all(c.type in (DOUBLE, LONG) for c in self.columns)

    @functools.cached_property
    def long_columns(self) -> list[int]:
        return [i for i, c in enumerate(self.columns) if c.type == LONG]

    @property
    def names(self) -> list[str]:
        return [c.name if c.name is not None else str(i) for i, c in enumerate(self.columns)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [c.to_dict() for c in self.columns],
            "frame": self.frame,
            "output": self.output.to_dict() if self.output is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Any, *, stored: bool = False) -> Signature:
        """A signature from its JSON form: a ``--signature`` file, or a manifest (``stored``:
        see :meth:`Column.from_dict`)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("inputs"), list) or not data["inputs"]:
            raise InvalidInput('a signature is an object like {"inputs": [{"name": "plan", "type": "string"}, ...]}')
        columns = tuple(Column.from_dict(c, stored=stored) for c in data["inputs"])
        names = [c.name for c in columns if c.name is not None]
        if len(names) != len(set(names)):
            raise InvalidInput("a signature names a column twice")
        if names and len(names) != len(columns):
            raise InvalidInput("a signature names every column or none")
        output = data.get("output")
        frame = data.get("frame", False)
        if not isinstance(frame, bool):
            raise InvalidInput("signature 'frame' must be true or false")
        return cls(columns, frame, Output.from_dict(output) if output is not None else None)

    def with_output(self, output: Output) -> Signature:
        return replace(self, output=output)

    def with_nullable(self, indexes: set[int]) -> Signature:
        columns = tuple(replace(c, nullable=c.nullable or i in indexes) for i, c in enumerate(self.columns))
        return replace(self, columns=columns)

    def optional_as(self, live: Signature | None) -> Signature:
        """This inferred signature with ``live``'s optional columns left optional where
        they still take nulls. An example cannot say whether a client may leave a column
        out, so the live version's answer stands: re-publishing the same model does not
        make its own clients' requests break (``~ plan: now required``)."""
        if live is None or not self.named or not live.named:
            return self
        optional = {c.name for c in live.columns if not c.required}
        if not optional:
            return self
        columns = tuple(replace(c, required=False) if c.name in optional and c.nullable else c for c in self.columns)
        return replace(self, columns=columns)


def fitted_names(estimator: Any) -> list[str] | None:
    """The column names the estimator was fitted with (a DataFrame fit), if any."""
    names = getattr(estimator, "feature_names_in_", None)
    return [str(n) for n in names] if names is not None else None


def legacy_signature(estimator: Any, n_features: int | None) -> Signature:
    """The signature of a version published without one: ``n_features_in_`` doubles."""
    names = fitted_names(estimator)
    width = len(names) if names is not None else n_features
    if width is None:
        raise InvalidInput("cannot tell what input the model takes: give an input example")
    columns = tuple(Column(names[i] if names else None, DOUBLE) for i in range(width))
    return Signature(columns, frame=names is not None, output=describe_output(estimator))


def describe_output(estimator: Any, answer: Any = None) -> Output:
    classes = getattr(estimator, "classes_", None)
    shape = tuple(int(n) for n in np.shape(answer)[1:]) if answer is not None else ()
    return Output(
        tuple(m for m in METHODS if callable(getattr(estimator, m, None))),
        tuple(_plain(c) for c in np.asarray(classes).tolist())
        if classes is not None and np.ndim(classes) == 1
        else None,
        shape,
    )


def infer_columns(
    names: Sequence[str] | None, columns: Sequence[Sequence[Any]], *, unknown: str | None = None
) -> tuple[Column, ...]:
    """Column types from example values (one sequence per column); nullable where a value is
    null. ``unknown``: the type of a column whose example values are all null (None: refused)."""
    inferred = []
    for i, values in enumerate(columns):
        name = names[i] if names is not None else None
        kinds = {k for k in map(_kind, values) if k is not None}
        if not kinds and unknown is not None:
            kinds = {unknown}
        if not kinds:
            raise InvalidInput(
                f"column {name or f'#{i}'}: every example value is null, so its type is unknown; "
                "give a signature (--signature FILE) or an example with a value"
            )
        if kinds == {LONG, DOUBLE}:
            kinds = {DOUBLE}
        if len(kinds) > 1:
            raise InvalidInput(f"column {name or f'#{i}'}: the example mixes {', '.join(sorted(kinds))} values")
        (kind,) = kinds
        inferred.append(Column(name, kind, any(_is_null(v) for v in values)))
    return tuple(inferred)


def _kind(value: Any) -> str | None:
    if _is_null(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return BOOLEAN
    if isinstance(value, (int, np.integer)):
        return LONG
    if isinstance(value, (float, np.floating)):
        return DOUBLE
    if isinstance(value, str):
        return STRING
    if isinstance(value, (dt.datetime, dt.date, np.datetime64)):
        return DATETIME
    raise InvalidInput(f"example value {value!r} ({type(value).__name__}) is not a number, boolean, string or date")


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (float, np.floating)) and value != value:  # NaN
        return True
    return type(value).__name__ in ("NAType", "NaTType")


def _plain(value: Any) -> Any:
    """A JSON-ready class label."""
    return value.item() if isinstance(value, np.generic) else value


def diff(old: Signature, new: Signature) -> tuple[list[str], list[str]]:
    """(breaking, compatible) differences from ``old`` to ``new`` as readable lines.

    Breaking: a column removed or renamed, a type narrowed or changed, a new column
    that must be sent, a column that becomes required, a different width for a
    positional model, names dropped. Compatible (noted): a type widened (long -> double),
    a column that now takes nulls or no longer does (whether a model tolerates a null is
    mostly incidental: a tree does, a linear model does not, and clients rarely rely on
    it), a new optional column, a column no longer required, names added, other class
    labels. (Whether a column is required means nothing for positional rows, which hold
    every column.)
    """
    breaking: list[str] = []
    compatible: list[str] = []
    if not old.named or not new.named:
        if old.width != new.width:
            breaking += [f"- {old.width} columns", f"+ {new.width} columns"]
        elif old.named and not new.named:
            breaking.append(f"- columns named {', '.join(old.names)}; + positional columns only")
        elif new.named and not old.named:
            compatible.append(f"+ names for the columns: {', '.join(new.names)}")
        pairs = list(zip(old.columns, new.columns, strict=False))
    else:
        before = {c.name: c for c in old.columns}
        after = {c.name: c for c in new.columns}
        for name, column in before.items():
            if name not in after:
                breaking.append(f"- {name}: {column.type}")
        for name, column in after.items():
            if name not in before:
                note = " (optional)" if not column.required else " (nullable)" if column.nullable else ""
                (breaking if column.required else compatible).append(f"+ {name}: {column.type}{note}")
        pairs = [(before[n], after[n]) for n in before if n in after]
    for i, (a, b) in enumerate(pairs):
        label = a.name if a.name is not None else f"#{i}"
        if a.type != b.type:
            line = f"~ {label}: {a.type} -> {b.type}"
            (compatible if b.type in WIDENS_TO[a.type] else breaking).append(line)
        if a.nullable and not b.nullable:
            compatible.append(f"~ {label}: nulls no longer accepted")
        elif b.nullable and not a.nullable:
            compatible.append(f"~ {label}: now accepts nulls")
        if old.named and new.named and b.required and not a.required:
            breaking.append(f"~ {label}: now required")
        elif old.named and new.named and a.required and not b.required:
            compatible.append(f"~ {label}: no longer required")
    if old.output and new.output and old.output.classes != new.output.classes:
        compatible.append(f"~ classes: {list(old.output.classes or [])} -> {list(new.output.classes or [])}")
    return breaking, compatible


def schema_change(live: Signature | None, candidate: Signature | None, *, force: bool, what: str) -> dict[str, Any]:
    """History details of moving from ``live``'s inputs to ``candidate``'s; raises
    IncompatibleSchema with the readable diff when the change would break clients,
    unless ``force`` (then the details say it was forced)."""
    if live is None or candidate is None:
        return {}
    breaking, compatible = diff(live, candidate)
    if breaking and not force:
        raise IncompatibleSchema(
            f"{what} changes the input schema in a way that breaks clients of the live version: "
            f"{'; '.join(breaking + compatible)} (pass force / --allow-schema-change to do it anyway)"
        )
    details: dict[str, Any] = {"schema_change": breaking + compatible} if breaking or compatible else {}
    if breaking:
        details["forced"] = True
    return details


def manifest_signature(manifest: Any) -> Signature | None:
    """A version's signature as its manifest gives it, without loading the model: the
    stored one, or doubles from ``n_features_in``/``feature_names`` for older manifests."""
    if manifest.signature is not None:
        return manifest.signature  # type: ignore[no-any-return]
    names = manifest.feature_names
    width = len(names) if names is not None else manifest.n_features_in
    if width is None:
        return None
    return Signature(tuple(Column(names[i] if names else None, DOUBLE) for i in range(width)), frame=names is not None)
