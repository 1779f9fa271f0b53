"""The tokens file: create, revoke, parse; only hashes stored; concurrent writers lose nothing."""

from __future__ import annotations

import json
import multiprocessing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from modelswap.core.access import tokens
from modelswap.core.errors import Conflict, InvalidInput, NotFound, TokensUnreadable


def test_create_stores_only_the_hash_and_the_token_is_shown_once(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    token, entry = tokens.create(path, "oncall-alice", "rollback", models=["churn*"], expires=None)
    assert token.startswith("msw_") and len(token) > 40
    text = path.read_text()
    assert token not in text and tokens.hash_token(token) in text
    assert path.stat().st_mode & 0o777 == 0o600
    (read,) = tokens.read_entries(path)
    assert read == entry and read.role == "rollback" and read.models == ("churn*",)
    assert read.covers("churn") and read.covers("churn-eu") and not read.covers("fraud")
    with pytest.raises(Conflict, match="a token named 'oncall-alice' exists"):
        tokens.create(path, "oncall-alice", "read")
    assert len(tokens.read_entries(path)) == 1  # the refused create changed nothing


def test_revoke_removes_one_token_and_an_unknown_name_is_not_found(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    tokens.create(path, "a", "read")
    tokens.create(path, "b", "admin")
    assert tokens.revoke(path, "a").name == "a"
    assert [e.name for e in tokens.read_entries(path)] == ["b"]
    with pytest.raises(NotFound, match="no token named 'a'"):
        tokens.revoke(path, "a")


def test_expiry_takes_durations_and_iso_dates() -> None:
    now = datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc)
    assert tokens.parse_expiry("90d", now) == now + timedelta(days=90)
    assert tokens.parse_expiry("12h", now) == now + timedelta(hours=12)
    assert tokens.parse_expiry("2027-03-01", now) == datetime(2027, 3, 1, tzinfo=timezone.utc)
    with pytest.raises(InvalidInput, match="bad expiry 'soon'"):
        tokens.parse_expiry("soon", now)


@pytest.mark.parametrize(
    ("document", "fault"),
    [
        ("{not json", "not valid"),
        ('{"tokens": {}}', 'must be a JSON object {"tokens": [...]}'),
        ('{"tokens": [{"name": "a", "sha256": "xyz", "roles": ["read"]}]}', "64 lowercase hex"),
        ('{"tokens": [{"name": "a", "sha256": "' + "0" * 64 + '", "roles": ["root"]}]}', "unknown role 'root'"),
        ('{"tokens": [{"name": "a", "sha256": "' + "0" * 64 + '", "roles": ["read"], "x": 1}]}', "unknown field"),
        ('{"tokens": [{"name": "../a", "sha256": "' + "0" * 64 + '", "roles": ["read"]}]}', "bad token name"),
        (
            '{"tokens": [{"name": "a", "sha256": "' + "0" * 64 + '", "roles": ["read"]},'
            ' {"name": "b", "sha256": "' + "0" * 64 + '", "roles": ["read"]}]}',
            "appears twice",
        ),
    ],
)
def test_a_malformed_file_is_refused_naming_the_file_and_the_fault(tmp_path: Path, document: str, fault: str) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(document)
    with pytest.raises(TokensUnreadable) as caught:
        tokens.read_entries(path)
    assert str(path) in caught.value.message and fault in caught.value.message
    with pytest.raises(TokensUnreadable):
        tokens.create(path, "c", "read")  # nothing is written over a file it cannot read
    assert path.read_text() == document


def _create_many(path: str, prefix: str, count: int) -> None:
    for i in range(count):
        tokens.create(Path(path), f"{prefix}-{i}", "read")


def test_concurrent_creates_in_separate_processes_lose_no_token(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_create_many, args=(str(path), p, 15)) for p in ("x", "y", "z")]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    names = {e["name"] for e in json.loads(path.read_text())["tokens"]}
    assert names == {f"{p}-{i}" for p in "xyz" for i in range(15)}


def test_names_expiries_and_models_that_would_mislead_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    with pytest.raises(InvalidInput, match="the admin token's"):
        tokens.create(path, "admin", "rollback")  # history could not tell it from the admin token
    with pytest.raises(InvalidInput, match="too far ahead"):
        tokens.parse_expiry("999999w")
    with pytest.raises(InvalidInput, match="non-empty list"):
        tokens.create(path, "a", "read", models=[])
    digest = "0" * 64
    path.write_text(json.dumps({"tokens": [{"name": "a", "sha256": digest, "roles": ["read"], "expires": "90d"}]}))
    with pytest.raises(TokensUnreadable, match="bad expiry '90d'"):
        tokens.read_entries(path)  # in the file, a time: "90d" would never come


def test_rewriting_the_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    tokens.create(path, "a", "read")
    path.chmod(0o640)  # readable by the serving processes' group
    tokens.create(path, "b", "read")
    assert path.stat().st_mode & 0o777 == 0o640
