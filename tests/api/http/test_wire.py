"""respond() against the installed uvicorn's own send: the same bytes (in one write instead
of two), the same state left on the cycle, and a refusal wherever it does not apply."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from modelswap.api.http.wire import respond

BODY = b'{"predictions":[1]}'
HEADERS = [(b"content-length", b"%d" % len(BODY)), (b"content-type", b"application/json"), (b"x-request-id", b"r-1")]


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def cycle(*, keep_alive: bool = True, method: str = "POST") -> tuple[RequestResponseCycle, Transport, list[int]]:
    transport = Transport()
    completed: list[int] = []
    made = RequestResponseCycle(
        scope={"type": "http", "method": method, "path": "/predict", "http_version": "1.1"},  # type: ignore[typeddict-item]
        transport=transport,  # type: ignore[arg-type]
        flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=[(b"date", b"Thu, 03 Dec 2026 12:00:00 GMT"), (b"server", b"uvicorn")],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: completed.append(1),
    )
    return made, transport, completed


def state(c: RequestResponseCycle, transport: Transport, completed: list[int]) -> dict[str, Any]:
    return {
        "bytes": b"".join(transport.writes),
        "closed": transport.closed,
        "started": c.response_started,
        "complete": c.response_complete,
        "event": c.message_event.is_set(),
        "completed": len(completed),
        "keep_alive": c.keep_alive,
        "chunked": c.chunked_encoding,
        "expected": c.expected_content_length,
        "continue": c.waiting_for_100_continue,
    }


def sent(c: RequestResponseCycle, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    async def both() -> None:
        await c.send({"type": "http.response.start", "status": status, "headers": headers})
        await c.send({"type": "http.response.body", "body": body})

    asyncio.run(both())


@pytest.mark.parametrize("keep_alive", [True, False])
@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (200, HEADERS),
        (404, HEADERS[:2]),
        (200, [*HEADERS, (b"content-length", b"999")]),  # a second length: both go by the first
    ],
)
def test_respond_writes_once_what_two_sends_write_and_leaves_the_cycle_as_they_do(
    keep_alive: bool, status: int, headers: list[tuple[bytes, bytes]]
) -> None:
    ours, our_transport, our_done = cycle(keep_alive=keep_alive)
    theirs, their_transport, their_done = cycle(keep_alive=keep_alive)
    assert respond(ours.send, status, headers, BODY)
    sent(theirs, status, headers, BODY)
    assert len(our_transport.writes) == 1 and len(their_transport.writes) == 2
    assert state(ours, our_transport, our_done) == state(theirs, their_transport, their_done)


def test_respond_declines_what_it_does_not_cover_and_writes_nothing() -> None:
    async def other_servers_send(message: object) -> None:
        raise AssertionError("never called")

    assert not respond(other_servers_send, 200, HEADERS, BODY)
    for change in ("paused", "head", "access_log", "no_length", "wrong_length", "connection"):
        c, transport, done = cycle(method="HEAD" if change == "head" else "POST")
        c.flow.write_paused = change == "paused"
        c.access_log = change == "access_log"
        headers = {
            "no_length": HEADERS[1:],
            "wrong_length": [(b"content-length", b"3"), *HEADERS[1:]],
            "connection": [*HEADERS, (b"connection", b"close")],
        }.get(change, HEADERS)
        assert not respond(c.send, 200, headers, BODY), change
        assert (transport.writes, c.response_started, done) == ([], False, []), change


def test_a_disconnected_client_gets_nothing_as_with_send() -> None:
    c, transport, done = cycle()
    c.disconnected = True
    assert respond(c.send, 200, HEADERS, BODY)
    assert (transport.writes, c.response_complete, done) == ([], False, [])


def test_a_bad_header_value_raises_and_leaves_the_cycle_as_send_does() -> None:
    bad = [*HEADERS, (b"x-evil", b"a\r\nset-cookie: x")]
    ours, our_transport, our_done = cycle()
    theirs, their_transport, their_done = cycle()
    with pytest.raises(RuntimeError, match="Invalid HTTP header value"):
        respond(ours.send, 200, bad, BODY)
    with pytest.raises(RuntimeError, match="Invalid HTTP header value"):
        sent(theirs, 200, bad, BODY)
    visible = ("bytes", "closed", "started", "complete", "event", "completed")  # what run_asgi acts on next
    mine, uvicorns = state(ours, our_transport, our_done), state(theirs, their_transport, their_done)
    assert {k: mine[k] for k in visible} == {k: uvicorns[k] for k in visible}
    assert mine["started"] and mine["bytes"] == b""  # run_asgi closes the connection; nothing was sent


def test_header_lines_seen_before_are_written_as_send_writes_them() -> None:
    """Checked header lines are kept (by name and value) and reused: a second answer with
    the same headers, and one with another request id, match send's bytes and state."""
    for headers in (HEADERS, HEADERS, [*HEADERS, (b"X-Request-Id", b"another")], HEADERS):
        ours, our_transport, our_done = cycle()
        theirs, their_transport, their_done = cycle()
        assert respond(ours.send, 200, headers, BODY)
        sent(theirs, 200, headers, BODY)
        assert state(ours, our_transport, our_done) == state(theirs, their_transport, their_done)
    bad = [*HEADERS, (b"x-evil", b"a\r\nset-cookie: x")]
    for _ in range(2):  # a bad header is never kept: refused each time
        with pytest.raises(RuntimeError, match="Invalid HTTP header value"):
            respond(cycle()[0].send, 200, bad, BODY)
