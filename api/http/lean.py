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
from operator import itemgetter
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
    ``{name}`` parameters, and a parameter is one non-empty segment, as Starlette's is.

    Templates of one length and the same literal positions form a group, looked up by the
    path's segments at those positions (one dict lookup per group, no loop over segments)."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self._exact: dict[str, Match] = {}
        Group = tuple[
            tuple[int, ...],
            tuple[tuple[int, str], ...],
            dict[tuple[str, ...], tuple[Handler, str]],
            Callable[[list[str]], tuple[str, ...]],
            Callable[[list[str]], tuple[str, ...]],
            tuple[str, ...],
        ]
        self._groups: dict[int, list[Group]] = {}
        for route in routes:
            if route.methods is None or "POST" not in route.methods:
                raise ValueError(f"{route.path}: the lean layer serves POST routes only")
            handler = cast(Handler, route.endpoint)
            parts = route.path.split("/")
            params = tuple((i, p[1:-1]) for i, p in enumerate(parts) if p.startswith("{") and p.endswith("}"))
            if not params:
                self._exact[route.path] = (handler, {}, route.path)
                continue
            literal = tuple(i for i in range(len(parts)) if i not in dict(params))
            groups = self._groups.setdefault(len(parts), [])
            group = next((g for g in groups if g[0] == literal and g[1] == params), None)
            if group is None:  # C-level getters: the lookup is on the hot path
                key = itemgetter(*literal) if len(literal) > 1 else lambda p, i=literal[0]: (p[i],)
                values = itemgetter(*(i for i, _ in params)) if len(params) > 1 else lambda p, i=params[0][0]: (p[i],)
                group = (literal, params, {}, key, values, tuple(name for _, name in params))
                groups.append(group)
            group[2][tuple(parts[i] for i in literal)] = (handler, route.path)

    def match(self, path: str) -> Match | None:
        """The route ``path`` names, its path parameters and its template, or None."""
        found = self._exact.get(path)
        if found is not None:
            return found
        parts = path.split("/")
        for _, _, table, key, values, names in self._groups.get(len(parts), ()):
            hit = table.get(key(parts))
            if hit is not None:
                given = values(parts)
                if all(given):  # a one- or two-item dict built as a literal: dict(zip()) costs 0.6 us
                    if len(names) == 1:
                        return hit[0], {names[0]: given[0]}, hit[1]
                    if len(names) == 2:
                        return hit[0], {names[0]: given[0], names[1]: given[1]}, hit[1]
                    return hit[0], dict(zip(names, given, strict=True)), hit[1]
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
        state: AppState = app.state.modelswap
        # Protected predictions need the client's address (failed tokens are counted by
        # address), which uvicorn's proxy-headers layer sets: they take the full stack.
        self.routes = RouteTable(routes if not state.settings.protect_predict else [])
        self.fallback: ASGIApp = app
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
