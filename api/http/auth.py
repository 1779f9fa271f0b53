"""The admin bearer token check (constant time), and the route guards built on it."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from modelswap.api.http.state import AppState, app_state
from modelswap.core.errors import AdminDisabled, Unauthorized


def require_admin(request: Request, token: str | None, off: str | None = None) -> None:
    """401 unless the request shows ``token``; 503 ``admin_disabled`` when the admin API is
    ``off`` (the reason), as no token a client sends could help."""
    if off is not None:
        raise AdminDisabled(off)
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if token is None:
        raise Unauthorized("admin endpoints are disabled: no admin token is configured")
    if scheme.lower() != "bearer" or not given:
        raise Unauthorized("missing admin token: send 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("wrong admin token")


def admin(request: Request) -> AppState:
    """The state, once the request has shown the admin token (401 otherwise)."""
    state = app_state(request)
    require_admin(request, state.token, state.admin_off)
    return state


def reader(request: Request) -> AppState:
    """The state for a read: open unless MODELSWAP_PROTECT_READS=1."""
    state = app_state(request)
    if state.settings.protect_reads:
        require_admin(request, state.token, state.admin_off)
    return state
