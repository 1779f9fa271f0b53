#!/usr/bin/env python3
"""Median time of the store's publish, deploy and rollback with 10, 1,000 and 10,000
versions in the registry, excluding the joblib dump and the validation load.

    python scripts/bench_store.py [--sizes 10,1000,10000] [--repeat 15]

"Excluding the dump" means publish is timed from a ready joblib file (a copy,
not a dump); "excluding the validation load" means deploy/rollback run with a
validator that does nothing, so the figures are the store's own bookkeeping:
lock, registry read/write with fsync, symlink swap.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import joblib  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from modelswap.core.store import history  # noqa: E402
from modelswap.core.store import registry as reg  # noqa: E402
from modelswap.core.store.clock import iso  # noqa: E402
from modelswap.core.store.store import Store  # noqa: E402


def seed_registry(store: Store, model_file: Path, n: int) -> list[str]:
    """Publish two real versions, then pad the index to n records and the journal to as
    many deploy entries."""
    real = [store.publish("iris", model_file, example=[[6.0, 2.9, 4.5, 1.5]]).id for _ in range(2)]
    store.deploy("iris", real[0])
    paths = store.paths("iris")
    registry = store.registry("iris")
    records = dict(registry.records)
    template = registry.get(real[0])
    assert template is not None
    start = datetime(2020, 1, 1, tzinfo=timezone.utc)
    entries = [e for _, e in history.read_from(paths.history)]
    for i in range(n - 2):
        vid = (start + timedelta(minutes=i)).strftime("%Y%m%d-%H%M%S") + f"-{i:06x}"
        records[vid] = {**template.to_dict(), "id": vid, "metrics": {"accuracy": 0.9 + i * 1e-6, "f1_macro": 0.9}}
        entries.insert(-1, reg.HistoryEntry(iso(start), "deploy", "bench", None, vid))
    history.write_all(paths.history, entries)
    reg.write_registry(paths.registry, reg.Registry("iris", records, history.size(paths.history)))
    return real


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def measure(root: Path, model_file: Path, a: str, b: str, repeat: int, *, warm: bool) -> list[float]:
    """Median ms of publish, deploy, rollback. warm: one long-lived Store (a server
    process, registry parsed once per change); cold: a new Store per operation (the CLI)."""
    long_lived = Store(root, validator=lambda paths, version: None)

    def store() -> Store:
        return long_lived if warm else Store(root, validator=lambda paths, version: None)

    example = [[6.0, 2.9, 4.5, 1.5]]
    publish, deploy, rollback = [], [], []
    for _ in range(repeat):
        publish.append(timed(lambda: store().publish("iris", model_file, example=example)))
        deploy.append(timed(lambda: store().deploy("iris", b if store().current("iris") == a else a)))
        rollback.append(timed(lambda: store().rollback("iris", to=a if store().current("iris") == b else b)))
    return [statistics.median(x) for x in (publish, deploy, rollback)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,1000,10000")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    data = load_iris()
    with tempfile.TemporaryDirectory() as tmp:
        model_file = Path(tmp) / "iris.joblib"
        joblib.dump(LogisticRegression(max_iter=1000).fit(data.data, data.target), model_file)
        header = ("versions", "mode", "publish ms", "deploy ms", "rollback ms", "versions.json", "history.jsonl")
        print("{:>9} {:>5} {:>11} {:>10} {:>12} {:>14} {:>14}".format(*header))
        for n in (int(s) for s in args.sizes.split(",")):
            root = Path(tmp) / f"s{n}"
            a, b = seed_registry(Store(root), model_file, n)
            for warm in (False, True):
                pub, dep, rol = measure(root, model_file, a, b, args.repeat, warm=warm)
                size = (root / "iris" / "versions.json").stat().st_size
                journal = (root / "iris" / "history.jsonl").stat().st_size
                mode = "warm" if warm else "cold"
                print(
                    f"{n:>9} {mode:>5} {pub:>11.1f} {dep:>10.1f} {rol:>12.1f} {size / 2**20:>10.1f} MiB"
                    f" {journal / 2**20:>10.1f} MiB"
                )
    print("publish includes copying the file, loading it and predicting the example once (the staged-version check).")
    print("cold = a new process's view (the CLI parses versions.json once per operation); warm = a server process.")


if __name__ == "__main__":
    main()
