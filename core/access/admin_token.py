"""The one admin token kept from before named tokens: from the settings, a mounted secret
file, or generated into the store; with none of them (and no tokens file) on a read-only
store, the admin API is off (``admin_off``)."""

from __future__ import annotations

import errno
import logging
import os
import secrets
from pathlib import Path

from modelswap.core.errors import InvalidInput
from modelswap.core.settings import Settings
from modelswap.core.store.layout import ADMIN_TOKEN_FILE

logger = logging.getLogger(__name__)


def configured_token(settings: Settings) -> str | None:
    """MODELSWAP_ADMIN_TOKEN, else the contents of MODELSWAP_ADMIN_TOKEN_FILE, else None."""
    if settings.admin_token:
        return settings.admin_token
    if settings.admin_token_file is not None:
        try:
            token = settings.admin_token_file.read_text().strip()
        except OSError as exc:
            raise InvalidInput(
                f"cannot read MODELSWAP_ADMIN_TOKEN_FILE {settings.admin_token_file}: {exc.strerror}"
            ) from exc
        if not token:
            raise InvalidInput(f"MODELSWAP_ADMIN_TOKEN_FILE {settings.admin_token_file} is empty")
        return token
    return None


def client_token(settings: Settings) -> str | None:
    """The token a client (the CLI's --url mode) sends: MODELSWAP_TOKEN, else the admin token."""
    return settings.client_token or configured_token(settings)


# what creating the token file fails with on a store this process may only read
READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
ADMIN_OFF = (
    "the admin API is off: no admin token is configured and the store is read-only, so none could be generated; "
    "set MODELSWAP_ADMIN_TOKEN or MODELSWAP_ADMIN_TOKEN_FILE and restart the server"
)


def admin_off(settings: Settings, token: str | None) -> str | None:
    """Why the admin API is off in a serving process whose token is ``token``, or None.

    It is off when no token is configured and ``serve`` could not generate
    ``<root>/.admin-token`` because the store is read-only (or not writable by this
    process). A process with no token on a writable store is merely unconfigured (401)."""
    root = settings.root
    if token is not None or (root / ADMIN_TOKEN_FILE).exists() or not root.is_dir():
        return None
    if settings.tokens_file is not None or settings.tokens_path.exists():
        return None  # named tokens authenticate
    return None if os.access(root, os.W_OK) else ADMIN_OFF


def ensure_token_file(root: Path) -> Path:
    """Generate ``<root>/.admin-token`` (mode 0600) unless it exists; return its path.
    OSError when the store cannot take it (``READ_ONLY`` errnos on a read-only store)."""
    path = root / ADMIN_TOKEN_FILE
    root.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    logger.warning("generated an admin token in %s (mode 0600)", path)
    return path
