"""A serving process's view of the tokens: reloads on change, refuses revoked, expired
and unknown tokens, fails closed on a broken file; the admin token kept from before."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from modelswap.core.access import tokens
from modelswap.core.access.keyring import Keyring, last_uses
from modelswap.core.errors import TokenExpired, TokensUnreadable, Unauthorized
from modelswap.core.store.clock import utcnow


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_token_is_known_by_name_role_and_models_and_revocation_takes_one_recheck(tmp_path: Path) -> None:
    path, clock = tmp_path / "tokens.json", Clock()
    alice, _ = tokens.create(path, "oncall-alice", "rollback", models=["churn*"])
    ring = Keyring(admin_token=None, tokens_file=path, use_dir=tmp_path / "use", recheck_s=1.0, clock=clock)
    who = ring.identify(alice)
    assert (who.name, who.role, who.actor) == ("oncall-alice", "rollback", "token:oncall-alice")
    assert who.allows("predict") and who.allows("rollback") and not who.allows("deploy")
    assert who.covers("churn") and not who.covers("fraud")
    assert "oncall-alice" in last_uses(tmp_path / "use")

    tokens.revoke(path, "oncall-alice")
    bob, _ = tokens.create(path, "bob", "deploy")
    clock.now += 0.5
    assert ring.identify(alice).name == "oncall-alice"  # not looked at again yet
    clock.now += 0.6
    with pytest.raises(Unauthorized, match="wrong token"):
        ring.identify(alice)
    assert ring.identify(bob).role == "deploy"  # rotation: the new token works, no restart


def test_an_expired_token_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    token, _ = tokens.create(path, "temp", "read", expires=utcnow() + timedelta(hours=1))
    ring = Keyring(admin_token=None, tokens_file=path)
    assert ring.identify(token).name == "temp"
    with pytest.raises(TokenExpired, match="token 'temp' expired at"):
        ring.identify(token, now=utcnow() + timedelta(hours=2))


def test_a_broken_file_refuses_its_tokens_until_fixed_and_the_admin_token_keeps_working(tmp_path: Path) -> None:
    path, clock = tmp_path / "tokens.json", Clock()
    token, _ = tokens.create(path, "a", "deploy")
    good = path.read_bytes()
    ring = Keyring(admin_token="the-admin-token", tokens_file=path, recheck_s=1.0, clock=clock)
    path.write_text('{"tokens": [')  # half-written by a hand edit
    clock.now += 2
    with pytest.raises(TokensUnreadable, match="not valid"):
        ring.identify(token)
    assert ring.identify("the-admin-token").name == "admin"
    path.write_bytes(good)
    os.utime(path, ns=(1, 1))  # a different mtime, as a fix would make
    clock.now += 2
    assert ring.identify(token).name == "a"


def test_a_broken_file_at_startup_stops_the_server_and_a_missing_one_holds_no_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    ring = Keyring(admin_token=None, tokens_file=path)
    assert not ring.configured
    with pytest.raises(Unauthorized):
        ring.identify("msw_anything")
    path.write_text("[]")
    with pytest.raises(TokensUnreadable):
        Keyring(admin_token=None, tokens_file=path)


def test_a_kubernetes_style_secret_swap_is_seen(tmp_path: Path) -> None:
    """A Secret volume updates by repointing a symlink (..data) at a new directory."""
    clock = Clock()
    first, second = tmp_path / "..2026_12_06_a", tmp_path / "..2026_12_06_b"
    first.mkdir()
    second.mkdir()
    old, _ = tokens.create(first / "tokens.json", "old", "read")
    new, _ = tokens.create(second / "tokens.json", "new", "read")
    (tmp_path / "..data").symlink_to(first.name)
    (tmp_path / "tokens.json").symlink_to("..data/tokens.json")
    ring = Keyring(admin_token=None, tokens_file=tmp_path / "tokens.json", recheck_s=1.0, clock=clock)
    assert ring.identify(old).name == "old"
    tmp = tmp_path / "..data_tmp"
    tmp.symlink_to(second.name)
    os.replace(tmp, tmp_path / "..data")
    clock.now += 2
    assert ring.identify(new).name == "new"
    with pytest.raises(Unauthorized):
        ring.identify(old)
