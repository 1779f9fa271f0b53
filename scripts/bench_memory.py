#!/usr/bin/env python3
"""Memory across workers: RSS and PSS of N workers serving one big model, arrays shared or not.

    python scripts/bench_memory.py [--workers 4] [--array-mb 400] [--forest-mb 100]

Two models: an array-heavy one (a brute-force KNeighborsClassifier whose training matrix
is ``--array-mb``) and a RandomForest grown to about ``--forest-mb``. Each is served by
``modelswap serve --workers N`` twice, with MODELSWAP_SHARE_MEMORY=1 (the default: a
joblib file's arrays memory-mapped copy-on-write from the immutable version file) and
=0 (read into each worker's own memory); one predict per worker first, so every worker
has touched its model. Printed per run: the model file's size, RSS and PSS summed over
every process of the server (the workers and their supervisor; ``/proc/<pid>/smaps_rollup``:
PSS splits each shared page between the processes that map it, so the sum is what the
node really holds), and PSS as a multiple of one copy of the file. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import ROOT, free_port, http, modelswap, session_memory

sys.path.insert(0, str(ROOT))


def array_model(mb: int) -> tuple[Any, np.ndarray]:
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    rows = mb * 1024 * 1024 // (32 * 8)
    X = rng.standard_normal((rows, 32))
    y = rng.integers(0, 3, rows)
    return KNeighborsClassifier(n_neighbors=3, algorithm="brute").fit(X, y), X[:2]


def forest_model(mb: int) -> tuple[Any, np.ndarray]:
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    # measured: a tree grown on this noise takes about 28 bytes of the saved file per training row
    trees = 20
    rows = max(1000, mb * 1024 * 1024 // (trees * 28))
    X = rng.standard_normal((rows, 16))
    y = rng.integers(0, 2, rows)
    return RandomForestClassifier(n_estimators=trees, n_jobs=2, random_state=0).fit(X, y), X[:2]


def measure(root: Path, workers: int, share: bool, row: list[float]) -> tuple[float, float, int]:
    port = free_port()
    env = {"MODELSWAP_SHARE_MEMORY": "1" if share else "0", "MODELSWAP_PREDICTION_LOG": "off"}
    with modelswap(root, port, workers=workers, env=env) as proc:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status, fleet = http("GET", f"{url}/v1/models/big/fleet")
            if status == 200 and len(fleet["processes"]) == workers:
                break
            time.sleep(0.5)
        for _ in range(workers * 8):  # fresh connections: every worker predicts at least once
            http("POST", f"{url}/v1/models/big/predict", {"instances": [row]})
        return session_memory(proc.pid)


def run(name: str, estimator: Any, example: np.ndarray, workers: int) -> None:
    from modelswap.core.store.store import Store

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        store = Store(Path(tmp))
        version = store.publish("big", estimator, example=example)
        store.deploy("big", version.id)
        size = (store.paths("big").version_dir(version.id) / "model.joblib").stat().st_size
        mib = 1024 * 1024
        print(f"{name}: model file {size / mib:.0f} MiB, {workers} workers")
        for share in (True, False):
            rss, pss, processes = measure(Path(tmp), workers, share, example[0].tolist())
            label = "shared (mmap)" if share else "private copy "
            print(
                f"  {label}  {processes} processes  RSS {rss:7.0f} MiB  PSS {pss:7.0f} MiB"
                f"  PSS / file {pss * mib / size:5.2f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4, help="worker processes")
    parser.add_argument("--array-mb", type=int, default=400, help="size of the KNN's training matrix")
    parser.add_argument("--forest-mb", type=int, default=100, help="rough size of the forest (0: skip)")
    args = parser.parse_args()
    run("brute-force KNN (arrays)", *array_model(args.array_mb), args.workers)
    if args.forest_mb:
        run("random forest (trees)", *forest_model(args.forest_mb), args.workers)


if __name__ == "__main__":
    main()
