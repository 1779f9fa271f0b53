"""Time and identity for history entries: UTC timestamps and the acting user."""

from __future__ import annotations

import os
from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """A time as :func:`iso` writes it (or any ISO 8601 one), UTC unless it says; ValueError
    for text that is not one."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def default_actor() -> str:
    """``cli:<user>``: who ran a command, for the history's actor column."""
    import pwd

    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = os.environ.get("USER") or str(os.getuid())
    return f"cli:{user}"
