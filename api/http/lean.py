"""The inference routes' own thin ASGI layer in front of Starlette.

The five inference routes (native, pinned, ``/predict``, v2 infer, ``/invocations``) carry
the traffic; everything else is rare. For them, Starlette's router (a regex per route),
its two exception middlewares, the route wrappers, the HTTP metrics middleware, uvicorn's
proxy-headers middleware and the early-answer drain (draining.py) cost more than the
request's own work on a small model. ``LeanInference`` matches those paths with a split,
calls the very same handlers, turns errors into responses through the very same handler
table (errors.HANDLERS), counts ``modelswap_http_requests_total`` by the same route
template, and hands every other request, and every request it cannot finish exactly as
the full stack would, to the full stack (``fallback``).

It takes only what needs none of the outer layers: a POST whose body has a declared
length within MODELSWAP_MAX_BODY_BYTES and no chunked encoding. Such a body is read whole
before anything answers, so no answer comes early and nothing is left to drain; the
client address (what the proxy-headers layer rewrites) is not used by these routes. A
body over the limit, or one without a length, goes to the full stack, which answers 413
and drains as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from modelswap.api.http import mlflow, predict, v2
from modelswap.api.http.draining import framing
from modelswap.api.http.errors import HANDLERS
from modelswap.api.http.state import AppState
from modelswap.api.http.wire import respond

Handler = Callable[[Request], Awaitable[Response]]
Match = tuple[Handler, dict[str, str], str]

DEFAULT: Match = (predict.predict_default, {}, "/predict")
INVOCATIONS: Match = (mlflow.invocations, {}, "/invocations")


def match(path: str) -> Match | None:
    """The inference route ``path`` names, its path parameters and its template, or None.
    A parameter is one non-empty segment, as Starlette's ``{name}`` is."""
    if path == "/predict":
        return DEFAULT
    if path == "/invocations":
        return INVOCATIONS
    parts = path.split("/")
    if len(parts) == 5 and parts[0] == "" and parts[2] == "models" and parts[3]:
        if parts[1] == "v1" and parts[4] == "predict":
            return predict.predict, {"model": parts[3]}, "/v1/models/{model}/predict"
        if parts[1] == "v2" and parts[4] == "infer":
            return v2.infer, {"model": parts[3]}, "/v2/models/{model}/infer"
    elif len(parts) == 7 and parts[0] == "" and parts[2] == "models" and parts[3] and parts[4] == "versions":
        params = {"model": parts[3], "version": parts[5]}
        if not parts[5]:
            return None
        if parts[1] == "v1" and parts[6] == "predict":
            return predict.predict_pinned, params, "/v1/models/{model}/versions/{version}/predict"
        if parts[1] == "v2" and parts[6] == "infer":
            return v2.infer, params, "/v2/models/{model}/versions/{version}/infer"
    return None


def takes(scope: Scope, limit: int) -> bool:
    """A POST with a declared body length within ``limit`` and no chunked encoding."""
    if scope["method"] != "POST":
        return False
    body = framing(scope)
    return not body.chunked and body.declared is not None and body.declared <= limit


def handler_for(exc: Exception) -> Callable[[Request, Exception], Awaitable[Response]]:
    """The error handler Starlette would pick: the first of the exception's classes in the table."""
    for cls in type(exc).__mro__:
        found = HANDLERS.get(cls)
        if found is not None:
            return found
    return HANDLERS[Exception]


class LeanInference:
    """ASGI app: the inference routes here, everything else through ``fallback``
    (the Starlette app unless the server wraps it: ``ServerConfig.load``)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.fallback: ASGIApp = app
        state: AppState = app.state.modelswap
        self.limit = state.settings.max_body_bytes
        self.metrics = state.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = match(scope["path"])
            if found is not None and takes(scope, self.limit):
                await self.serve(found, scope, receive, send)
                return
        await self.fallback(scope, receive, send)

    async def serve(self, found: Match, scope: Scope, receive: Receive, send: Send) -> None:
        handler, params, template = found
        scope["path_params"] = params
        scope["app"] = self.app  # what Request.app (and so app_state) reads
        request = Request(scope, receive)
        status = 500
        try:
            try:
                response = await handler(request)
            except Exception as exc:  # the same table turns it into the same answer
                response = await handler_for(exc)(request, exc)
            status = response.status_code
            if not respond(send, status, response.raw_headers, response.body):
                await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
                await send({"type": "http.response.body", "body": response.body})
        finally:
            self.metrics.http(template, "POST", status)
