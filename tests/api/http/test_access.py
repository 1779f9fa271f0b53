"""Named tokens with roles per model, on real servers: every route x every role x in and
out of the token's models; revocation and rotation across two serving processes without a
restart; who did what in history; the lockout after failed attempts; no token or hash in
any log, answer, history or metric."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelswap.api.http.app import ROUTES
from modelswap.core.access import tokens
from modelswap.core.access.roles import ROLES, includes
from modelswap.core.store.aliases import set_alias
from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, ROOT, StepClock, publish
from tests.server import TOKEN, Server, serve, wait_for

IN, OUT = "churn", "fraud"  # the role tokens cover churn* only
INFERENCE = re.compile(r"/(predict|infer)$|^/invocations$")
PARAMS = {"version": "champion", "alias": "nothing-here", "model_id": "m-0000", "job": "20261206-000000-000000"}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelswap", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def two_models(root: Path, iris_a: Any, iris_b: Any) -> Store:
    store = Store(root, clock=StepClock())
    for model in (IN, OUT):
        store.deploy(model, publish(store, iris_a, model))
        set_alias(store, model, "champion", publish(store, iris_b, model), actor="test")
    return store


def request_for(route_path: str, method: str, model: str) -> tuple[str, str, Any]:
    path = route_path.replace("{model}", model).replace("{name}", "console.js")
    for name, value in PARAMS.items():
        path = path.replace("{" + name + "}", value)
    if method in ("GET", "HEAD"):
        return method, path, None
    # an inference route gets a real row; every other write gets a body it refuses (400)
    # after the role check, so that no case changes the store for the next
    return method, path, {"instances": [IRIS_ROW]} if INFERENCE.search(route_path) else []


@pytest.fixture(scope="module")
def guarded_server(
    tmp_path_factory: pytest.TempPathFactory, iris_a: Any, iris_b: Any
) -> Iterator[tuple[Server, dict[str, str]]]:
    base = tmp_path_factory.mktemp("access")
    two_models(base / "models", iris_a, iris_b)
    keys = {role: tokens.create(base / "tokens.json", f"{role}-user", role, models=["churn*"])[0] for role in ROLES}
    env = {
        "MODELSWAP_TOKENS_FILE": str(base / "tokens.json"),
        "MODELSWAP_PROTECT_READS": "1",
        "MODELSWAP_PROTECT_PREDICT": "1",
        "MODELSWAP_DEFAULT_MODEL": IN,
        "MODELSWAP_AUTH_FAILURES_PER_MINUTE": "100000",  # the matrix sends many refused tokens
    }
    with serve(base / "models", env=env) as server:
        yield server, keys


def test_every_route_answers_each_role_in_and_out_of_its_models_exactly_as_declared(
    guarded_server: tuple[Server, dict[str, str]],
) -> None:
    server, keys = guarded_server
    checked, wrong = 0, []
    with httpx.Client(base_url=server.url, timeout=30) as http:

        def status(method: str, path: str, body: Any, token: str | None) -> int:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return http.request(method, path, json=body, headers=headers).status_code

        for route in ROUTES:
            role = getattr(route.endpoint, "role", None)
            scoped = "{model}" in route.path
            for method in sorted((route.methods or set()) - {"HEAD"}):
                for model in (IN, OUT) if scoped else (IN,):
                    call = request_for(route.path, method, model)
                    # what the handler answers once let through: the full admin token's answer
                    allowed = status(*call, TOKEN)
                    assert allowed not in (401, 403, 429), (route.path, method, allowed)
                    cases: dict[str, int] = {"no token": 401 if role else allowed}
                    cases["wrong token"] = 401 if role else allowed
                    for held in ROLES:
                        ok = role is None or (includes(held, role) and (model == IN or not scoped))
                        cases[held] = allowed if ok else 403
                    for case, expected in cases.items():
                        token = (
                            keys.get(case) if case in keys else ("msw_not-a-token" if case == "wrong token" else None)
                        )
                        got = status(*call, token)
                        checked += 1
                        if got != expected:
                            wrong.append(f"{method} {call[1]} as {case}: {got}, expected {expected}")
    assert not wrong, "\n".join(wrong)
    assert checked > 500


def test_a_read_token_lists_only_its_models_and_a_refusal_names_the_role(
    guarded_server: tuple[Server, dict[str, str]],
) -> None:
    server, keys = guarded_server
    with server.client(keys["read"]) as reader:
        assert [m["model"] for m in reader.get("/v1/models").json()["models"]] == [IN]
        refused = reader.post(f"/v1/models/{IN}/rollback", json={})
        assert refused.status_code == 403
        assert refused.json()["error"] == {
            "code": "forbidden",
            "message": "this needs the 'rollback' role: token 'read-user' has 'read'",
        }
        me = reader.get("/v1/whoami").json()
        assert me == {"name": "read-user", "role": "read", "models": ["churn*"], "expires": None, "allowed": ["read"]}
    with server.client(keys["admin"]) as admin:
        out = admin.get(f"/v1/models/{OUT}/history")
        assert out.status_code == 403 and "on model 'fraud': token 'admin-user' covers churn* only" in out.text
    with server.client(keys["predict"]) as client:  # each protocol answers in its own shape
        v2 = client.post(f"/v2/models/{OUT}/infer", json={"inputs": []})
        assert v2.status_code == 403 and set(v2.json()) == {"error"}
    with server.client() as anonymous:
        mlflow = anonymous.post("/invocations", json={"instances": [IRIS_ROW]})
        assert mlflow.status_code == 401 and mlflow.json()["error_code"] == "UNAUTHENTICATED"
        assert mlflow.headers["www-authenticate"] == "Bearer"


def test_revocation_and_rotation_reach_two_serving_processes_without_a_restart(
    tmp_path: Path, iris_a: Any, iris_b: Any
) -> None:
    """The tokens file does not exist yet when the servers start: the first token is made
    after, as a Secret mounted later would be."""
    store = two_models(tmp_path / "models", iris_a, iris_b)
    file = tmp_path / "secret" / "tokens.json"
    env = {"MODELSWAP_TOKENS_FILE": str(file), "MODELSWAP_POLL_INTERVAL": "0.2"}
    with serve(store.root, env=env, wait=False) as one, serve(store.root, env=env, wait=False) as two:
        for server in (one, two):
            wait_for(lambda s=server: s.proc.poll() is not None or _up(s), 60)
            assert call(server, "msw_x", "POST", f"/v1/models/{IN}/reload").status_code == 401
        created = cli("token", "create", "oncall-alice", "--role", "rollback", "--models", "churn*", "--json", env=env)
        assert created.returncode == 0, created.stderr
        alice = json.loads(created.stdout)["token"]
        for server in (one, two):
            assert wait_for(lambda s=server: call(s, alice, "POST", f"/v1/models/{IN}/reload").status_code == 200, 10)

        assert cli("token", "revoke", "oncall-alice", env=env).returncode == 0
        bob = json.loads(cli("token", "create", "oncall-bob", "--role", "rollback", "--json", env=env).stdout)["token"]
        for server in (one, two):
            assert wait_for(lambda s=server: call(s, alice, "POST", f"/v1/models/{IN}/reload").status_code == 401, 10)
            assert wait_for(lambda s=server: call(s, bob, "POST", f"/v1/models/{IN}/reload").status_code == 200, 10)
        listed = json.loads(cli("token", "list", "--json", "--root", str(store.root), env=env).stdout)["tokens"]
        assert [(t["name"], t["role"]) for t in listed] == [("oncall-bob", "rollback")]
        assert listed[0]["last_used"] is not None  # the servers recorded bob's use in the store


def _up(server: Server) -> bool:
    try:
        return call(server, None, "GET", "/readyz").status_code == 200
    except httpx.TransportError:
        return False


def call(server: Server, token: str | None, method: str, path: str) -> httpx.Response:
    """One request on its own connection, closed at once."""
    with server.client(token) as client:
        return client.request(method, path)


def test_history_and_the_log_say_which_token_acted_and_no_secret_leaks_anywhere(
    tmp_path: Path, iris_a: Any, iris_b: Any
) -> None:
    store = two_models(tmp_path / "models", iris_a, iris_b)
    b = store.status(IN).to_dict()["current"]
    c = publish(store, iris_b, IN)
    file = tmp_path / "tokens.json"
    alice, alice_entry = tokens.create(file, "oncall-alice", "rollback")
    ci, ci_entry = tokens.create(file, "ci", "deploy", models=["churn*"])
    expired, expired_entry = tokens.create(file, "old", "admin", expires=tokens.parse_expiry("2020-01-01"))
    env = {
        "MODELSWAP_TOKENS_FILE": str(file),
        "MODELSWAP_PROTECT_READS": "1",
        "MODELSWAP_AUTH_FAILURES_PER_MINUTE": "5",
    }
    answers: list[str] = []
    with serve(store.root, env=env) as server:
        with server.client(ci) as client:
            answers.append(client.post(f"/v1/models/{IN}/deploy", json={"version": c}).text)
        with server.client(alice) as client:
            refused = client.post(f"/v1/models/{IN}/deploy", json={"version": b})
            assert refused.status_code == 403
            answers.append(refused.text)
            answers.append(client.post(f"/v1/models/{IN}/rollback", json={"reason": "3 a.m."}).text)
            history = client.get(f"/v1/models/{IN}/history").json()["history"]
            answers.append(json.dumps(history))
        with server.client(expired) as client:
            stale = client.get(f"/v1/models/{IN}")
            assert stale.status_code == 401 and "token 'old' expired at 2020-01-01" in stale.json()["error"]["message"]
            answers.append(stale.text)
        # the CLI through the server: a refusal is one line naming the role
        denied = cli("deploy", IN, c, "--url", server.url, env={"MODELSWAP_TOKEN": alice})
        assert denied.returncode == 1 and denied.stderr.count("\n") == 1
        assert "this needs the 'deploy' role: token 'oncall-alice' has 'rollback'" in denied.stderr
        # brute force: the fifth failure (the expired token was the first) locks the address
        # out for wrong tokens; a right one from the same address (others behind the same
        # proxy) still passes
        with server.client("msw_guess") as guess:
            statuses = [guess.get(f"/v1/models/{IN}").status_code for _ in range(5)]
            locked = guess.get(f"/v1/models/{IN}")
        assert statuses == [401] * 4 + [429]
        assert locked.status_code == 429 and 55 <= int(locked.headers["retry-after"]) <= 60
        assert call(server, alice, "GET", f"/v1/models/{IN}").status_code == 200
        answers.append(locked.text)
        assert call(server, None, "GET", "/healthz").status_code == 200  # open routes stay open
        metrics = call(server, None, "GET", "/metrics").text
        log = server.output()
    actions = [(e["action"], e["actor"]) for e in history[:2]]
    assert actions == [("rollback", "token:oncall-alice"), ("deploy", "token:ci")]
    assert f"POST /v1/models/{IN}/rollback -> 200 by token:oncall-alice" in log
    assert 'modelswap_auth_failures_total{reason="blocked"}' in metrics
    assert re.search(r'modelswap_auth_failures_total\{reason="forbidden"\} [1-9]', metrics)
    secrets = [alice, ci, expired, alice_entry.sha256, ci_entry.sha256, expired_entry.sha256, "msw_guess"]
    stored = "".join(p.read_text(errors="replace") for p in store.root.rglob("*.jsonl"))
    for secret in secrets:
        for where, text in (("log", log), ("metrics", metrics), ("history", stored), ("answers", "".join(answers))):
            assert secret not in text, f"a token or hash in the {where}"


def test_a_pickle_upload_needs_the_admin_role_where_the_server_takes_pickles(
    tmp_path: Path, iris_a: Any, iris_b: Any, iris_file: Path
) -> None:
    store = two_models(tmp_path / "models", iris_a, iris_b)
    file = tmp_path / "tokens.json"
    deployer, _ = tokens.create(file, "ci", "deploy")
    admin, _ = tokens.create(file, "root", "admin")
    env = {"MODELSWAP_TOKENS_FILE": str(file), "MODELSWAP_ALLOW_PICKLE_UPLOADS": "1"}
    with serve(store.root, env=env) as server:
        before = store.registry(IN).ids()
        for token, expected in ((deployer, 403), (admin, 201)):
            with server.client(token) as client, open(iris_file, "rb") as handle:
                answer = client.post(f"/v1/models/{IN}/versions", files={"model": ("iris.joblib", handle)})
            assert answer.status_code == expected, answer.text
            if expected == 403:
                assert "needs the 'admin' role" in answer.json()["error"]["message"]
                assert store.registry(IN).ids() == before  # the refused upload left nothing
    assert len(store.registry(IN).ids()) == len(before) + 1


def test_the_route_table_of_the_docs_gives_each_route_the_role_it_is_served_with() -> None:
    documented: dict[tuple[str, str], str] = {}
    text = (ROOT / "docs" / "http-api.md").read_text()
    text = text[text.index("## Route table") : text.index("## Inference")]
    for method, path, role in re.findall(r"^\| `([A-Z]+) (/[^`]*)` \| ([a-z]+)[^|]*\|", text, flags=re.M):
        documented[(method, path)] = role
    served = {
        (method, route.path): getattr(route.endpoint, "role", None) or "none"
        for route in ROUTES
        for method in (route.methods or set()) - {"HEAD"}
    }
    assert documented == served


def test_a_rollback_token_goes_back_only_to_a_version_that_was_live_and_sees_nothing_of_other_models(
    tmp_path: Path, iris_a: Any, iris_b: Any
) -> None:
    store = two_models(tmp_path / "models", iris_a, iris_b)
    earlier = store.current(IN)
    later = publish(store, iris_b, IN)
    store.deploy(IN, later)
    never = publish(store, iris_a, IN)  # published, never live
    file = tmp_path / "tokens.json"
    alice, _ = tokens.create(file, "oncall-alice", "rollback", models=["churn*"])
    fraud_id = store.registry(OUT).get(store.current(OUT)).model_id
    env = {"MODELSWAP_TOKENS_FILE": str(file), "MODELSWAP_PROTECT_READS": "1"}
    with serve(store.root, env=env) as server, server.client(alice) as client:
        refused = client.post(f"/v1/models/{IN}/rollback", json={"to": never})
        assert refused.status_code == 403 and "was never live" in refused.json()["error"]["message"]
        assert store.current(IN) == later  # the refused move changed nothing
        back = client.post(f"/v1/models/{IN}/rollback", json={"to": earlier})
        assert back.status_code == 200 and store.current(IN) == earlier
        # an id of a model the token does not cover answers as an id that names nothing
        hidden = client.get(f"/v1/model-ids/{fraud_id}")
        unknown = client.get("/v1/model-ids/m-" + "0" * 32)
        assert (hidden.status_code, hidden.json()["error"]["code"]) == (404, "not_found")
        assert unknown.status_code == 404 and "fraud" not in hidden.text
        assert client.get(f"/v2/models/{OUT}").status_code == 403  # v2 metadata reads are reads
