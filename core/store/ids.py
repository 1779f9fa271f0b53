"""Model names and version ids: validation and generation (pure functions)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import datetime, timezone

from modelswap.core.errors import InvalidName

MODEL_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
VERSION_ID_RE = re.compile(r"(\d{8})-(\d{6})-([0-9a-f]{6})")


def validate_model_name(name: object) -> str:
    """Return ``name`` if it is a valid model name, else raise InvalidName.

    Names are ``[a-z0-9][a-z0-9._-]{0,63}``; ``.`` and ``..`` cannot match
    because the first character must be alphanumeric, and no separator can.
    """
    if not isinstance(name, str) or not MODEL_NAME_RE.fullmatch(name):
        raise InvalidName(
            f"invalid model name {_show(name)}: use 1-64 characters of a-z, 0-9, '.', '_', '-', "
            "starting with a letter or digit"
        )
    return name


def validate_version_id(version: object) -> str:
    """Return ``version`` if it has the shape ``YYYYMMDD-HHMMSS-xxxxxx`` and a real date."""
    if not isinstance(version, str):
        raise InvalidName(f"invalid version id {_show(version)}: expected YYYYMMDD-HHMMSS-xxxxxx")
    match = VERSION_ID_RE.fullmatch(version)
    if match is None:
        raise InvalidName(f"invalid version id {_show(version)}: expected YYYYMMDD-HHMMSS-xxxxxx")
    try:
        datetime.strptime(match.group(1) + match.group(2), "%Y%m%d%H%M%S")
    except ValueError as exc:
        raise InvalidName(f"invalid version id {_show(version)}: not a real date and time") from exc
    return version


def has_version_id_shape(name: object) -> bool:
    """The cheap check (shape only, no calendar): for ids read back from the store's own
    index, which were fully validated when they were published."""
    return isinstance(name, str) and VERSION_ID_RE.fullmatch(name) is not None


def is_version_id(name: str) -> bool:
    """True when ``name`` is a well-formed version id (used to skip foreign entries)."""
    try:
        validate_version_id(name)
    except InvalidName:
        return False
    return True


def new_version_id(now: datetime, rand: Callable[[int], str] = secrets.token_hex) -> str:
    """A fresh version id for a version published at ``now`` (converted to UTC)."""
    stamp = now.astimezone(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{rand(3)}"


def version_time(version: str) -> datetime:
    """The UTC publishing time encoded in a version id."""
    return datetime.strptime(version[:15], "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
