"""A whole response in one write, for uvicorn's httptools cycle.

uvicorn writes a response as ASGI hands it over: the status line and headers at
``http.response.start`` (one ``send()`` system call), the body at ``http.response.body``
(another). For a small JSON answer the second call costs as much as the first, and each
one gives the event loop's thread up to the model's worker threads waiting for the GIL.
When the application has the whole answer at once, :func:`respond` writes it with one
call, doing to the cycle exactly what the two ``send`` calls would (the same headers,
the same keep-alive, completion and pipelining callbacks). Anything it does not cover
(another server, a paused writer, an access log) returns False and the caller sends as
usual. tests/api/http/test_wire.py holds it to the installed uvicorn's own ``send``, byte
for byte and flag for flag, so an upgrade that changes ``send`` fails there first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

try:  # uvicorn's own parts; without them (another uvicorn, no httptools) respond() declines
    from uvicorn.protocols.http.httptools_impl import (
        HEADER_RE,
        HEADER_VALUE_RE,
        STATUS_LINE,
        RequestResponseCycle,
    )
except ImportError:  # pragma: no cover - depends on the installed uvicorn
    RequestResponseCycle = None  # type: ignore[assignment,misc]


# Header lines already checked and rendered, by (name, value) as the application gives them:
# the server's default headers (its date changes once a second), a version's headers, the
# content type. Only headers send would write unchanged go in (not content-length).
_LINES: dict[tuple[bytes, bytes], bytes] = {}
MAX_LINES = 1024


def respond(
    send: Callable[..., Any], status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes | memoryview
) -> bool:
    """Write ``status``, ``headers`` (which give the body's content-length) and ``body``
    as one response through ``send``'s cycle; False when this cannot be done here and
    the caller must send the two ASGI messages itself."""
    cycle = getattr(send, "__self__", None)
    if RequestResponseCycle is None or type(cycle) is not RequestResponseCycle or cycle.access_log:
        return False
    if cycle.disconnected:
        return True  # what send does: the answer goes nowhere
    if cycle.response_started or cycle.flow.write_paused or cycle.scope["method"] == "HEAD":
        return False
    content: list[bytes | memoryview] = [STATUS_LINE[status]]
    keep_alive = cycle.keep_alive
    length = None
    lines = _LINES
    for pair in (*cycle.default_headers, *headers):
        line = lines.get(pair)
        if line is None:  # not seen yet: checked and rendered as send does it
            name, value = pair
            if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value):
                cycle.response_started = True  # as send leaves it: the connection is closed, nothing is sent
                raise RuntimeError(
                    "Invalid HTTP header name." if HEADER_RE.search(name) else "Invalid HTTP header value."
                )
            name = name.lower()
            if name == b"content-length":
                if length is None:  # send goes by the first
                    length = value
                content.append(b"content-length: " + value + b"\r\n")
                continue
            if name == b"transfer-encoding" or name == b"connection":
                return False  # never ours on these routes: uvicorn's own path handles them
            line = name + b": " + value + b"\r\n"
            if len(lines) >= MAX_LINES:  # one request id each: the cache is for what repeats
                lines.clear()
            lines[pair] = line
        content.append(line)
    if not keep_alive:
        content.append(b"connection: close\r\n")
    if length is None or length != b"%d" % len(body):
        return False
    content += [b"\r\n", body]
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    cycle.chunked_encoding = False
    cycle.transport.write(b"".join(content))
    cycle.response_complete = True
    cycle.message_event.set()
    if not keep_alive:
        cycle.transport.close()
    cycle.on_response()
    return True
