"""Who a request is, and whether its token may use the route.

Each route of the table (app.py) declares the role it needs with ``needs``; nothing else
decides. A route needing ``read`` asks for a token only with MODELSWAP_PROTECT_READS=1, one
needing ``predict`` only with MODELSWAP_PROTECT_PREDICT=1; the others always. A missing,
unknown or expired token is 401; a known token outside its role or its models is 403
naming the role needed; an address with too many failed attempts is 429 (limiter.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from modelswap.api.http.state import AppState, app_state
from modelswap.core.access.keyring import Identity
from modelswap.core.access.roles import PREDICT, RANK, READ, ROLLBACK
from modelswap.core.errors import (
    AdminDisabled,
    Forbidden,
    NotFound,
    TokenExpired,
    TokensUnreadable,
    TooManyAttempts,
    Unauthorized,
)
from modelswap.core.store.ids import validate_model_name

logger = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]
ModelFrom = Literal["path", "default"] | None
IDENTITY = "modelswap.identity"  # the scope key of the request's Identity, once authorized


def enforced(state: AppState, role: str) -> bool:
    if role == READ:
        return state.settings.protect_reads
    if role == PREDICT:
        return state.settings.protect_predict
    return True


def needs(role: str, endpoint: Endpoint, *, model: ModelFrom = "path", always: bool = False) -> Endpoint:
    """``endpoint`` behind the check that the request's token holds ``role`` for the model
    the request names (``model``: the ``{model}`` path parameter, the default model, or
    none: the endpoint checks what it finds with ``check_model``). ``always``: ask for a
    token even where ``role`` is open."""

    @wraps(endpoint)
    async def guarded(request: Request) -> Response:
        state = app_state(request)
        if not always and not enforced(state, role):
            return await endpoint(request)
        identity = authenticate(request, state)
        request.scope[IDENTITY] = identity
        allow(state, identity, role)
        if model == "path":
            check_model(request, validate_model_name(request.path_params["model"]), role)
        elif model == "default":
            check_model(request, state.inference.default_model(), role)
        response = await endpoint(request)
        if RANK[role] >= RANK[ROLLBACK]:
            logger.info(
                "%s %s -> %d by token:%s", request.method, request.url.path, response.status_code, identity.name
            )
        return response

    guarded.role = role  # type: ignore[attr-defined]
    guarded.always = always  # type: ignore[attr-defined]
    return guarded


def authenticate(request: Request, state: AppState) -> Identity:
    """The request's identity from its bearer token, or the error to answer.

    A right token always passes. A wrong or expired one from an address that failed too
    often lately gets 429 instead of 401 (limiter.py): many clients behind one proxy
    share an address, and one of them guessing must not lock the others out."""
    address = request.client.host if request.client else "unknown"
    failures = state.metrics.auth_failures
    if state.admin_off is not None and not state.keyring.configured:
        raise AdminDisabled(state.admin_off)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        failures.labels("missing").inc()
        raise Unauthorized("missing token: send 'Authorization: Bearer <token>'")
    if not state.keyring.configured:
        failures.labels("unknown").inc()
        raise Unauthorized("no token is configured on this server (MODELSWAP_TOKENS_FILE or MODELSWAP_ADMIN_TOKEN)")
    try:
        return state.keyring.identify(given)
    except Unauthorized as exc:
        try:
            state.limiter.check(address)
        except TooManyAttempts:
            failures.labels("blocked").inc()
            raise
        failures.labels("expired" if isinstance(exc, TokenExpired) else "unknown").inc()
        if state.limiter.failed(address):
            logger.warning(
                "%s failed to authenticate %d times within %.0f s: refused for %.0f s",
                address,
                state.limiter.limit,
                state.limiter.window,
                state.limiter.block,
            )
        raise
    except TokensUnreadable:
        failures.labels("unreadable").inc()
        raise


def allow(state: AppState, identity: Identity, role: str) -> None:
    if not identity.allows(role):
        state.metrics.auth_failures.labels("forbidden").inc()
        raise Forbidden(f"this needs the {role!r} role: token {identity.name!r} has {identity.role!r}", role)


def check_model(request: Request, model: str, role: str) -> None:
    """Forbidden unless the request's token (if it showed one) covers ``model``."""
    identity: Identity | None = request.scope.get(IDENTITY)
    if identity is not None and not identity.covers(model):
        app_state(request).metrics.auth_failures.labels("forbidden").inc()
        models = ", ".join(identity.models or ())
        raise Forbidden(
            f"this needs the {role!r} role on model {model!r}: token {identity.name!r} covers {models} only", role
        )


def hide_model(request: Request, model: str, missing: NotFound) -> None:
    """``missing`` (the answer for an id that names nothing) unless the request's token
    covers ``model``: a token learns nothing of the models it does not cover."""
    if not covers(request, model):
        app_state(request).metrics.auth_failures.labels("forbidden").inc()
        raise missing


def identity_of(request: Request) -> Identity | None:
    """The identity the request showed, where its route asked for one."""
    return request.scope.get(IDENTITY)


def allows(request: Request, role: str) -> bool:
    """Whether the request's token (if its route asked for one) holds ``role``."""
    identity = identity_of(request)
    return identity is None or identity.allows(role)


def covers(request: Request, model: str) -> bool:
    identity = identity_of(request)
    return identity is None or identity.covers(model)
