"""The closed loop with a real Prometheus and a real Alertmanager (Debian's packages, which
scripts/test installs when missing), all on 127.0.0.1 with short intervals:

shifted traffic makes the shipped drift rule fire (its expression as shipped, only ``for:``
shortened); Alertmanager, configured with the shipped route and receiver, calls the
webhook; the policy's on_alert rule starts the retrain job; the job publishes; the policy
shadows, rolls out and promotes the new version; history holds the whole chain; a second
notification inside the cool-down starts nothing."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from modelswap.core.access import tokens
from modelswap.core.store import history
from modelswap.core.store.store import Store
from modelswap.core.training.fit import retrain
from tests.api.http.test_delivery import FAST, X_IRIS
from tests.conftest import ROOT
from tests.server import Server, free_port, serve, stop, wait_for

PROMETHEUS, ALERTMANAGER = shutil.which("prometheus"), shutil.which("prometheus-alertmanager")
DRIFT_ALERTS = ("ModelswapFeatureDrift", "ModelswapPredictionDrift")
POLICY = {
    "gate": {"metric": "accuracy", "max_drop": 0.1},
    "shadow": {"seconds": 1.0, "min_requests": 20, "min_agreement": 0.6},
    # on inputs moved off the training data two fits on other splits agree on ~90 % of rows (PSI ~0.2):
    # this policy accepts that; the gates' own limits are tested in test_policy.py and test_driver.py
    "rollout": {"steps": [50, 100], "step_seconds": 1.0, "min_requests": 10,
                "gates": {"max_latency_ratio": None, "min_agreement": 0.6, "max_psi": 0.6}},
    "on_alert": {"alerts": list(DRIFT_ALERTS), "min_severity": "warning", "cooldown_seconds": 3600,
                 "retrain": {"dataset": "iris", "estimator": "logreg", "seed": 1}},
}  # fmt: skip


def shipped_rules(tmp_path: Path) -> Path:
    """The shipped drift rules, expressions untouched, ``for:`` cut to one second."""
    shipped = yaml.safe_load((ROOT / "k8s" / "monitoring" / "alerts.yaml").read_text())
    rules = [dict(r, **{"for": "1s"}) for r in shipped["groups"][0]["rules"] if r.get("alert") in DRIFT_ALERTS]
    assert len(rules) == 2 and all(">= 0.25" in r["expr"] for r in rules)
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "modelswap", "interval": "1s", "rules": rules}]}))
    return path


def shipped_alertmanager(tmp_path: Path, server: Server, token: str) -> Path:
    """The shipped route and receiver, pointed at this server, with short group timings."""
    config = yaml.safe_load((ROOT / "k8s" / "monitoring" / "alertmanager.yaml").read_text())
    (route,) = config["route"]["routes"]
    route.update(group_wait="1s", group_interval="1s", repeat_interval="2s")
    (hook,) = next(r for r in config["receivers"] if r["name"] == route["receiver"])["webhook_configs"]
    secret = tmp_path / "token"
    secret.write_text(token)
    hook["url"] = f"{server.url}/v1/alertmanager"
    hook["http_config"]["authorization"]["credentials_file"] = str(secret)
    path = tmp_path / "alertmanager.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def process(args: list[str], log: Path, ready: str) -> Iterator[str]:
    """Run ``args`` (a listener on a free port, named by ``{port}``) until the block ends."""
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([a.format(port=port) for a in args], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        up = wait_for(lambda: _ok(url + ready) or proc.poll() is not None, timeout=30, interval=0.1)
        assert up and proc.poll() is None, log.read_text(errors="replace")
        yield url
    finally:
        stop(proc)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


class ShiftedTraffic:
    """Iris rows with sepal length moved 2 cm up: the inputs drift from the training data."""

    def __init__(self, server: Server) -> None:
        self.server, self._stop = server, threading.Event()
        self._thread = threading.Thread(target=self._run, name="shifted-traffic")

    def _run(self) -> None:
        rng = random.Random(11)
        with self.server.client() as client:
            while not self._stop.is_set():
                row = [float(v) for v in X_IRIS[rng.randrange(len(X_IRIS))]]
                row[0] += 2.0
                try:
                    client.post("/v1/models/iris/predict", json={"instances": [row]},
                                headers={"X-Routing-Key": str(rng.getrandbits(32))})  # fmt: skip
                except httpx.TransportError:
                    time.sleep(0.05)

    def __enter__(self) -> ShiftedTraffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def counted(server: Server, outcome: str) -> float:
    with server.client() as client:
        text = client.get("/metrics").text
    found = re.search(rf'^modelswap_alertmanager_alerts_total{{outcome="{outcome}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_drift_alert_retrains_and_the_policy_rolls_the_new_version_out_with_no_person_in_the_loop(
    tmp_path: Path,
) -> None:
    assert PROMETHEUS and ALERTMANAGER, "scripts/test installs Debian's prometheus and prometheus-alertmanager"
    store = Store(tmp_path / "models")
    first = retrain(store, "iris", dataset="iris", estimator="logreg", deploy=True, actor="test")
    file = tmp_path / "tokens.json"
    hook_token, _ = tokens.create(file, "alertmanager", "deploy")
    env = {**FAST, "MODELSWAP_TOKENS_FILE": str(file)}
    with serve(store.root, env=env) as server:
        with server.admin() as admin:
            assert admin.put("/v1/models/iris/policy", json=POLICY).status_code == 200
        am_args = [ALERTMANAGER, f"--config.file={shipped_alertmanager(tmp_path, server, hook_token)}",
                   f"--storage.path={tmp_path / 'am'}", "--web.listen-address=127.0.0.1:{port}",
                   "--cluster.listen-address="]  # fmt: skip
        with process([str(a) for a in am_args], tmp_path / "am.log", "/-/ready") as am:
            prom_config = tmp_path / "prometheus.yaml"
            prom_config.write_text(yaml.safe_dump({
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(shipped_rules(tmp_path))],
                "scrape_configs": [{"job_name": "modelswap",
                                    "static_configs": [{"targets": [server.url.removeprefix("http://")]}]}],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am.removeprefix("http://")]}]}]},
            }))  # fmt: skip
            prom_args = [PROMETHEUS, f"--config.file={prom_config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                         "--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
            with process([str(a) for a in prom_args], tmp_path / "prom.log", "/-/ready"), ShiftedTraffic(server):
                retrained = wait_for(lambda: _newest(store, history.ALERT_RETRAIN), timeout=60, interval=0.2)
                assert retrained, (tmp_path / "am.log").read_text()[-2000:]
                promoted = wait_for(lambda: (c := server.get_json("/v1/models/iris/policy")["candidate"])
                                    and c["state"] != "running" and c, timeout=60, interval=0.2)  # fmt: skip
                assert promoted and promoted["state"] == "promoted", (promoted or {}).get("reason")
                before = counted(server, "cooldown")
                again = wait_for(lambda: counted(server, "cooldown") > before, timeout=30, interval=0.2)
                assert again  # Alertmanager notified again (repeat, or the new version's drift): nothing started
        jobs = sorted((store.root / ".jobs").glob("*.json"))
    entries = [e for _, e in history.newest_first(store.paths("iris").history)][::-1]
    chain = [e.action for e in entries if e.actor == "policy" or e.action == history.PUBLISH]
    start = chain.index(history.ALERT_RETRAIN)
    assert chain[start:start + 4] == [history.ALERT_RETRAIN, history.PUBLISH, history.POLICY_STAGE,
                                      history.POLICY_PASS]  # fmt: skip
    assert chain[-1] == history.POLICY_PASS and chain.count(history.ALERT_RETRAIN) == 1
    alert = next(e for e in entries if e.action == history.ALERT_RETRAIN)
    assert alert.details["alert"] in DRIFT_ALERTS and alert.details["labels"]["model"] == "iris"
    assert "PSI" in alert.details["annotations"]["summary"] and alert.details["caller"] == "token:alertmanager"
    assert len(jobs) == 1 and alert.details["job"] == jobs[0].stem
    published = next(e for e in entries if e.action == history.PUBLISH and e.to_version != first.version)
    assert published.actor.startswith("retrain:") and store.current("iris") == published.to_version
    assert promoted["version"] == published.to_version
    assert [s["stage"] for s in promoted["stages"]] == ["gate", "shadow", "rollout"]


def _newest(store: Store, action: str) -> Any:
    return history.last(store.paths("iris").history, frozenset({action}))
