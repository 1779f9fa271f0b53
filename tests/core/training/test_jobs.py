"""Retrain jobs: a real job process trains, publishes and deploys into a real store."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from modelswap.core.store.history import PUBLISH, read_from
from modelswap.core.store.store import Store
from modelswap.core.training.jobs import FAILED, SUCCEEDED, Jobs, RetrainRequest
from tests.server import wait_for


def test_a_jobs_publish_and_deploy_are_recorded_as_the_retrain_job_and_the_job_keeps_who_started_it(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "models")
    jobs = Jobs(store.root)
    params = RetrainRequest.from_dict("iris", {"estimator": "decision_tree", "deploy": True})
    job = jobs.start(params, actor="api:127.0.0.1")

    def finished() -> dict[str, Any] | None:
        state = jobs.get(job.id)
        return state if state["state"] in (SUCCEEDED, FAILED) else None

    state = wait_for(finished, 120, interval=0.2)
    assert state and state["state"] == SUCCEEDED, state
    assert state["actor"] == "api:127.0.0.1"  # who asked for it
    retrain = f"retrain:{socket.gethostname()}"
    version = state["result"]["version"]
    deployed = store.history("iris")[0]
    assert (deployed.action, deployed.to_version, deployed.actor) == ("deploy", version, retrain)
    published = [e for _, e in read_from(store.paths("iris").history) if e.action == PUBLISH]
    assert [(e.to_version, e.actor) for e in published] == [(version, retrain)]
    assert any(f"(actor {retrain})" in line for line in state["log_tail"])
