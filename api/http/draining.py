"""A bounded drain before an early response closes the connection.

An application may answer before reading the whole request body (413 on a
Content-Length over the limit, 401 before an upload, 404). The connection then cannot
carry another request, so ``guard_bodies`` makes the response say ``Connection: close``.
But closing a socket with unread data makes the kernel send a reset, and a client that
sends its whole body before reading (Python's urllib, ``modelswap.Client``) then fails
on a broken send and never sees the response. So the response is sent at once (clients
that read while sending, like curl and requests, see it immediately) and the connection
stays open just long enough to read and discard the rest of the body: a body of at most
``DRAIN_FACTOR`` times the limit that applies (``MODELSWAP_MAX_UPLOAD_BYTES`` for
multipart uploads, ``MODELSWAP_MAX_BODY_BYTES`` otherwise) or ``DRAIN_FLOOR``, whichever
is larger, for at most ``DRAIN_SECONDS``; a client that stops sending meanwhile is
closed by the body timeout (``GuardedProtocol``). A body declared larger than the bound
is not drained: that client gets the reset, which is the point of the bound. This is
Apache's and nginx's "lingering close", done where the request's length is known.

``ServerConfig.load`` wraps the whole application (outside uvicorn's own middleware), so
every response is covered, whichever layer sends it.
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DRAIN_FACTOR = 4
DRAIN_FLOOR = 64 * 1024 * 1024  # reading a few MiB costs nothing, whatever the limit
DRAIN_SECONDS = 30.0


def guard_bodies(app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int) -> ASGIApp:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        exchange = _Exchange(scope, receive, send)
        if exchange.complete:  # no body: nothing can be left unread
            await app(scope, receive, send)
            return
        limit = max_upload_bytes if exchange.multipart else max_body_bytes
        exchange.drain_bound = max(DRAIN_FLOOR, DRAIN_FACTOR * limit)
        await app(scope, exchange.receive, exchange.send)

    return guarded


class Framing(NamedTuple):
    """What a request's headers say about its body."""

    declared: int | None  # Content-Length, when it is a number
    chunked: bool
    expect_continue: bool
    multipart: bool


def framing(scope: Scope) -> Framing:
    declared: int | None = None
    chunked = expect_continue = multipart = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            declared = int(value) if value.isdigit() else None
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"expect":
            expect_continue = value.lower() == b"100-continue"
        elif name == b"content-type":
            multipart = value.lower().startswith(b"multipart/")
    return Framing(declared, chunked, expect_continue, multipart)


class _Exchange:
    """One request with a body: the body as the application reads it, and the response."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.declared, chunked, self.expect_continue, self.multipart = framing(scope)
        self.complete = not chunked and not self.declared
        self.drain_bound = 0
        self.received = 0
        self.asked = False  # the application called receive (so uvicorn sent any 100 Continue)
        self.linger = False

    async def receive(self) -> Message:
        self.asked = True
        message = await self._receive()
        if not self.complete:
            self.received += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body", False):
                self.complete = True
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start" and not self.complete:
            # An answer before the whole body arrived: the connection cannot be reused.
            headers = list(message.get("headers", []))
            if not any(n.lower() == b"connection" and b"close" in v.lower() for n, v in headers):
                headers.append((b"connection", b"close"))
            message = {**message, "headers": headers}
            # A client waiting for "100 Continue" sends nothing more; it will not get one now.
            waiting = self.expect_continue and not self.asked
            self.linger = not waiting and (self.declared is None or self.declared <= self.drain_bound)
        elif message["type"] == "http.response.body" and self.linger and not message.get("more_body", False):
            self.linger = False
            await self._send({**message, "more_body": True})  # the client has the whole response now
            await self._drain()
            message = {"type": "http.response.body", "body": b"", "more_body": False}  # uvicorn closes
        await self._send(message)

    async def _drain(self) -> None:
        try:
            await asyncio.wait_for(self._discard(), DRAIN_SECONDS)
        except asyncio.TimeoutError:
            pass  # uvicorn closes the connection with the rest unread

    async def _discard(self) -> None:
        while not self.complete and self.received <= self.drain_bound:
            await self.receive()
