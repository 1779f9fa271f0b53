"""``modelswap monitor`` on the store: the counts serving processes left on the volume,
read by a real CLI process; thresholds set with --set."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris

from modelswap.core.monitoring.counts import Observation, Recorder
from modelswap.core.monitoring.fleet_counts import counts_path
from modelswap.core.monitoring.profiles import load_reference
from modelswap.core.store.fsio import atomic_write_json
from modelswap.core.store.store import Store
from tests.api.cli.test_commands import ok_json, run


def test_monitor_reads_the_fleets_counts_and_takes_thresholds(tmp_path: Path) -> None:
    root = tmp_path / "models"
    trained = ok_json(root, "train", "iris", "--deploy")
    store = Store(root)
    version = trained["version"]
    reference = load_reference(store.paths("iris").version_dir(version))
    assert reference is not None and reference.rows > 0  # train profiles its training split
    X = np.repeat(load_iris().data, 2, axis=0)
    X[:, 2] += 3  # petal length shifted: a served process saw this
    recorder = Recorder(lambda model, v: reference, bucket_seconds=60)
    recorder.observe(Observation("iris", version, "stable", X, np.full(len(X), 2), 0.001, time=time.time()))
    for _ in range(2):  # two malformed client requests: the clients' errors, not the model's
        recorder.failure("iris", version, "stable", "client")
    recorder.tick()
    store.paths("iris").monitor_dir.mkdir()
    atomic_write_json(counts_path(store.paths("iris"), "pod-a-7"), {"time": time.time(), **recorder.state("iris")})

    shifted = reference.features[2].name
    text = run(root, "monitor", "iris", env={"MODELSWAP_MONITOR_WINDOW": "300"})
    assert text.returncode == 0, text.stderr
    assert f"live {version}" in text.stdout and "counts from 1 process(es)" in text.stdout
    assert f"feature {shifted!r} drifted" in text.stdout and "WARNING" in text.stdout
    lines = text.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("VERSION"))
    header, row = lines[at], lines[at + 1]
    assert header.split()[:6] == ["VERSION", "VARIANT", "REQUESTS", "ERRORS", "4XX", "P99"]
    assert row.split()[2:6] == ["stable", "3", "0.0%", "66.7%"]
    view = ok_json(root, "monitor", "iris")
    [row] = view["versions"]
    assert row["window"]["rows"] == 300 and row["live"] is True
    assert (row["window"]["server_error_rate"], row["window"]["client_error_rate"]) == (0.0, 2 / 3)
    assert {d["feature"]: d["severity"] for d in row["window"]["drift"]["features"]}[shifted] == "warning"

    assert ok_json(root, "monitor", "iris", "--set", "psi_warning=100", "--set", "psi_info=50")["psi_warning"] == 100
    assert json.loads((root / "iris" / "monitor.json").read_text())["psi_info"] == 50
    calm = ok_json(root, "monitor", "iris")
    assert not [a for a in calm["alerts"] if a["kind"] == "feature_drift" and a["feature"] == shifted]
    bad = run(root, "monitor", "iris", "--set", "psi_warnin=1")
    assert bad.returncode == 1 and "psi_warnin" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert run(root, "monitor", "ghost").returncode == 1
    assert run(root, "monitor", "ghost", "--set", "psi_info=1").returncode == 1
    assert not (root / "ghost").exists()
    assert ok_json(root, "monitor", "iris", "--config")["psi_info"] == 50
