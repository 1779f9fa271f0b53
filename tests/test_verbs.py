"""Each admin verb and read view is declared once (core.verbs.VERBS) and every side agrees
with it: the routes, the OpenAPI document, modelswap.Client, the CLI's Backend protocol
and its Local and Remote implementations. A side with a verb the table lacks, or lacking
one the table gives it, fails here."""

from __future__ import annotations

import inspect

from modelswap.api.cli.backends import Backend, Local, Remote
from modelswap.api.client import Client
from modelswap.api.http.app import ROUTES
from modelswap.api.http.openapi import OPENAPI
from modelswap.core.operations import Operations
from modelswap.core.verbs import CLIENT_ELSEWHERE, INTERNAL, VERBS


def public_methods(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")}


def offered(side: str) -> set[str]:
    """The declared methods a side offers (``no_<side>`` unset)."""
    return {name for name, verb in VERBS.items() if getattr(verb, f"no_{side}") is None}


SERVED = {f"{m} {r.path}" for r in ROUTES for m in (r.methods or ()) if m != "HEAD"}
DOCUMENTED = {f"{m.upper()} {path}" for path, item in OPENAPI["paths"].items() for m in item}
# the routes that act, or read what only an actor may: a role beyond read and predict
ADMIN = {
    f"{m.upper()} {path}"
    for path, item in OPENAPI["paths"].items()
    for m, op in item.items()
    if op.get("x-modelswap-role") in ("rollback", "deploy", "admin")
}


def test_the_table_declares_every_public_method_of_operations_and_nothing_else() -> None:
    assert public_methods(Operations) - set(VERBS) - set(INTERNAL) == set(), "on Operations, not declared"
    assert (set(VERBS) | set(INTERNAL)) - public_methods(Operations) == set(), "declared, not on Operations"
    assert not set(VERBS) & set(INTERNAL)


def test_each_side_is_present_or_declared_absent_with_a_reason_never_both() -> None:
    for name, verb in VERBS.items():
        assert bool(verb.routes) != (verb.no_route is not None), name
        for reason in (verb.no_route, verb.no_client, verb.no_cli):
            assert reason is None or len(reason) > 20, (name, reason)
    assert all(len(reason) > 20 for reason in [*INTERNAL.values(), *CLIENT_ELSEWHERE.values()])


def test_every_declared_route_is_served_and_documented() -> None:
    declared = [route for verb in VERBS.values() for route in verb.routes]
    assert len(declared) == len(set(declared)), "a route declared for two methods"
    assert set(declared) - SERVED == set()
    assert set(declared) - DOCUMENTED == set()


def test_every_admin_route_is_an_operations_verb() -> None:
    """An admin endpoint that bypasses Operations escapes its metrics and its shared checks."""
    declared = {route for verb in VERBS.values() for route in verb.routes}
    assert ADMIN - declared == set()


def test_the_client_offers_exactly_the_declared_methods_and_its_own_few() -> None:
    client = public_methods(Client)
    assert offered("client") - client == set(), "declared for the Client, missing there"
    assert client - offered("client") - set(CLIENT_ELSEWHERE) == set(), "on the Client, not declared"
    assert set(CLIENT_ELSEWHERE) <= client
    assert not set(CLIENT_ELSEWHERE) & set(VERBS)


def test_the_backend_protocol_local_and_remote_offer_exactly_the_declared_methods() -> None:
    expected = offered("cli")
    for side in (Backend, Local, Remote):
        assert expected - public_methods(side) == set(), f"declared for the CLI, missing on {side.__name__}"
        assert public_methods(side) - expected == set(), f"on {side.__name__}, not declared for the CLI"
    for name in expected:
        backend = inspect.signature(getattr(Backend, name))
        assert inspect.signature(getattr(Local, name)) == backend, name
        assert inspect.signature(getattr(Remote, name)) == backend, name


def test_local_runs_each_through_the_operations_method_of_its_name() -> None:
    for name in offered("cli"):
        assert f"self.ops.{name}(" in inspect.getsource(getattr(Local, name)), name
