"""The inference routes' own thin ASGI layer in front of Starlette.

The inference routes (native, pinned, ``/predict``, v2 infer, ``/invocations``: the app's
``INFERENCE_ROUTES``, the same Route objects its router holds) carry the traffic;
everything else is rare. For them, Starlette's router (a regex per route),
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

from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from modelswap.api.http.draining import framing
from modelswap.api.http.errors import HANDLERS
from modelswap.api.http.state import AppState
from modelswap.api.http.wire import respond

Handler = Callable[[Request], Awaitable[Response]]
Match = tuple[Handler, dict[str, str], str]


class RouteTable:
    """POST routes matched by splitting the path: each template's segments are literals or
    ``{name}`` parameters, and a parameter is one non-empty segment, as Starlette's is."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self._exact: dict[str, Match] = {}
        self._by_length: dict[int, list[tuple[list[str], list[tuple[int, str]], Handler, str]]] = {}
        for route in routes:
            if route.methods is None or "POST" not in route.methods:
                raise ValueError(f"{route.path}: the lean layer serves POST routes only")
            handler = cast(Handler, route.endpoint)
            parts = route.path.split("/")
            params = [(i, part[1:-1]) for i, part in enumerate(parts) if part.startswith("{") and part.endswith("}")]
            if not params:
                self._exact[route.path] = (handler, {}, route.path)
            else:
                self._by_length.setdefault(len(parts), []).append((parts, params, handler, route.path))

    def match(self, path: str) -> Match | None:
        """The route ``path`` names, its path parameters and its template, or None."""
        found = self._exact.get(path)
        if found is not None:
            return found
        parts = path.split("/")
        for template, params, handler, name in self._by_length.get(len(parts), ()):
            for i, part in enumerate(template):
                if parts[i] != part and not (part[:1] == "{" and parts[i]):
                    break
            else:
                return handler, {param: parts[i] for i, param in params}, name
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

    def __init__(self, app: Starlette, routes: Sequence[Route]) -> None:
        self.app = app
        self.routes = RouteTable(routes)
        self.fallback: ASGIApp = app
        state: AppState = app.state.modelswap
        self.limit = state.settings.max_body_bytes
        self.metrics = state.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = self.routes.match(scope["path"])
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
