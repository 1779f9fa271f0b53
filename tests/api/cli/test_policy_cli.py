"""``modelswap policy`` as a user runs it, on the store and through a server: set from a
file, a bad file refused naming the field, show, clear."""

from __future__ import annotations

import json
from pathlib import Path

from modelswap.core.store import history
from modelswap.core.store.store import Store
from tests.api.cli.test_commands import ok_json, run
from tests.server import TOKEN, serve

POLICY = {"gate": {"metric": "accuracy", "max_drop": 0.01}, "shadow": {"seconds": 60, "min_requests": 50}}


def test_policy_set_show_clear_on_the_store_and_through_a_server(tmp_path: Path) -> None:
    root = tmp_path / "models"
    first = ok_json(root, "train", "iris", "--deploy")
    policy, bad, listed = tmp_path / "policy.json", tmp_path / "bad.json", tmp_path / "list.json"
    policy.write_text(json.dumps(POLICY))
    bad.write_text(json.dumps({"shadow": {"seconds": -1}}))
    listed.write_text("[]")
    refused = run(root, "policy", "set", "iris", str(bad))
    assert refused.returncode == 1 and "shadow.seconds must be a number" in refused.stderr
    assert "must hold a policy object" in run(root, "policy", "set", "iris", str(listed)).stderr
    view = ok_json(root, "policy", "set", "iris", str(policy), "--reason", "gates first")
    assert view["policy"]["gate"] == POLICY["gate"] and view["policy"]["shadow"]["min_agreement"] == 0.95
    second = ok_json(root, "train", "iris", "--estimator", "knn", "--deploy")
    assert not second["deployed"] and "delivery policy decides" in second["reason"]
    text = run(root, "policy", "show", "iris").stdout
    assert f"live {first['version']}" in text and '"metric": "accuracy"' in text
    with serve(root) as server:
        env = {"MODELSWAP_URL": server.url, "MODELSWAP_TOKEN": TOKEN}
        remote = run(root, "policy", "show", "iris", "--json", env=env)
        assert remote.returncode == 0, remote.stderr
        assert json.loads(remote.stdout)["policy"]["gate"] == POLICY["gate"]
        cleared = run(root, "policy", "clear", "iris", "--reason", "by hand again", "--json", env=env)
        assert cleared.returncode == 0 and json.loads(cleared.stdout)["policy"] is None
    again = run(root, "policy", "clear", "iris")
    assert again.returncode == 1 and "has no delivery policy" in again.stderr
    actions = [e for _, e in history.newest_first(Store(root).paths("iris").history)]
    cleared_entry, set_entry = (e for e in actions if e.action in (history.POLICY_SET, history.POLICY_CLEAR))
    assert (cleared_entry.actor, cleared_entry.reason) == ("token:admin", "by hand again")
    assert set_entry.reason == "gates first" and set_entry.actor.startswith("cli:")
