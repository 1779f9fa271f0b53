"""Hostile requests against a real server: each gets its 4xx JSON error, the server
stays healthy, and the store does not change."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, StepClock, publish
from tests.core.store.test_store import tree
from tests.server import Server, serve

P = "/v1/models/iris/predict"
MAX_BODY = 1_000_000
ELEVEN_MB = b'{"instances": [' + b"[1.0, 2.0, 3.0, 4.0]," * 550_000 + b"[1.0, 2.0, 3.0, 4.0]]}"

# (method, path, body (bytes or JSON), headers, status, code)
CASES: list[tuple[str, str, Any, dict[str, str], int, str]] = [
    ("POST", P, b"{not json", {}, 400, "invalid_input"),
    ("POST", P, b"", {}, 400, "invalid_input"),
    ("POST", P, [1, 2, 3], {}, 400, "invalid_input"),
    ("POST", P, {"instances": []}, {}, 400, "invalid_input"),
    ("POST", P, {"instances": [1.0, 2.0, 3.0, 4.0]}, {}, 400, "invalid_input"),
    ("POST", P, {"instances": [[1.0, 2.0, 3.0]]}, {}, 400, "invalid_input"),
    ("POST", P, {"instances": [[1.0, 2.0, 3.0, 4.0], [1.0]]}, {}, 400, "invalid_input"),
    ("POST", P, {"instances": [["a", "b", "c", "d"]]}, {}, 400, "invalid_input"),
    ("POST", P, {"instances": [[1, "2", 3, 4]]}, {}, 400, "invalid_input"),
    ("POST", P, {"instances": [[None, 1, 2, 3]]}, {}, 400, "invalid_input"),
    ("POST", P, {"instances": [[True, False, True, False]]}, {}, 400, "invalid_input"),
    ("POST", P, b'{"instances": [[NaN, 1, 2, 3]]}', {}, 400, "invalid_input"),
    ("POST", P, b'{"instances": [[1e400, 1, 2, 3]]}', {}, 400, "invalid_input"),
    ("POST", P, {"instances": [[[1.0]]]}, {}, 400, "invalid_input"),
    ("POST", P, {"instances": [IRIS_ROW], "method": "fit"}, {}, 400, "invalid_input"),
    ("POST", P, {"instances": [IRIS_ROW], "method": "__class__"}, {}, 400, "invalid_input"),
    ("POST", P, {"instances": [IRIS_ROW], "extra": 1}, {}, 400, "invalid_input"),
    ("POST", P, {"instances": [IRIS_ROW] * 101}, {}, 400, "invalid_input"),
    ("POST", P, ELEVEN_MB, {}, 413, "payload_too_large"),
    ("POST", "/v1/models/nope/predict", {"instances": [IRIS_ROW]}, {}, 404, "model_not_found"),
    ("POST", "/v1/models/..%2F..%2Fetc/predict", {"instances": [IRIS_ROW]}, {}, 404, "not_found"),
    ("POST", "/v1/models/%2e%2e/predict", {"instances": [IRIS_ROW]}, {}, 400, "invalid_name"),
    ("POST", "/v1/models/Iris/predict", {"instances": [IRIS_ROW]}, {}, 400, "invalid_name"),
    ("POST", "/v1/models/iris/versions/..%2F..%2Fx/predict", {"instances": [IRIS_ROW]}, {}, 404, "not_found"),
    ("POST", "/v1/models/iris/versions/%2e%2e/predict", {"instances": [IRIS_ROW]}, {}, 400, "invalid_name"),
    ("POST", "/v1/models/iris/versions/20200101-000000-abcdef/predict", {"instances": [IRIS_ROW]}, {},
     404, "version_not_found"),
    ("GET", "/v1/models/iris/versions/latest", None, {}, 400, "invalid_name"),
    ("GET", "/v1/models/nope", None, {}, 404, "model_not_found"),
    ("GET", "/no/such/route", None, {}, 404, "not_found"),
    ("GET", P, None, {}, 405, "method_not_allowed"),
    ("POST", "/v1/models/iris/rollback", {}, {}, 401, "unauthorized"),
    ("POST", "/v1/models/iris/deploy", {"version": "x"}, {"authorization": "Bearer nope"}, 401, "unauthorized"),
    ("POST", "/v1/models/iris/deploy", {"version": "../x"}, {"authorization": "Basic dGVzdA=="}, 401, "unauthorized"),
    ("POST", "/v1/models/iris/deploy", {"version": "../../etc"}, "ADMIN", 400, "invalid_name"),
    ("POST", "/v1/models/iris/deploy", {}, "ADMIN", 400, "invalid_input"),
    ("POST", "/v1/models/iris/deploy", {"version": "20200101-000000-abcdef"}, "ADMIN", 404, "version_not_found"),
    ("POST", "/v1/models/iris/rollback", {"to": 5}, "ADMIN", 400, "invalid_name"),
    ("POST", "/v1/models/iris/rollback", b"[", "ADMIN", 400, "invalid_input"),
    ("DELETE", "/v1/models/iris/versions/CURRENT", None, "ADMIN", 409, "version_is_live"),
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, iris_a: Any) -> Iterator[tuple[Server, Store]]:
    root = tmp_path_factory.mktemp("hostile") / "models"
    store = Store(root, clock=StepClock())
    store.deploy("iris", publish(store, iris_a))
    env = {"MODELSWAP_MAX_BODY_BYTES": str(MAX_BODY), "MODELSWAP_MAX_ROWS": "100"}
    with serve(root, env=env) as srv:
        yield srv, store


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "code"), CASES)
def test_hostile_request_gets_a_json_4xx_and_changes_nothing(
    server: tuple[Server, Store], method: str, path: str, body: Any, headers: Any, status: int, code: str
) -> None:
    srv, store = server
    before = tree(store.root / "iris" / "versions") | {"current": store.current("iris") or ""}
    registry_before = store.paths("iris").registry.read_bytes()
    path = path.replace("CURRENT", store.current("iris") or "")
    with srv.admin() if headers == "ADMIN" else srv.client() as client:
        extra = {} if headers == "ADMIN" else headers
        content = body if isinstance(body, bytes) else None
        json_body = None if isinstance(body, bytes) or body is None else body
        r = client.request(method, path, content=content, json=json_body, headers=extra)
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/json"
        error = r.json()["error"]
        assert error["code"] == code and error["message"]
        assert "Traceback" not in r.text
        assert client.get("/healthz").status_code == 200
        assert client.post(P, json={"instances": [IRIS_ROW]}).status_code == 200
    after = tree(store.root / "iris" / "versions") | {"current": store.current("iris") or ""}
    assert after == before and store.paths("iris").registry.read_bytes() == registry_before


def test_a_chunked_body_over_the_limit_is_cut_off_with_413(server: tuple[Server, Store]) -> None:
    srv, _ = server

    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ['
        for _ in range(MAX_BODY // 1000 + 10):
            yield b"[1.0, 2.0, 3.0, 4.0]," * 50

    with srv.client() as client:
        r = client.post(P, content=chunks())
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        assert "content-length" not in r.request.headers


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/v1/models/iris/canary", "DELETE, GET, HEAD, POST"),
        ("PATCH", "/v1/models/iris/aliases/champion", "DELETE, PUT"),
        ("PUT", "/v1/models/iris/versions", "GET, HEAD, POST"),
        ("POST", "/healthz", "GET, HEAD"),
    ],
)
def test_a_405_lists_every_method_of_the_resource_in_allow(
    server: tuple[Server, Store], method: str, path: str, allow: str
) -> None:
    """A resource served by one route per method answers 405 with all of them, not the first route's."""
    srv, _ = server
    with srv.admin() as client:
        r = client.request(method, path)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["allow"] == allow


def test_the_table_holds_at_least_twenty_hostile_requests() -> None:
    assert len(CASES) >= 20


def test_no_traceback_reached_the_log_as_a_500(server: tuple[Server, Store]) -> None:
    srv, _ = server
    assert " 500" not in srv.output() and "internal_error" not in srv.output()
