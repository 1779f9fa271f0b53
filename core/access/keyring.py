"""What one serving process knows of tokens: the tokens file, re-read when it changes (looked
at once per poll interval, on the first authentication after it), and the one admin token
kept from before named tokens (named ``admin``, role ``admin``, every model).

A revoked token thus stops working in every process within the poll interval, without a
restart: each process compares the file's identity (inode, size, mtime) with what it last
read. A Kubernetes Secret mounted as a volume is replaced by a symlink swap, which changes
the inode the path leads to. A file that cannot be read or parsed refuses every token it
held (``TokensUnreadable``) until it is fixed; the admin token keeps working.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from modelswap.core.access.roles import ADMIN, includes
from modelswap.core.access.tokens import Grant, TokenEntry, hash_token, parse
from modelswap.core.errors import TokenExpired, TokensUnreadable, Unauthorized
from modelswap.core.store.clock import iso, utcnow

logger = logging.getLogger(__name__)

USE_EVERY_S = 60.0  # a token's last use is written at most this often per process


@dataclass(frozen=True)
class Identity(Grant):
    """Who a request's token says it is, and what it may do."""

    @classmethod
    def of(cls, entry: TokenEntry) -> Identity:
        return cls(entry.name, entry.role, entry.models, entry.expires)

    @property
    def actor(self) -> str:
        """The history's actor for what this token does."""
        return f"token:{self.name}"

    def allows(self, role: str) -> bool:
        return includes(self.role, role)


ADMIN_IDENTITY = Identity("admin", ADMIN)


class Keyring:
    def __init__(
        self,
        *,
        admin_token: str | None,
        tokens_file: Path | None,
        use_dir: Path | None = None,
        recheck_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._admin = hash_token(admin_token) if admin_token else None
        self.tokens_file = tokens_file
        self._use_dir = use_dir
        self._recheck_s = recheck_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, TokenEntry] = {}
        self._error: TokensUnreadable | None = None  # what a request is told
        self._why: TokensUnreadable | None = None  # what the log and the startup say
        self._seen: tuple[int, ...] | None = None
        self._checked = clock()
        self._used: dict[str, float] = {}
        self._reload()
        if self._why is not None:
            raise self._why  # at startup: the server does not start on a broken file

    @property
    def configured(self) -> bool:
        """Whether any token could authenticate: the admin token, or a tokens file that
        exists (looked at again once per ``recheck_s``: it may have appeared since)."""
        self.refresh()
        return self._admin is not None or self._seen is not None or self._error is not None

    def identify(self, token: str, now: datetime | None = None) -> Identity:
        """The identity ``token`` names: Unauthorized when unknown or expired,
        TokensUnreadable when it may be in a tokens file that cannot be read now."""
        digest = hash_token(token)
        if self._admin is not None and hmac.compare_digest(digest, self._admin):
            return ADMIN_IDENTITY
        self.refresh()
        entry = self._entries.get(digest)
        if entry is None:
            if self._error is not None:
                raise self._error
            raise Unauthorized("wrong token: this server knows no such token")
        now = now or utcnow()
        if entry.expired(now):
            assert entry.expires is not None
            raise TokenExpired(f"token {entry.name!r} expired at {iso(entry.expires)}")
        self._note_use(entry.name)
        return Identity.of(entry)

    def refresh(self, *, force: bool = False) -> None:
        """Re-read the tokens file if it changed; looks at it once per ``recheck_s``."""
        if self.tokens_file is None:
            return
        now = self._clock()
        if not force and now - self._checked < self._recheck_s:
            return
        with self._lock:
            self._checked = now
            self._reload()

    def _reload(self) -> None:
        path = self.tokens_file
        if path is None:
            return
        try:
            st = os.stat(path)
            seen: tuple[int, ...] | None = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except FileNotFoundError:
            seen = None
        except OSError as exc:
            self._fail(TokensUnreadable(f"cannot read the tokens file {path}: {exc.strerror}"))
            return
        if seen == self._seen and self._error is None:
            return
        if seen is not None:
            try:
                entries = parse(path.read_bytes(), path)
            except FileNotFoundError:
                seen = None  # gone between the stat and the read
            except OSError as exc:
                self._fail(TokensUnreadable(f"cannot read the tokens file {path}: {exc.strerror}"))
                return
            except TokensUnreadable as exc:
                self._fail(exc)
                return
        if seen is None:
            if self._entries:
                logger.warning("the tokens file %s is gone: its tokens are refused", path)
            self._entries, self._error, self._why, self._seen = {}, None, None, None
            return
        before = {e.name for e in self._entries.values()}
        self._entries = {e.sha256: e for e in entries}
        self._error, self._why, self._seen = None, None, seen
        after = {e.name for e in entries}
        logger.info(
            "tokens file %s read: %d token(s)%s%s",
            path,
            len(entries),
            f"; new: {', '.join(sorted(after - before))}" if after - before else "",
            f"; removed: {', '.join(sorted(before - after))}" if before - after else "",
        )

    def _fail(self, error: TokensUnreadable) -> None:
        """Refuse the file's tokens. The fault (its path, maybe token names) goes to the log,
        once; a client is told only that the file is unreadable."""
        if self._why is None or self._why.message != error.message:
            logger.error("%s; its tokens are refused until it is fixed", error.message)
        self._why = error
        self._error = TokensUnreadable(
            "the tokens file cannot be read or is not valid: its tokens are refused until it is fixed "
            "(the server log says why)"
        )
        self._entries, self._seen = {}, None

    def _note_use(self, name: str) -> None:
        """Touch ``<use_dir>/<name>`` at most once a minute: ``token list`` shows its mtime."""
        if self._use_dir is None:
            return
        now = self._clock()
        if now - self._used.get(name, -USE_EVERY_S) < USE_EVERY_S:
            return
        self._used[name] = now
        try:
            self._use_dir.mkdir(exist_ok=True)
            (self._use_dir / name).touch()  # touch sets the mtime of a file that exists too
        except OSError:
            pass  # a store this process may only read: last use is not recorded


def last_uses(use_dir: Path) -> dict[str, datetime]:
    """Each token name's last use, as recorded by serving processes in ``use_dir``."""
    uses: dict[str, datetime] = {}
    try:
        for entry in os.scandir(use_dir):
            if entry.is_file(follow_symlinks=False):
                uses[entry.name] = datetime.fromtimestamp(entry.stat().st_mtime, timezone.utc)
    except OSError:
        pass
    return uses
