"""What a new version's model file says about itself: load it, predict its example.

:func:`inspect_model` is the whole of what publishing learns from the model file (its
class, columns, signature, the stored input example, and the profile of the reference
rows and of its predictions on them, when a reference was given). It runs in the publishing
process for local publishes, and in a limited child process for uploads
(:mod:`modelswap.core.store.sandbox`), which sends an :class:`Inspection` back as JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modelswap.core.errors import InvalidInput, ValidationFailed
from modelswap.core.monitoring.profiles import ReferenceProfile
from modelswap.core.monitoring.references import profile_reference
from modelswap.core.schema.examples import infer_signature, normalize, probe_nullable, stored_form
from modelswap.core.schema.signature import Signature, describe_output, fitted_names, legacy_signature
from modelswap.core.serving.loader import load_estimator, smoke_predict
from modelswap.core.store.manifest import describe_estimator


@dataclass(frozen=True)
class InspectRequest:
    """A staged model file to inspect, and what the publisher said about its input."""

    model_file: Path
    model_format: str
    label: str
    example: Any  # the publisher's example (any form :func:`normalize` takes) or None
    fallback_example: Sequence[Any] | None  # the parent's stored example, used when it fits
    signature: Signature | None  # a declared signature, or None to infer one
    trusted_types: tuple[str, ...] = ()
    reference: Any = None  # reference rows to profile (any form profile_reference takes), or None


@dataclass(frozen=True)
class Inspection:
    """The manifest's fields that only loading the model can tell."""

    estimator: str
    n_features_in: int | None
    feature_names: tuple[str, ...] | None
    signature: Signature
    example: tuple[Any, ...]
    reference: ReferenceProfile | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimator": self.estimator,
            "n_features_in": self.n_features_in,
            "feature_names": list(self.feature_names) if self.feature_names is not None else None,
            "signature": self.signature.to_dict(),
            "example": list(self.example),
            "reference": self.reference.to_dict() if self.reference is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Inspection:
        """The inspection a child process reported; ValueError if it is not one."""
        try:
            names = data["feature_names"]
            n_features = data["n_features_in"]
            example = data["example"]
            if not isinstance(data["estimator"], str) or not isinstance(example, list) or not example:
                raise ValueError("estimator must be a string and example a non-empty list")
            if not all(isinstance(row, (list, dict)) for row in example):
                raise ValueError("example must hold rows or records")
            if n_features is not None and (isinstance(n_features, bool) or not isinstance(n_features, int)):
                raise ValueError("n_features_in must be a whole number")
            reference = data.get("reference")
            return cls(
                estimator=data["estimator"],
                n_features_in=n_features,
                feature_names=tuple(str(n) for n in names) if names is not None else None,
                signature=Signature.from_dict(data["signature"]),
                example=tuple(example),
                reference=ReferenceProfile.from_dict(reference) if reference is not None else None,
            )
        except (KeyError, TypeError, AttributeError, InvalidInput) as exc:
            raise ValueError(f"not an inspection: {exc}") from exc


Inspector = Callable[[InspectRequest], Inspection]


def inspect_model(request: InspectRequest) -> Inspection:
    """Load the model file in THIS process and predict the example (see module doc)."""
    estimator = load_estimator(request.model_file, request.label, request.model_format, request.trusted_types)
    cls, n_features, names = describe_estimator(estimator)
    example = request.example if request.example is not None else _usable(request.fallback_example, estimator)
    signature, stored = describe_input(request.label, estimator, example, request.signature)
    reference = (
        profile_reference(request.label, estimator, signature, request.reference)
        if request.reference is not None
        else None
    )
    return Inspection(cls, n_features, names, signature, tuple(stored), reference)


def _usable(example: Sequence[Any] | None, estimator: Any) -> Sequence[Any] | None:
    """The parent's example if it has the shape this estimator takes, else None."""
    if example is None:
        return None
    try:
        names, rows = normalize(example, estimator)
    except InvalidInput:
        return None
    n_features = getattr(estimator, "n_features_in_", None)
    return example if n_features is None or len(rows[0]) == int(n_features) else None


def describe_input(label: str, estimator: Any, example: Any, declared: Signature | None) -> tuple[Signature, list[Any]]:
    """(signature, stored example) of a new version, validated by predicting the example.

    Without an example a model that takes plain numbers (``n_features_in_``) is checked
    with a row of zeros; any other model needs one. A declared signature is kept as
    given (its nulls included); an inferred one learns which columns take nulls by probing.
    """
    if declared is not None and fitted_names(estimator) is not None and not declared.frame:
        declared = replace(declared, frame=True)  # fitted on a DataFrame: it must be fed one
    if example is None:
        n_features = getattr(estimator, "n_features_in_", None)
        if declared is not None:
            raise ValidationFailed(f"{label}: a declared signature needs an input example to validate it with")
        if n_features is None or fitted_names(estimator) is not None:
            raise ValidationFailed(f"{label}: cannot tell what input the model takes: give an input example")
        signature, stored = legacy_signature(estimator, int(n_features)), [[0.0] * int(n_features)]
    else:
        names, rows = normalize(example, estimator)
        stored = stored_form(names, rows)
        signature = declared if declared is not None else infer_signature(names, rows, estimator)
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features is not None and int(n_features) != signature.width:
        raise ValidationFailed(
            f"{label}: the input example has {signature.width} features, the model expects {int(n_features)}"
        )
    X, answer = smoke_predict(label, estimator, signature, stored)
    if declared is None:
        signature = signature.with_nullable(probe_nullable(signature, X, estimator.predict))
    return signature.with_output(describe_output(estimator, answer)), stored
