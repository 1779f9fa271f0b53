"""A separate process that drives the store, for crash and concurrency tests.

python -m tests.store_worker ROOT MODEL_FILE churn        # publish/deploy/rollback until killed
python -m tests.store_worker ROOT MODEL_FILE publish N     # publish and deploy N versions, then exit
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import joblib

from modelswap.core.errors import Conflict, NothingToRollBack
from modelswap.core.store.store import Store

ROW = [[6.0, 2.9, 4.5, 1.5]]


def main() -> None:
    root, model_file, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    store = Store(root, lock_timeout=60, lock_kind=os.environ.get("MODELSWAP_LOCK", "flock"))
    joblib.load(model_file)  # pay the scikit-learn import before saying ready
    print("ready", flush=True)
    if mode == "churn":
        step = 0
        while True:
            step += 1
            version = store.publish("iris", model_file, example=ROW, metrics={"step": step}).id
            store.deploy("iris", version, actor="churn")
            if step % 2 == 0:
                try:
                    store.rollback("iris", actor="churn")
                except (NothingToRollBack, Conflict):
                    pass
            if step % 5 == 0:
                store.gc("iris", keep=3, actor="churn")
    elif mode == "publish":
        for i in range(int(sys.argv[4])):
            version = store.publish("iris", model_file, example=ROW, metrics={"i": i}).id
            store.deploy("iris", version, actor=f"worker-{sys.argv[5] if len(sys.argv) > 5 else 0}")
            print(version, flush=True)


if __name__ == "__main__":
    main()
