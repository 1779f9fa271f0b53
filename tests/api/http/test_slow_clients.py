"""Slow, idle, greedy and impatient clients against real servers: header and body
deadlines (408), the keep-alive timeout, the per-worker connection limit (health checks
still answer, the rest gets 503 or is closed), and a 413 that reaches clients which send
the whole body before reading (urllib, modelswap.Client)."""

from __future__ import annotations

import json
import select
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from modelswap.api.client import Client, RemoteError
from modelswap.core.store.store import Store
from tests.conftest import StepClock, publish
from tests.server import TOKEN, Server, serve, wait_until_up

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 1.0
KEEPALIVE_TIMEOUT = 1.0
MAX_CONNECTIONS = 32
MAX_UPLOAD = 1_000_000
SLACK = 5.0  # generous: the machine is shared; the deadlines are what is tested, not their precision
ENV = {
    "MODELSWAP_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
    "MODELSWAP_BODY_TIMEOUT": str(BODY_TIMEOUT),
    "MODELSWAP_KEEPALIVE_TIMEOUT": str(KEEPALIVE_TIMEOUT),
    "MODELSWAP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    "MODELSWAP_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
}
PREDICT = "/v1/models/iris/predict"
ELEVEN_MB = b'{"instances": [' + b"[1.0, 2.0, 3.0, 4.0]," * 550_000 + b"[1.0, 2.0, 3.0, 4.0]]}"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, iris_a: Any) -> Iterator[dict[int, Server]]:
    """The same store behind one worker and behind two (each with its own limit)."""
    root = tmp_path_factory.mktemp("slow") / "models"
    store = Store(root, clock=StepClock())
    store.deploy("iris", publish(store, iris_a))
    with ExitStack() as stack:
        started = {n: stack.enter_context(serve(root, workers=n, env=ENV, wait=False)) for n in (1, 2)}
        for server in started.values():
            wait_until_up(server, "/readyz")
        yield started


@pytest.fixture
def one(servers: dict[int, Server]) -> Server:
    return servers[1]


def address(server: Server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(address(server), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_response(sock: socket.socket, timeout: float = 10) -> tuple[int, dict[str, str], bytes] | None:
    """One response read to its end (Content-Length), or None when the server closed first."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict((k.lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:]))
        while len(body) < int(headers.get("content-length", "0")):
            chunk = sock.recv(65536)
            if not chunk:
                return None
            body += chunk
    except ConnectionResetError:
        return None
    return int(lines[0].split()[1]), headers, body


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """True when the server closes ``sock`` (EOF or reset) within ``timeout``; data is skipped."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
    return False


def error_code(body: bytes) -> str:
    return str(json.loads(body)["error"]["code"])


def healthz_seconds(server: Server) -> float:
    """Time for GET /healthz on a new connection; fails unless it answers 200."""
    start = time.monotonic()
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        response = read_response(sock)
    assert response is not None and response[0] == 200, response
    return time.monotonic() - start


def test_slowloris_connections_get_408_within_the_header_timeout_while_healthz_stays_fast(
    servers: dict[int, Server],
) -> None:
    """20 connections per server (one worker, two workers) that send a header byte every
    quarter second, and 2 that send nothing."""
    slow = {sock: n for n in servers for sock in [connect(servers[n]) for _ in range(20)]}
    silent = [connect(server) for server in servers.values() for _ in range(2)]
    try:
        for sock in slow:
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        start, still_open, answers = time.monotonic(), list(slow), []
        while still_open and time.monotonic() - start < HEADER_TIMEOUT + SLACK:
            readable, _, _ = select.select(still_open, [], [], 0.25)
            for sock in readable:
                still_open.remove(sock)
                answers.append(read_response(sock, 1))
            for sock in still_open:
                try:
                    sock.send(b"a")
                except OSError:
                    pass  # closed: select reports it next round
            for server in servers.values():
                assert healthz_seconds(server) < 1.0
        elapsed = time.monotonic() - start
        assert not still_open, f"{len(still_open)} slow connections still open after {elapsed:.1f} s"
        assert HEADER_TIMEOUT * 0.8 <= elapsed < HEADER_TIMEOUT + SLACK
        got = [a for a in answers if a is not None]
        assert len(got) >= len(slow) // 2, f"only {len(got)} 408s read: the other slow connections were reset"
        for status, headers, body in got:
            assert (status, headers["connection"], error_code(body)) == (408, "close", "request_timeout")
        for sock in silent:  # closed without a response: they asked nothing
            assert closed_by_server(sock, SLACK)
    finally:
        for sock in [*slow, *silent]:
            sock.close()


@pytest.mark.parametrize("route", ["predict", "upload"])
def test_a_body_shorter_than_declared_gets_408_within_the_body_timeout(one: Server, route: str) -> None:
    if route == "predict":
        head = f"POST {PREDICT} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    else:
        head = (
            "POST /v1/models/iris/versions HTTP/1.1\r\nHost: t\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        )
    with connect(one) as sock:
        sock.sendall(f"{head}Content-Length: 100\r\n\r\n".encode() + b"--b\r\n1234")
        start = time.monotonic()
        response = read_response(sock, BODY_TIMEOUT + SLACK)
        elapsed = time.monotonic() - start
        assert response is not None
        status, headers, body = response
        assert (status, headers["connection"], error_code(body)) == (408, "close", "request_timeout")
        assert BODY_TIMEOUT * 0.8 <= elapsed < BODY_TIMEOUT + SLACK
        assert closed_by_server(sock, SLACK)


def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout(one: Server) -> None:
    with connect(one) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        response = read_response(sock)
        assert response is not None and response[0] == 200
        start = time.monotonic()
        assert closed_by_server(sock, KEEPALIVE_TIMEOUT + SLACK)
        assert time.monotonic() - start >= KEEPALIVE_TIMEOUT * 0.8


@pytest.mark.parametrize("workers", [1, 2])
def test_connections_past_the_limit_are_refused_while_healthz_answers(servers: dict[int, Server], workers: int) -> None:
    server = servers[workers]
    idle = [connect(server) for _ in range(75 * workers)]  # half-open: connected, nothing sent
    try:
        assert healthz_seconds(server) < 1.0
        with connect(server) as extra:
            extra.sendall(b"GET /v1/models HTTP/1.1\r\nHost: t\r\n\r\n")
            refused = read_response(extra, 5)
        assert refused is not None
        status, headers, body = refused
        assert (status, error_code(body)) == (503, "too_many_connections")
        assert headers["connection"] == "close" and headers["retry-after"] == "1"
        outcomes = []
        for sock in idle:
            try:
                sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: t\r\n\r\n")
            except OSError:
                outcomes.append("closed")
                continue
            response = read_response(sock, 5)
            outcomes.append("closed" if response is None else str(response[0]))
        # each worker serves its first MAX_CONNECTIONS; later ones that still wait for
        # their request get 503; the oldest of those were closed to make room
        assert outcomes.count("200") == MAX_CONNECTIONS * workers
        assert outcomes.count("503") > 0 and outcomes.count("closed") > 0
        assert set(outcomes) == {"200", "503", "closed"}
    finally:
        for sock in idle:
            sock.close()
    assert healthz_seconds(server) < 1.0
    with connect(server) as sock:  # places come free as connections close
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (read_response(sock) or (0,))[0] == 200


def urllib_post(url: str, data: Any, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def multipart(size: int) -> tuple[bytes, dict[str, str]]:
    body = b"--b\r\nContent-Disposition: form-data; name=model; filename=m.joblib\r\n\r\n"
    body += b"\0" * size + b"\r\n--b--\r\n"
    return body, {"Content-Type": "multipart/form-data; boundary=b", "Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_11_mb_predict_from_urllib_gets_the_413_not_a_reset(one: Server, chunked: bool) -> None:
    # chunked: no Content-Length, so the limit is found while reading
    data: Any = iter([ELEVEN_MB[i : i + 65536] for i in range(0, len(ELEVEN_MB), 65536)]) if chunked else ELEVEN_MB
    headers = {"Content-Type": "application/json"}  # urllib sends an iterable chunked
    for _ in range(1 if chunked else 3):
        status, body = urllib_post(one.url + PREDICT, data, headers)
        assert (status, body["error"]["code"]) == (413, "payload_too_large")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_11_mb_upload_from_urllib_gets_the_413_not_a_reset(one: Server, chunked: bool) -> None:
    body, headers = multipart(11_000_000)
    data: Any = iter([body[i : i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    status, answer = urllib_post(one.url + "/v1/models/iris/versions", data, headers)
    assert (status, answer["error"]["code"]) == (413, "payload_too_large")


def test_modelswap_client_sees_the_413_for_predict_and_upload(one: Server, tmp_path: Path) -> None:
    client = Client(one.url, TOKEN)
    with pytest.raises(RemoteError) as predict:
        client.predict("iris", [[1.0, 2.0, 3.0, 4.0]] * 550_000)
    assert (predict.value.status, predict.value.code) == (413, "payload_too_large")
    big = tmp_path / "big.joblib"
    big.write_bytes(b"\0" * 11_000_000)
    with pytest.raises(RemoteError) as upload:
        client.upload("iris", big)
    assert (upload.value.status, upload.value.code) == (413, "payload_too_large")
    assert client.predict("iris", [[6.0, 2.9, 4.5, 1.5]])["predictions"]  # and the server is fine


def test_half_open_connections_past_the_open_file_limit_do_not_silence_healthz(tmp_path: Path, iris_a: Any) -> None:
    """120 idle connections against a 100-descriptor process: the connection limit is
    lowered to fit, the extra connections are closed, and health checks keep answering."""
    store = Store(tmp_path / "models", clock=StepClock())
    store.deploy("iris", publish(store, iris_a))
    with serve(store.root, open_files=100) as server:
        idle = []
        try:
            for _ in range(120):
                idle.append(connect(server))
                time.sleep(0.002)  # a steady stream; a burst bigger than the limit makes accept() wait 1 s
            assert healthz_seconds(server) < 1.0
            assert "does not fit the open-file limit" in server.output()
        finally:
            for sock in idle:
                sock.close()
