"""Connections for ``modelswap serve``: deadlines for slow clients and a connection
limit per worker, on top of uvicorn's httptools protocol.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``, which
``MODELSWAP_KEEPALIVE_TIMEOUT`` sets) and that is all: a client that connects and sends
nothing, sends a header byte every few seconds (slowloris), or declares a body and stops
sending it, held its connection, its file descriptor and (for a body) its request task
forever. ``GuardedProtocol`` is a small subclass passed as ``uvicorn.Config(http=...)``;
uvicorn's parser, flow control, keep-alive and response writing are untouched. It adds:

- A header deadline (``MODELSWAP_HEADER_TIMEOUT``), from the connection (first request)
  or from the first byte of a request (later ones); more bytes do not move it.
- A body deadline (``MODELSWAP_BODY_TIMEOUT``) between two reads of the body, like
  nginx's ``client_body_timeout``: a large upload over a slow link is fine as long as it
  keeps arriving. Time when uvicorn has paused reading (the application is not reading
  yet) or owes the client a ``100 Continue`` does not count.
- When either passes, a client that sent part of a request gets ``408 request_timeout``
  with the JSON error body and ``Connection: close``; one that sent nothing is closed
  without a word (an unsolicited 408 would be read, by a client that pre-opened the
  connection, as the answer to its next request).
- A connection limit (``MODELSWAP_MAX_CONNECTIONS`` per worker). uvicorn's
  ``limit_concurrency`` is no help: it looks at a connection only once its headers have
  arrived (so half-open connections are never refused), counts requests with
  connections, answers ``text/plain``, and refuses health checks too, so an orchestrator
  would restart a pod that is only busy. Here a connection past the limit is accepted
  and its request line read: a health check (``HEALTH_PATHS``) is answered, anything
  else gets a fast ``503 too_many_connections`` with ``Retry-After: 1`` and
  ``Connection: close``, which a client can tell from a network failure (an immediate
  close would look like one, and would refuse the health check). At most ``spare`` such
  connections wait for their request line at once; a newer one closes the oldest waiting
  one, so the descriptors they hold stay bounded and a health check, which sends its
  request at once, gets through.

The limit must fit the open-file limit, or accept() fails with EMFILE and every client
waits: ``fit_connections`` raises the soft ``RLIMIT_NOFILE`` toward the hard one when the
limit needs it, and lowers the limit (with a warning) when even that is too little. A
burst of connections larger than what is left still makes accept() fail for a moment
(asyncio retries after a second).

Deadlines are numbers that each request moves; a sweep every ``Connections.tick`` (at
most 1 s) closes what is overdue. A timer per request would cost a heap push and a
cancel on the hot path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from typing import Any, cast

import httptools
import orjson
import uvicorn
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from modelswap.api.http.draining import guard_bodies
from modelswap.api.http.errors import error_response
from modelswap.api.http.lean import LeanInference
from modelswap.core.settings import Settings

logger = logging.getLogger("uvicorn.error")

HEALTH_PATHS = frozenset({b"/healthz", b"/readyz", b"/v2/health/live", b"/v2/health/ready", b"/ping"})
FD_RESERVE = 32  # descriptors kept for everything but connections: files, logs, pipes, metrics
REFUSAL_LOG_INTERVAL = 10.0


class ServerConfig(uvicorn.Config):
    """``uvicorn.Config`` serving with ``GuardedProtocol`` under ``settings``' limits."""

    def __init__(self, app: str, *, settings: Settings, **kwargs: Any) -> None:
        # uvicorn annotates timeout_keep_alive as int but only hands it to loop.call_later.
        keepalive = cast(int, settings.keepalive_timeout)
        # No WebSocket routes: an Upgrade request is served as plain HTTP, on this protocol.
        # uvicorn's proxy-headers layer is applied in load(), behind the lean inference layer.
        self.wants_proxy_headers = kwargs.pop("proxy_headers", True)
        super().__init__(
            app, http=GuardedProtocol, ws="none", timeout_keep_alive=keepalive, proxy_headers=False, **kwargs
        )
        self.limits = settings
        self.connections: Connections | None = None
        self.refusal: ASGIApp | None = None

    def load(self) -> None:
        super().load()
        s = self.limits
        limit, spare = fit_connections(s.max_connections)
        tick = min(1.0, max(0.05, min(s.header_timeout, s.body_timeout) / 4))
        self.connections = Connections(limit, spare, tick)
        message = f"this worker is at its limit of {limit} connections; retry shortly"
        refusal = error_response(503, "too_many_connections", message, {"Connection": "close", "Retry-After": "1"})
        # Outermost, so every response is covered: an answer sent before the body was
        # read drains the rest before the connection closes (see draining.py).
        bounds = {"max_body_bytes": s.max_body_bytes, "max_upload_bytes": s.max_upload_bytes}
        # The lean inference layer (lean.py) stays in front: it takes only requests that
        # need neither the drain nor the proxy headers, and hands the rest to this stack.
        lean = self.loaded_app if isinstance(self.loaded_app, LeanInference) else None
        full: ASGIApp = lean.fallback if lean is not None else self.loaded_app
        if self.wants_proxy_headers:
            # uvicorn types its middleware with its own ASGI types, Starlette's are looser
            full = cast(ASGIApp, ProxyHeadersMiddleware(cast(Any, full), trusted_hosts=self.forwarded_allow_ips))
        full = guard_bodies(full, **bounds)
        if lean is not None:
            lean.fallback = full
        else:
            self.loaded_app = full
        self.refusal = guard_bodies(refusal, **bounds)


class Connections:
    """One worker's connections: ``limit`` are served; past it, up to ``spare`` more may
    say what they want (a health check is answered, anything else refused). While there
    are connections, a sweep every ``tick`` seconds enforces their deadlines."""

    def __init__(self, limit: int, spare: int, tick: float) -> None:
        self.limit = limit
        self.spare = spare
        self.tick = tick
        self.live: set[GuardedProtocol] = set()
        self.admitted = 0
        self.waiting: OrderedDict[GuardedProtocol, None] = OrderedDict()
        self.sweeper: asyncio.TimerHandle | None = None
        self.refused = 0
        self.logged_at = float("-inf")

    def admit(self, conn: GuardedProtocol) -> bool:
        self.live.add(conn)
        if self.sweeper is None:
            self.sweeper = conn.loop.call_later(self.tick, self._sweep, conn.loop)
        if self.admitted < self.limit:
            self.admitted += 1
            return True
        self.waiting[conn] = None
        if len(self.waiting) > self.spare:
            oldest, _ = self.waiting.popitem(last=False)
            oldest.transport.abort()
            self.note_refusal()
        return False

    def promote(self, conn: GuardedProtocol) -> bool:
        """Admit a waiting connection whose request has arrived, if a place came free."""
        self.waiting.pop(conn, None)
        if self.admitted < self.limit:
            self.admitted += 1
            return True
        return False

    def release(self, conn: GuardedProtocol, admitted: bool) -> None:
        self.live.discard(conn)
        if admitted:
            self.admitted -= 1
        else:
            self.waiting.pop(conn, None)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for conn in list(self.live):
            if conn.deadline <= now:
                conn.expire(now)
        self.sweeper = loop.call_later(self.tick, self._sweep, loop) if self.live else None

    def note_refusal(self) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self.logged_at >= REFUSAL_LOG_INTERVAL:
            logger.warning(
                "%d connection(s) refused: over the limit of %d per worker (MODELSWAP_MAX_CONNECTIONS)",
                self.refused,
                self.limit,
            )
            self.refused, self.logged_at = 0, now


NEVER = float("inf")


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline per phase of a connection: its
    request line and headers, then the body (between two reads), then, once answered,
    the next request's headers (keep-alive idle time plus the header timeout)."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        if not isinstance(config, ServerConfig) or config.connections is None or config.refusal is None:
            raise TypeError("GuardedProtocol runs under a loaded ServerConfig")
        self.pool = config.connections
        self.refusal = config.refusal
        self.header_timeout = config.limits.header_timeout
        self.body_timeout = config.limits.body_timeout
        self.idle_timeout = config.limits.keepalive_timeout + config.limits.header_timeout
        self.deadline = NEVER
        self.phase = "headers"  # "headers" | "body" | "app" | "idle"
        self.partial = False  # some bytes of a request have arrived, not yet all its headers
        self.admitted = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.deadline = self.loop.time() + self.header_timeout
        self.admitted = self.pool.admit(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.release(self, self.admitted)
        self.admitted = False
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.partial = True
        if self.phase != "headers":  # a later request on the connection: its own deadline
            self.phase, self.deadline = "headers", self.loop.time() + self.header_timeout

    def on_headers_complete(self) -> None:
        self.partial = False
        self.phase, self.deadline = "body", self.loop.time() + self.body_timeout
        if self.admitted or self.pool.promote(self):
            self.admitted = True
            super().on_headers_complete()
            return
        app = self.app
        if httptools.parse_url(self.url).path not in HEALTH_PATHS:
            self.app = self.refusal
            self.pool.note_refusal()
        try:
            super().on_headers_complete()
        finally:
            self.app = app
        if self.cycle is not None:
            self.cycle.keep_alive = False

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self.deadline = self.loop.time() + self.body_timeout

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self.cycle is not None and self.cycle.response_complete:  # answered before its body was read
            self.phase, self.deadline = "idle", self.loop.time() + self.idle_timeout
        else:
            self.phase, self.deadline = "app", NEVER

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Waiting for the next request: uvicorn's keep-alive timer closes an idle
        # connection, but any byte (a stray CRLF) cancels it; this bounds that case too.
        if self.phase == "app" and not self.transport.is_closing() and self.cycle.response_complete:
            self.phase, self.deadline = "idle", self.loop.time() + self.idle_timeout

    def expire(self, now: float) -> None:
        """The deadline of the current phase has passed (called by the sweep)."""
        self.deadline = NEVER
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self.phase == "body":
            if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
                self.deadline = now + self.body_timeout  # the wait is ours, not the client's
                return
            if cycle is not None and not cycle.response_started:
                message = f"the request body stopped arriving for {self.body_timeout:g} s"
                self.transport.write(self._raw_error(408, "request_timeout", message))
            if cycle is not None:  # the application sees a disconnect, and its answer goes nowhere
                cycle.disconnected = True
                cycle.message_event.set()
        elif cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False  # a pipelined request stalled behind a response: close after it
            return
        elif self.partial:
            message = f"the request headers did not arrive within {self.header_timeout:g} s"
            self.transport.write(self._raw_error(408, "request_timeout", message))
        self.transport.close()

    def _raw_error(self, status: int, code: str, message: str) -> bytes:
        """A whole response, written below the application (no request reached it)."""
        body = orjson.dumps({"error": {"code": code, "message": message}})
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)]
        return b"".join([*head, b"connection: close\r\n\r\n", body])


def fit_connections(wanted: int) -> tuple[int, int]:
    """(limit, spare) for ``wanted`` connections per worker within the open-file limit."""
    spare = max(16, wanted // 8)
    budget = _descriptor_budget(wanted + spare)
    if budget is None or wanted + spare <= budget:
        return wanted, spare
    spare = max(1, min(spare, budget // 4))
    limit = max(1, budget - spare)
    logger.warning(
        "MODELSWAP_MAX_CONNECTIONS=%d does not fit the open-file limit (ulimit -n); serving at most %d "
        "connections per worker. Raise the limit (e.g. LimitNOFILE, docker --ulimit nofile) to serve more",
        wanted,
        limit,
    )
    return limit, spare


def _descriptor_budget(needed: int) -> int | None:
    """Descriptors free for connections, after raising the soft limit toward ``needed``
    if the hard limit allows; None when there is no limit to respect."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = _open_descriptors()
    want = in_use + FD_RESERVE + needed
    if soft != resource.RLIM_INFINITY and soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return None
    return max(0, soft - in_use - FD_RESERVE)


def _open_descriptors() -> int:
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(directory))
        except OSError:
            continue
    return FD_RESERVE  # pragma: no cover
