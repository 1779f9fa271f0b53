"""Finding and comparing versions: by model id, by lineage, by metric and tag, side by side."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from modelswap.core.errors import InvalidInput, NotFound
from modelswap.core.schema.signature import diff, manifest_signature
from modelswap.core.store import registry as reg
from modelswap.core.store.kernel import Kernel

MODEL_ID_RE = re.compile(r"m-[0-9a-f]{32}")
WHERE_RE = re.compile(r"\s*([A-Za-z0-9_.-]{1,64})\s*(>=|<=|==|!=|>|<|=)\s*(-?[0-9][0-9.eE+-]*)\s*")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
}


def find_model_id(kernel: Kernel, model_id: str) -> tuple[str, reg.Version]:
    """The (model, version) whose content id is ``model_id``; NotFound otherwise."""
    if not isinstance(model_id, str) or not MODEL_ID_RE.fullmatch(model_id):
        raise InvalidInput(f"invalid model id {model_id!r}: expected m- and 32 hex digits")
    for model in kernel.models():
        for record in kernel.registry(model).versions():
            if record.model_id == model_id:
                return model, record
    raise NotFound(f"no version in this store has model id {model_id}")


def lineage(kernel: Kernel, model: str, version: str) -> dict[str, Any]:
    """``version``'s ancestors (parent first, following ``parent`` links) and descendants
    (versions whose parent chain reaches it), as version ids."""
    registry = kernel.registry(model)
    if version not in registry:
        raise NotFound(f"model {model} has no version {version}")
    parents = {v.id: v.parent for v in registry.versions()}
    ancestors: list[str] = []
    cursor = parents.get(version)
    while cursor is not None and cursor not in ancestors and cursor != version:
        ancestors.append(cursor)
        cursor = parents.get(cursor)
    children: dict[str, list[str]] = {}
    for child, parent in parents.items():
        if parent is not None:
            children.setdefault(parent, []).append(child)
    descendants: list[str] = []
    frontier = list(children.get(version, []))
    while frontier:
        child = frontier.pop(0)
        if child not in descendants and child != version:
            descendants.append(child)
            frontier.extend(children.get(child, []))
    return {"model": model, "version": version, "ancestors": ancestors, "descendants": descendants}


def compare(kernel: Kernel, model: str, a: str, b: str) -> dict[str, Any]:
    """Two versions side by side: metric deltas (b - a), the input-schema diff from a to
    b, size, estimator, library versions."""
    registry = kernel.registry(model)
    records = {}
    for version in (a, b):
        record = registry.get(version)
        if record is None:
            raise NotFound(f"model {model} has no version {version}")
        records[version] = record
    left, right = records[a], records[b]
    manifests = {v: kernel.manifest(model, v) for v in (a, b)}
    metrics = {}
    for name in sorted(set(left.metrics) | set(right.metrics)):
        va, vb = left.metrics.get(name), right.metrics.get(name)
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (va, vb))
        metrics[name] = {"a": va, "b": vb, "delta": (vb - va) if numeric else None}  # type: ignore[operator]
    before, after = manifest_signature(manifests[a]), manifest_signature(manifests[b])
    breaking, compatible = diff(before, after) if before is not None and after is not None else ([], [])
    return {
        "model": model,
        "a": a,
        "b": b,
        "metrics": metrics,
        "schema": {"breaking": breaking, "compatible": compatible},
        "size": {"a": left.size, "b": right.size, "delta": right.size - left.size},
        "estimator": {"a": manifests[a].estimator, "b": manifests[b].estimator},
        "sklearn_version": {"a": manifests[a].sklearn_version, "b": manifests[b].sklearn_version},
        "parent": {"a": left.parent, "b": right.parent},
    }


def parse_where(expressions: Iterable[str]) -> list[tuple[str, str, float]]:
    """``accuracy>0.9`` -> (metric, operator, number); InvalidInput naming a bad one."""
    parsed = []
    for expression in expressions:
        match = WHERE_RE.fullmatch(expression)
        if match is None:
            raise InvalidInput(f"cannot read the filter {expression!r}: expected METRIC OP NUMBER, e.g. accuracy>0.9")
        name, op, number = match.groups()
        try:
            parsed.append((name, op, float(number)))
        except ValueError as exc:
            raise InvalidInput(f"filter {expression!r}: {number!r} is not a number") from exc
    return parsed


def matches(record: reg.Version, where: list[tuple[str, str, float]], tags: Mapping[str, str]) -> bool:
    """True when every metric filter holds (a missing metric fails it) and every tag is equal."""
    for name, op, number in where:
        value = record.metrics.get(name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not OPERATORS[op](value, number):
            return False
    return all(record.tags.get(k) == v for k, v in tags.items())
