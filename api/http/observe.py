"""What every request leaves behind: its id, and modelswap_http_requests_total."""

from __future__ import annotations

from random import getrandbits

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelswap.api.http.monitor import valid_request_id
from modelswap.api.http.payload import header_value
from modelswap.core.metrics import Metrics


def request_id(request: Request) -> str:
    """The client's ``X-Request-Id`` when it is a sane one, else a new random id."""
    given = header_value(request, b"x-request-id")
    if given is not None and valid_request_id(given):
        return given
    # 128 random bits without a system call (os.urandom is one per request); the random
    # module reseeds itself in a forked child, so workers do not repeat each other's ids.
    return f"{getrandbits(128):032x}"


class HttpMetrics:
    """Pure ASGI middleware: count every answered request by its route *template*
    (``/v1/models/{model}/predict``, never the raw path), method and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.http(template, scope["method"], status)
