"""Three pods on one volume, simulated: three `modelswap serve` processes, each with its own
metrics dir and MODELSWAP_WATCH=poll, and a CronJob-like retrain process. Uses the
runbook's requests and commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, ROOT, StepClock, publish
from tests.server import TOKEN, serve, wait_for

INTERVAL = 0.5


def test_three_pods_converge_on_a_cronjob_deploy_and_a_rollback_sent_to_one_reaches_all(
    tmp_path: Path, iris_b: Any
) -> None:
    store = Store(tmp_path / "models", clock=StepClock())
    weak = publish(store, iris_b, metrics={"accuracy": 0.5})
    store.deploy("iris", weak)
    with ExitStack() as stack:
        pods = [
            stack.enter_context(
                serve(
                    store.root,
                    env={
                        "MODELSWAP_WATCH": "poll",
                        "MODELSWAP_POLL_INTERVAL": str(INTERVAL),
                        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / f"metrics-{i}"),
                    },
                )
            )
            for i in range(3)
        ]
        clients = [stack.enter_context(p.client()) for p in pods]

        def versions() -> set[str]:
            body = {"instances": [IRIS_ROW]}
            return {c.post("/v1/models/iris/predict", json=body).json()["version"] for c in clients}

        assert versions() == {weak}

        cron = subprocess.run(
            [sys.executable, "scripts/retrain.py", "iris", "--estimator", "random_forest"]
            + ["--deploy-if-better", "accuracy"],
            cwd=ROOT,
            env={**os.environ, "MODELSWAP_ROOT": str(store.root)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert cron.returncode == 0, cron.stderr
        outcome = json.loads(cron.stdout.strip().splitlines()[-1])
        new = outcome["version"]
        assert outcome["deployed"], outcome

        assert wait_for(lambda: versions() == {new}, INTERVAL + 5)
        summary = f"3/3 processes on {new}"
        assert wait_for(lambda: clients[0].get("/v1/models/iris/fleet").json()["summary"] == summary, 5)

        # the runbook's rollback: one request, to one pod
        rollback = clients[1].post("/v1/models/iris/rollback", headers={"Authorization": f"Bearer {TOKEN}"})
        assert rollback.status_code == 200 and rollback.json()["current"] == weak
        assert wait_for(lambda: versions() == {weak}, INTERVAL + 5)

        def status() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "modelswap", "status", "iris"],
                cwd=ROOT,
                env={**os.environ, "MODELSWAP_URL": pods[2].url, "MODELSWAP_ADMIN_TOKEN": TOKEN},
                capture_output=True,
                text=True,
                timeout=60,
            )

        # a pod swaps, then writes its heartbeat: the fleet view may trail a moment
        shown = wait_for(lambda: (out := status()).returncode == 0 and f"3/3 processes on {weak}" in out.stdout, 10)
        assert shown, status().stdout
        # each pod counts its own predictions in its own metrics dir
        for client in clients:
            text = client.get("/metrics").text
            assert 'modelswap_predictions_total{model="iris",outcome="success",variant="stable"' in text
