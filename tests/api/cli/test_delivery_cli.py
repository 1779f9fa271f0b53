"""``modelswap shadow``, ``rollout``, ``watch`` and ``deploy --watch`` on the store, in real
CLI processes; what they write is what serving processes act on."""

from __future__ import annotations

import json
from pathlib import Path

from tests.api.cli.test_commands import ok_json, run


def test_shadow_rollout_and_watch_from_the_command_line(tmp_path: Path) -> None:
    root = tmp_path / "models"
    live = ok_json(root, "train", "iris", "--deploy")["version"]
    candidate = ok_json(root, "train", "iris", "--estimator", "decision_tree")["version"]

    started = ok_json(root, "shadow", "start", "iris", candidate, "--fraction", "0.25", "--reason", "try it")
    assert (started["version"], started["fraction"], started["live"]) == (candidate, 0.25, live)
    text = run(root, "shadow", "status", "iris")
    assert text.returncode == 0 and f"shadow {candidate} on 25% of live {live}" in text.stdout
    assert "compared 0 requests" in text.stdout
    stopped = ok_json(root, "shadow", "stop", "iris")
    assert (stopped["running"], stopped["stopped"], stopped["version"]) == (False, candidate, candidate)
    assert not (root / "iris" / "shadow.json").exists()

    bad = run(root, "rollout", "start", "iris", candidate, "--steps", "50,10")
    assert bad.returncode == 1 and "steps must be rising percentages" in bad.stderr
    gate = run(root, "rollout", "start", "iris", candidate, "--gate", "max_psy=1")
    assert gate.returncode == 1 and "unknown gate(s): max_psy" in gate.stderr
    state = ok_json(root, "rollout", "start", "iris", candidate, "--steps", "10,100", "--gate", "max_psi=null")
    assert (state["state"], state["step_percent"], state["gates"]["max_psi"]) == ("running", 10, None)
    assert json.loads((root / "iris" / "abtest.json").read_text())["fraction"] == 0.1
    assert ok_json(root, "rollout", "pause", "iris")["state"] == "paused"
    text = run(root, "rollout", "status", "iris")
    assert f"rollout of {candidate} paused at 10% (10% -> 100%)" in text.stdout
    assert ok_json(root, "rollout", "resume", "iris")["state"] == "running"
    aborted = ok_json(root, "rollout", "abort", "iris", "--reason", "not today")
    assert (aborted["state"], aborted["ended"]) == ("aborted", "not today")
    assert not (root / "iris" / "abtest.json").exists()

    deployed = ok_json(root, "deploy", "iris", candidate, "--watch", "600", "--max-error-rate", "0.05")
    assert deployed["current"] == candidate and deployed["watch"]["max_error_rate"] == 0.05
    watch = ok_json(root, "watch", "status", "iris")
    assert (watch["state"], watch["version"], watch["previous"]) == ("watching", candidate, live)
    assert ok_json(root, "watch", "reset", "iris")["state"] == "reset"
    needs = run(root, "deploy", "iris", live, "--max-error-rate", "0.1")
    assert needs.returncode == 1 and "need 'watch'" in needs.stderr
    actions = [e["action"] for e in ok_json(root, "history", "iris")]
    assert actions[:3] == ["watch_reset", "deploy", "rollout_abort"]
    assert {"shadow_start", "shadow_stop", "rollout_start", "rollout_pause", "rollout_resume"} <= set(actions)
