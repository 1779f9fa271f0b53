"""The admin token: from the settings, a mounted secret file, or generated into the store."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from modelswap.core.errors import InvalidInput
from modelswap.core.layout import ADMIN_TOKEN_FILE
from modelswap.core.settings import Settings

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


def ensure_token_file(root: Path) -> Path:
    """Generate ``<root>/.admin-token`` (mode 0600) unless it exists; return its path."""
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
