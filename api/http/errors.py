"""Error type -> HTTP status, in one table; every error body is
``{"error": {"code", "message"}}`` and no traceback ever reaches a client."""

from __future__ import annotations

import logging

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, Route

from modelswap.core import errors as e

logger = logging.getLogger(__name__)

# Most specific first: the first matching type decides.
STATUS: tuple[tuple[type[e.ModelswapError], int], ...] = (
    (e.PayloadTooLarge, 413),
    (e.UnsupportedFormat, 415),
    (e.InvalidInput, 400),
    (e.Unauthorized, 401),
    (e.Forbidden, 403),
    (e.TooManyAttempts, 429),
    (e.TokensUnreadable, 503),
    (e.AdminDisabled, 503),
    (e.NotFound, 404),
    (e.Conflict, 409),
    (e.ValidationFailed, 422),
    (e.InsufficientMemory, 507),
    (e.StorageFull, 507),
    (e.StoreReadOnly, 503),
    (e.StoreNotWritable, 503),
    (e.StoreNotReadable, 503),
    (e.CorruptRegistry, 500),
    (e.StoreBusy, 503),
    (e.NotReady, 503),
    (e.PredictTimeout, 504),
    (e.PredictionFailed, 500),
)

HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def status_for(exc: e.ModelswapError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


# MLflow's error codes by status, for /invocations. Every protocol's errors take their
# shape here (protocol_error), whichever layer raised them: the route, its role check,
# the payload limits.
MLFLOW_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    413: "BAD_REQUEST",
    429: "RESOURCE_EXHAUSTED",
    503: "SERVICE_UNAVAILABLE",
}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def protocol_error(path: str, status: int, code: str, message: str, headers: dict[str, str] | None) -> Response:
    """An error in the shape of the protocol ``path`` belongs to: v2's ``{"error": message}``,
    MLflow's ``{"error_code", "message"}`` on /invocations, the native one elsewhere."""
    if path == "/v2" or path.startswith("/v2/"):
        body = orjson.dumps({"error": message})
    elif path == "/invocations":
        body = orjson.dumps({"error_code": MLFLOW_CODES.get(status, "INTERNAL_ERROR"), "message": message})
    else:
        return error_response(status, code, message, headers)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def modelswap_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, e.ModelswapError)
    status = status_for(exc)
    if status >= 500 and not isinstance(exc, e.TokensUnreadable):  # the keyring logged it once
        logger.error("%s %s -> %d %s: %s", request.method, request.url.path, status, exc.code, exc.message)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, e.TooManyAttempts):
        headers = {"Retry-After": str(exc.retry_after)}
    return protocol_error(request.url.path, status, exc.code, exc.message, headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
    return error_response(exc.status_code, code, str(exc.detail), headers or None)


def allowed_methods(request: Request) -> str:
    """Every method the request's path takes. A resource served by several routes (one
    per method) would otherwise answer 405 with the first route's methods alone."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


async def os_error(request: Request, exc: Exception) -> Response:
    """A filesystem failure outside the operations layer (a read view, mostly): same
    mapping, except that a refused read is ``store_not_readable``, not ``store_not_writable``."""
    assert isinstance(exc, OSError)
    logger.error("%s %s: %s", request.method, request.url.path, exc)
    return await modelswap_error(request, e.storage_error(exc, reading=only_reads(request)))


def only_reads(request: Request) -> bool:
    """Whether the request only reads the store: a GET or HEAD, or a prediction in any
    protocol (``.../predict``, ``.../infer``, ``/invocations``). The verbs that write go
    through the operations layer, which maps their failures itself; the few writes that
    do not (monitor config, feedback) are a PUT or POST on other paths."""
    if request.method in ("GET", "HEAD"):
        return True
    path: str = request.scope["path"]
    return path == "/invocations" or path.endswith(("/predict", "/infer"))


async def client_disconnected(request: Request, exc: Exception) -> Response:
    """The client left, or was cut off by MODELSWAP_BODY_TIMEOUT (the server already
    answered 408), before its whole body arrived: no one reads this answer."""
    logger.info("%s %s: the client went away before sending its whole body", request.method, request.url.path)
    return error_response(400, "client_disconnected", "the client went away before sending its whole body")


async def unexpected_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal error; the server log has the details")


HANDLERS = {
    e.ModelswapError: modelswap_error,
    HTTPException: http_error,
    OSError: os_error,
    ClientDisconnect: client_disconnected,
    Exception: unexpected_error,
}
