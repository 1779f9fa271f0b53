"""The lean inference layer: which requests it takes, and that a request answered by it and
the same request answered by the full Starlette stack are the same answer."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from modelswap.api.http import mlflow, predict, v2
from modelswap.api.http.app import INFERENCE_ROUTES, ROUTES
from modelswap.api.http.lean import RouteTable, takes
from modelswap.api.http.wire import respond
from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, publish
from tests.server import serve

match = RouteTable(INFERENCE_ROUTES).match


@pytest.mark.parametrize(
    ("path", "handler", "params", "template"),
    [
        ("/predict", predict.predict_default, {}, "/predict"),
        ("/invocations", mlflow.invocations, {}, "/invocations"),
        ("/v1/models/iris/predict", predict.predict, {"model": "iris"}, "/v1/models/{model}/predict"),
        ("/v2/models/iris/infer", v2.infer, {"model": "iris"}, "/v2/models/{model}/infer"),
        (
            "/v1/models/iris/versions/champion/predict",
            predict.predict_pinned,
            {"model": "iris", "version": "champion"},
            "/v1/models/{model}/versions/{version}/predict",
        ),
        (
            "/v2/models/iris/versions/v/infer",
            v2.infer,
            {"model": "iris", "version": "v"},
            "/v2/models/{model}/versions/{version}/infer",
        ),
    ],
)
def test_the_inference_paths_match_with_their_parameters_and_template(
    path: str, handler: object, params: dict[str, str], template: str
) -> None:
    found = match(path)
    assert found is not None
    # the table holds the route's endpoint: the handler behind its role check (auth.needs)
    assert (found[0].__wrapped__, found[1], found[2]) == (handler, params, template)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "path",
    ["/predict/", "/v1/models//predict", "/v1/models/iris/predict/", "/v1/models/iris", "/v2/models/iris/ready",
     "/v1/models/iris/versions//predict", "/x/models/iris/predict", "/v1/things/iris/predict", "/healthz"],
)  # fmt: skip
def test_every_other_path_is_left_to_the_full_stack(path: str) -> None:
    assert match(path) is None


def test_the_lean_table_is_the_app_s_own_inference_routes_and_matches_as_starlette_does() -> None:
    from starlette.routing import Match

    assert all(any(route is other for other in ROUTES) for route in INFERENCE_ROUTES)
    paths = [
        "/v1/models/iris/predict",
        "/v1/models/iris/versions/champion/predict",
        "/predict",
        "/invocations",
        "/v2/models/iris/infer",
        "/v2/models/iris/versions/v/infer",
        "/v1/models//predict",
        "/v1/models/iris",
    ]
    for path in paths:
        scope = {"type": "http", "path": path, "method": "POST", "root_path": ""}
        full = next(((r, child) for r in ROUTES if (m := r.matches(scope))[0] == Match.FULL for child in [m[1]]), None)
        lean = match(path)
        if full is None or full[0] not in INFERENCE_ROUTES:
            assert lean is None, path
        else:
            route, child = full
            assert lean == (route.endpoint, child["path_params"], route.path), path


def test_only_a_post_with_a_declared_length_within_the_limit_and_no_chunking_is_taken() -> None:
    def scope(method: str = "POST", **headers: str) -> dict[str, object]:
        raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
        return {"method": method, "headers": raw}

    assert takes(scope(content_length="10"), 10)
    assert not takes(scope(content_length="11"), 10)  # the full stack answers 413 and drains
    assert not takes(scope(), 10)
    assert not takes(scope(content_length="x"), 10)
    assert not takes(scope(content_length="5", transfer_encoding="chunked"), 10)
    assert not takes(scope("GET", content_length="5"), 10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, iris_a: Any) -> Iterator[object]:
    store = Store(tmp_path_factory.mktemp("lean") / "models")
    store.deploy("iris", publish(store, iris_a))
    with serve(store.root) as running:
        yield running


def chunks(body: bytes) -> Iterator[bytes]:
    yield body  # a generator body: httpx sends it chunked, with no Content-Length


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/models/iris/predict", b'{"instances": [%s]}'),
        ("/v1/models/iris/predict", b'{"instances": [[1, 2]]}'),  # 400: wrong width
        ("/v1/models/iris/predict", b'{"instances": '),  # 400: not JSON
        ("/v1/models/ghost/predict", b'{"instances": [%s]}'),  # 404
        ("/predict", b'{"instances": [%s], "method": "predict_proba"}'),
        ("/invocations", b'{"dataframe_split": {"data": [%s]}}'),
        ("/v2/models/iris/infer", b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": %s}]}'),
        ("/v2/models/iris/infer", b'{"inputs": []}'),  # v2's own error shape
    ],
)
def test_the_lean_layer_and_the_full_stack_give_the_same_answer(server: object, path: str, body: bytes) -> None:
    body = body.replace(b"%s", str(IRIS_ROW).encode())
    with server.client() as client:  # type: ignore[attr-defined]
        lean = client.post(path, content=body, headers={"Content-Type": "application/json", "X-Request-Id": "r-1"})
        full = client.post(
            path, content=chunks(body), headers={"Content-Type": "application/json", "X-Request-Id": "r-1"}
        )
    assert "content-length" not in full.request.headers  # it really took the other way
    assert (lean.status_code, lean.json()) == (full.status_code, full.json())
    for name in ("content-type", "x-model-version", "x-model-variant", "x-request-id"):
        assert lean.headers.get(name) == full.headers.get(name), name


def test_requests_the_lean_layer_answers_are_counted_by_route_template(server: object) -> None:
    def count(text: str, status: int) -> float:
        pattern = (
            r'modelswap_http_requests_total\{method="POST",route="/v1/models/\{model\}/predict",'
            rf'status="{status}"\}} ([0-9.e+]+)'
        )
        found = re.search(pattern, text)
        return float(found.group(1)) if found is not None else 0.0

    with server.client() as client:  # type: ignore[attr-defined]
        before = client.get("/metrics").text
        assert client.post("/v1/models/iris/predict", json={"instances": [IRIS_ROW]}).status_code == 200
        assert client.post("/v1/models/iris/predict", json={"instances": [[1, 2]]}).status_code == 400
        after = client.get("/metrics").text
    assert count(after, 200) - count(before, 200) == 1
    assert count(after, 400) - count(before, 400) == 1


Answer = tuple[str, list[tuple[str, str]], bytes]  # status line, headers in order, body


def raw_exchange(server: object, data: bytes, answers: int) -> tuple[list[Answer], bool]:
    """Send ``data`` on one connection; read ``answers`` responses (status line, headers in
    order, body), then whether the server closed the connection within a second."""
    host, port = server.url.removeprefix("http://").split(":")  # type: ignore[attr-defined]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        buffer, responses = b"", []
        while len(responses) < answers:
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65536)
                assert chunk, f"closed after {len(responses)} answers"
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            status, *lines = head.decode("latin-1").split("\r\n")
            headers = [(k.lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
            length = int(dict(headers)["content-length"])
            while len(buffer) < length:
                chunk = sock.recv(65536)
                assert chunk, "closed inside a body"
                buffer += chunk
            responses.append((status, headers, buffer[:length]))
            buffer = buffer[length:]
        assert buffer == b""
        sock.settimeout(1)
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
    return responses, closed


def post(path: str, body: bytes, *extra: str, version: str = "1.1") -> bytes:
    head = [f"POST {path} HTTP/{version}", "Host: t", "Content-Type: application/json", *extra]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def test_a_lean_answer_is_byte_for_byte_the_full_stacks_but_for_the_date(server: object) -> None:
    body = b'{"instances": [%s]}' % str(IRIS_ROW).encode()
    full_request = (
        b"POST /v1/models/iris/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"X-Request-Id: r-2\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    )
    (lean,), _ = raw_exchange(server, post("/v1/models/iris/predict", body, "X-Request-Id: r-2"), 1)
    (full,), _ = raw_exchange(server, full_request, 1)
    undated = [[(k, v) for k, v in r[1] if k != "date"] for r in (lean, full)]
    assert (lean[0], undated[0], lean[2]) == (full[0], undated[1], full[2])
    assert [k for k, _ in lean[1]][:2] == ["date", "server"]  # uvicorn's own headers, first, as always


def test_pipelined_requests_are_answered_in_order_and_connection_close_is_honoured(server: object) -> None:
    body = b'{"instances": [%s]}' % str(IRIS_ROW).encode()
    data = b"".join(
        post("/v1/models/iris/predict", body, f"X-Request-Id: p-{i}", *(["Connection: close"] if i == 2 else []))
        for i in range(3)
    )
    responses, closed = raw_exchange(server, data, 3)
    assert [r[0] for r in responses] == ["HTTP/1.1 200 OK"] * 3
    assert [dict(r[1])["x-request-id"] for r in responses] == ["p-0", "p-1", "p-2"]
    assert [dict(r[1]).get("connection") for r in responses] == [None, None, "close"]
    assert closed


def test_an_http_1_0_client_is_told_and_the_connection_closes(server: object) -> None:
    body = b'{"instances": [%s]}' % str(IRIS_ROW).encode()
    (answer,), closed = raw_exchange(server, post("/v1/models/iris/predict", body, version="1.0"), 1)
    assert answer[0].endswith("200 OK") and dict(answer[1])["connection"] == "close" and closed
    assert json.loads(answer[2])["predictions"]


def test_respond_leaves_any_other_servers_send_to_the_caller() -> None:
    async def send(message: object) -> None:
        raise AssertionError("respond must not call a send it does not know")

    assert not respond(send, 200, [(b"content-length", b"2")], b"{}")
