#!/usr/bin/env python3
"""The retraining job (what the Kubernetes CronJob runs): train, evaluate, publish,
and optionally deploy when a named metric beats the live version.

    python scripts/retrain.py iris --dataset iris --estimator random_forest --deploy-if-better accuracy

Prints one JSON object (model, version, metrics, deployed, reason); exit 1 on error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.errors import ModelswapError  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.store import Store  # noqa: E402
from core.training import DATASETS, ESTIMATORS, retrain  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--root", help="store root (default: MODELSWAP_ROOT or ./models)")
    parser.add_argument("--dataset", default="iris", help="|".join(DATASETS) + "|csv:PATH")
    parser.add_argument("--target", help="target column of a csv dataset")
    parser.add_argument("--estimator", default="logreg", help="|".join(ESTIMATORS))
    parser.add_argument("--seed", type=int, default=0)
    policy = parser.add_mutually_exclusive_group()
    policy.add_argument("--deploy", action="store_true")
    policy.add_argument("--deploy-if-better", metavar="METRIC")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env(os.environ)
        root = Path(args.root) if args.root else settings.root
        store = Store(root, lock_timeout=settings.lock_timeout, strict_versions=settings.strict_versions)
        outcome = retrain(
            store,
            args.model,
            dataset=args.dataset,
            target=args.target,
            estimator=args.estimator,
            deploy=args.deploy,
            deploy_if_better=args.deploy_if_better,
            actor=os.environ.get("MODELSWAP_ACTOR") or f"retrain:{socket.gethostname()}",
            seed=args.seed,
        )
    except ModelswapError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps(outcome.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
