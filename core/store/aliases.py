"""Named aliases for versions (``staging``, ``champion``): set and moved under the lock,
recorded in history, and accepted wherever a version id is.

``aliases.json`` beside ``versions.json`` maps alias -> version id; it is replaced
atomically. MLflow's rules for names apply: not ``latest`` and not ``v<digits>``; the
names of live roles (``current``, ``canary``, ``previous``) are reserved too.
"""

from __future__ import annotations

import re

import orjson

from modelswap.core.errors import CorruptRegistry, InvalidName, NotFound, VersionNotFound
from modelswap.core.store import registry as reg
from modelswap.core.store.clock import default_actor, iso
from modelswap.core.store.fsio import atomic_write_json, read_regular
from modelswap.core.store.ids import is_version_id
from modelswap.core.store.kernel import Kernel
from modelswap.core.store.layout import ModelPaths

ALIAS_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
RESERVED = frozenset({"latest", "current", "canary", "previous", "live"})
ALIAS_SET, ALIAS_DELETE = "alias_set", "alias_delete"


def validate_alias(name: object) -> str:
    """``name`` if it may be an alias: lowercase letters, digits, ``_`` or ``-``, starting
    with a letter; not ``latest``, ``v<digits>`` or a live role's name."""
    if not isinstance(name, str) or not ALIAS_RE.fullmatch(name):
        raise InvalidName(
            f"invalid alias {name!r}: use 1-64 of a-z, 0-9, '_', '-', starting with a letter (e.g. champion)"
        )
    if name in RESERVED or re.fullmatch(r"v\d+", name):
        raise InvalidName(f"{name!r} cannot be an alias: 'latest', 'v<number>' and live roles are reserved")
    return name


def read_aliases(paths: ModelPaths) -> dict[str, str]:
    """alias -> version id; empty when no alias was ever set."""
    try:
        data = orjson.loads(read_regular(paths.aliases))
    except FileNotFoundError:
        return {}
    except orjson.JSONDecodeError as exc:
        raise CorruptRegistry(f"{paths.aliases} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) and is_version_id(v) for v in data.values()):
        raise CorruptRegistry(f"{paths.aliases} must map alias names to version ids")
    return dict(data)


def validate_ref(value: object) -> str:
    """``value`` if it is a version id or a valid alias (how requests name a version)."""
    if isinstance(value, str) and is_version_id(value):
        return value
    try:
        return validate_alias(value)
    except InvalidName:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise InvalidName(
            f"invalid version id or alias {shown}: expected YYYYMMDD-HHMMSS-xxxxxx or an alias such as champion"
        ) from None


def resolve(kernel: Kernel, model: str, ref: str) -> str:
    """The version id ``ref`` names: a version id as it is, or an alias's version."""
    if is_version_id(validate_ref(ref)):
        return ref
    version = read_aliases(kernel.existing(model)).get(ref)
    if version is None:
        raise VersionNotFound(f"model {model} has no version or alias {ref!r}")
    return version


def set_alias(kernel: Kernel, model: str, alias: str, version: str, *, actor: str | None = None) -> dict[str, str]:
    """Point ``alias`` at ``version`` (a published one), recording the move in history."""
    validate_alias(alias)
    paths = kernel.existing(model)
    target = resolve(kernel, model, version)
    with kernel.locked(model):
        registry = kernel.load_registry(paths)
        kernel.require_published(registry, paths, target)
        aliases = read_aliases(paths)
        before = aliases.get(alias)
        if before == target:
            return aliases  # already there: nothing to change or record
        aliases[alias] = target
        entry = reg.HistoryEntry(
            iso(kernel.clock()), ALIAS_SET, actor or default_actor(), before, target, "", {"alias": alias}
        )
        kernel.commit(paths, registry, entry, lambda: atomic_write_json(paths.aliases, dict(sorted(aliases.items()))))
    return aliases


def delete_alias(kernel: Kernel, model: str, alias: str, *, actor: str | None = None) -> dict[str, str]:
    validate_alias(alias)
    paths = kernel.existing(model)
    with kernel.locked(model):
        aliases = read_aliases(paths)
        if alias not in aliases:
            raise NotFound(f"model {model} has no alias {alias!r}")
        before = aliases.pop(alias)
        entry = reg.HistoryEntry(
            iso(kernel.clock()), ALIAS_DELETE, actor or default_actor(), before, None, "", {"alias": alias}
        )
        remaining = dict(sorted(aliases.items()))
        kernel.commit(paths, kernel.load_registry(paths), entry, lambda: atomic_write_json(paths.aliases, remaining))
    return aliases


def aliases_of(aliases: dict[str, str], version: str) -> list[str]:
    return sorted(a for a, v in aliases.items() if v == version)
