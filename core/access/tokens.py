"""The tokens file: named tokens, each with a role, optional models and an expiry, kept as
the sha256 of the token, never the token itself.

A token is ``msw_`` and 32 random bytes (``secrets.token_urlsafe``): 256 bits no one can
guess or look up, so one round of sha256 is enough to keep a leaked file from being used.
A slow hash (bcrypt, scrypt) protects passwords people choose, which are guessable; for a
random token it would only cost every request milliseconds.

The file is JSON, the same on a store volume or mounted from a Kubernetes Secret::

    {"tokens": [{"name": "oncall-alice", "sha256": "<64 hex>", "roles": ["rollback"],
                 "models": ["churn*"], "expires": "2027-03-06T09:00:00.000Z",
                 "created": "2026-12-06T09:00:00.000Z"}]}

``models`` are names or shell globs (``churn*``); without it the token covers every
model. ``roles`` lists roles; as each role includes the ones before it (roles.py), the
token holds the highest. Editing goes through ``create`` and ``revoke``: under a lock
beside the file, replaced whole (temp file and rename), so a serving process reading it
sees the old file or the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from filelock import FileLock

from modelswap.core.access.roles import highest, role_name
from modelswap.core.errors import Conflict, InvalidInput, NotFound, TokensUnreadable
from modelswap.core.store.clock import iso, parse_iso, utcnow
from modelswap.core.store.fsio import fsync_dir, tmp_name_beside

TOKEN_PREFIX = "msw_"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MODEL_GLOB = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]{1,128}$")
DURATION = re.compile(r"^(\d{1,6})([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
ENTRY_FIELDS = frozenset({"name", "sha256", "roles", "models", "expires", "created"})


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


RESERVED_NAMES = frozenset({"admin"})  # the admin token's name in history and logs


def token_name(value: object) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise InvalidInput(
            f"bad token name {value!r}: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if value in RESERVED_NAMES:
        raise InvalidInput(f"the token name {value!r} is the admin token's (MODELSWAP_ADMIN_TOKEN): pick another")
    return value


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """``90d``, ``12h``, ``30m``, ``2w`` from ``now``, or an ISO date or time (UTC unless it says)."""
    now = now or utcnow()
    match = DURATION.match(text.strip())
    if match:
        amount, unit = match.groups()
        try:
            return now + timedelta(**{UNITS[unit]: int(amount)})
        except OverflowError:
            raise InvalidInput(f"bad expiry {text!r}: too far ahead") from None
    return parse_time(text)


def parse_time(text: str) -> datetime:
    """An ISO date or time, UTC unless it says."""
    try:
        return parse_iso(text)
    except ValueError:
        raise InvalidInput(f"bad expiry {text!r}: a duration (90d, 12h, 30m, 2w) or an ISO date (2027-03-01)") from None


@dataclass(frozen=True)
class Grant:
    """What a token may do: its role, on which models, until when."""

    name: str
    role: str
    models: tuple[str, ...] | None = None  # None: every model
    expires: datetime | None = None

    def covers(self, model: str) -> bool:
        return self.models is None or any(fnmatchcase(model, pattern) for pattern in self.models)

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires

    def describe(self) -> dict[str, Any]:
        """What anyone holding the token may see of it (no hash)."""
        return {
            "name": self.name,
            "role": self.role,
            "models": list(self.models) if self.models is not None else None,
            "expires": iso(self.expires) if self.expires is not None else None,
        }


@dataclass(frozen=True)
class TokenEntry(Grant):
    """One entry of the file: a grant, the token's sha256, when it was made."""

    sha256: str = ""
    created: str | None = None

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "sha256": self.sha256, "roles": [self.role]}
        if self.models is not None:
            entry["models"] = list(self.models)
        if self.expires is not None:
            entry["expires"] = iso(self.expires)
        if self.created is not None:
            entry["created"] = self.created
        return entry

    @classmethod
    def from_dict(cls, raw: Any) -> TokenEntry:
        if not isinstance(raw, dict):
            raise InvalidInput("each entry of 'tokens' must be an object")
        unknown = set(raw) - ENTRY_FIELDS
        if unknown:
            raise InvalidInput(f"unknown field(s) {', '.join(sorted(unknown))} in token entry {raw.get('name')!r}")
        name = token_name(raw.get("name"))
        digest = raw.get("sha256")
        if not isinstance(digest, str) or not SHA256.match(digest):
            raise InvalidInput(f"token {name!r}: 'sha256' must be 64 lowercase hex digits (the token's sha256)")
        roles = raw.get("roles")
        if not isinstance(roles, list):
            raise InvalidInput(f"token {name!r}: 'roles' must be a list, e.g. [\"rollback\"]")
        models = raw.get("models")
        if models is not None:
            models = tuple(model_patterns(models, name))
        expires = raw.get("expires")
        if expires is not None and not isinstance(expires, str):
            raise InvalidInput(f"token {name!r}: 'expires' must be an ISO time")
        created = raw.get("created")
        return cls(
            name=name,
            sha256=digest,
            role=highest(roles),
            models=models,
            expires=parse_time(expires) if expires is not None else None,  # a time, never "90d" from now
            created=created if isinstance(created, str) else None,
        )


def model_patterns(models: Any, name: str = "") -> list[str]:
    if (
        not isinstance(models, list)
        or not models
        or not all(isinstance(m, str) and MODEL_GLOB.match(m) for m in models)
    ):
        raise InvalidInput(
            f"token {name!r}: 'models' must be a non-empty list of model names or globs (churn, churn*, fraud-?)"
        )
    return list(models)


def parse(data: bytes, path: Path) -> list[TokenEntry]:
    """The entries of a tokens file's bytes; TokensUnreadable naming the file and the fault."""
    try:
        document = json.loads(data) if data.strip() else {"tokens": []}
        if not isinstance(document, dict) or not isinstance(document.get("tokens"), list):
            raise InvalidInput('the file must be a JSON object {"tokens": [...]}')
        entries = [TokenEntry.from_dict(raw) for raw in document["tokens"]]
        seen: set[str] = set()
        for entry in entries:
            for key in (entry.name, entry.sha256):
                if key in seen:
                    raise InvalidInput(f"token {entry.name!r} appears twice (by name or by hash)")
                seen.add(key)
    except (ValueError, InvalidInput) as exc:
        raise TokensUnreadable(f"the tokens file {path} is not valid: {exc}") from None
    return entries


def read_entries(path: Path) -> list[TokenEntry]:
    """The file's entries; none when it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise TokensUnreadable(f"cannot read the tokens file {path}: {exc.strerror}") from None
    return parse(data, path)


def create(
    path: Path,
    name: str,
    role: str,
    *,
    models: Iterable[str] | None = None,
    expires: datetime | None = None,
) -> tuple[str, TokenEntry]:
    """Add a token named ``name``; return the token (shown once, stored nowhere) and its entry."""
    token = new_token()
    entry = TokenEntry(
        name=token_name(name),
        sha256=hash_token(token),
        role=role_name(role),
        models=tuple(model_patterns(list(models), name)) if models is not None else None,
        expires=expires,
        created=iso(utcnow()),
    )
    with _locked(path):
        entries = read_entries(path)
        if any(e.name == entry.name for e in entries):
            raise Conflict(f"a token named {name!r} exists: revoke it first, or pick another name")
        _write(path, [*entries, entry])
    return token, entry


def revoke(path: Path, name: str) -> TokenEntry:
    """Remove the token named ``name``; NotFound when there is none."""
    with _locked(path):
        entries = read_entries(path)
        gone = [e for e in entries if e.name == name]
        if not gone:
            raise NotFound(f"no token named {name!r} in {path}")
        _write(path, [e for e in entries if e.name != name])
    return gone[0]


def _locked(path: Path) -> FileLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path.with_name(path.name + ".lock")), timeout=10)


def _write(path: Path, entries: list[TokenEntry]) -> None:
    """Replace the file whole (mode 0600): readers see the old file or the new one."""
    data = (json.dumps({"tokens": [e.to_dict() for e in entries]}, indent=2) + "\n").encode()
    tmp = tmp_name_beside(path)
    try:
        old = os.stat(path)
    except FileNotFoundError:
        old = None
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            if old is not None:  # the serving processes' user must still read it
                os.fchmod(handle.fileno(), old.st_mode & 0o777)
                if (old.st_uid, old.st_gid) != (os.getuid(), os.getgid()):
                    os.fchown(handle.fileno(), old.st_uid, old.st_gid)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
