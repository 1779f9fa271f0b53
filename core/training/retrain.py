"""The retraining job's entry point (``python -m modelswap.core.training.retrain``; scripts/retrain.py wraps it):
train, evaluate on a held-out split, publish, and deploy as asked — or, for a model with a
delivery policy, leave that to the policy (core.delivery.policy).

``--policy FILE`` sets the model's delivery policy from a JSON file first (the CronJob's
ConfigMap; setting the same policy again changes nothing), or, for a model that does not
exist yet, right after its first version is published (nothing is live to judge that one
against). Prints one JSON object (model, version, metrics, deployed, reason) as its last
line; exit 1 on error. With ``--job-file`` it records progress and the outcome there.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from pathlib import Path

from modelswap.core.delivery.policy import Policy, set_policy
from modelswap.core.errors import InvalidInput, ModelswapError
from modelswap.core.settings import Settings
from modelswap.core.store.store import Store
from modelswap.core.training.fit import add_training_arguments, retrain, training_options
from modelswap.core.training.jobs import FAILED, RUNNING, SUCCEEDED, update_job


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retrain", description="train, evaluate, publish, optionally deploy")
    add_training_arguments(parser)
    parser.add_argument("--root", help="store root (default: MODELSWAP_ROOT or ./models)")
    parser.add_argument("--job-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--actor", help="who runs it, for the history (default: retrain:<host>)")
    parser.add_argument("--policy", type=Path, help="set the model's delivery policy from this JSON file first")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    job = args.job_file

    def progress(step: str) -> None:
        print(f"progress: {step}", flush=True)
        if job is not None:
            update_job(job, progress=step)

    if job is not None:
        update_job(job, state=RUNNING, pid=os.getpid(), host=socket.gethostname(), progress="starting")
    try:
        settings = Settings.from_env(os.environ)
        root = Path(args.root) if args.root else settings.root
        store = Store.from_settings(settings.with_root(root))
        actor = args.actor or f"retrain:{socket.gethostname()}"
        rules = _policy(args.model, args.policy) if args.policy else None
        existed = args.model in store.models()
        if rules is not None and existed:
            set_policy(store, args.model, rules, actor=actor, reason=f"retrain --policy {args.policy}")
        outcome = retrain(store, args.model, actor=actor, progress=progress, **training_options(args))
        if rules is not None and not existed:
            set_policy(store, args.model, rules, actor=actor, reason=f"retrain --policy {args.policy}")
    except ModelswapError as exc:
        print(f"error: {exc.message}", file=sys.stderr, flush=True)
        if job is not None:
            update_job(job, state=FAILED, error=exc.message, progress="failed")
        return 1
    except Exception as exc:  # the job must record its failure, whatever it was
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        if job is not None:
            update_job(job, state=FAILED, error=f"{type(exc).__name__}: {exc}", progress="failed")
        raise
    if job is not None:
        update_job(job, state=SUCCEEDED, result=outcome.to_dict(), progress="done")
    print(json.dumps(outcome.to_dict()), flush=True)
    return 0


def _policy(model: str, path: Path) -> object:
    """The policy file's rules, checked before anything is trained or published."""
    try:
        rules = json.loads(path.read_text())
    except OSError as exc:
        raise InvalidInput(f"--policy: cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--policy: {path} is not JSON: {exc}") from None
    try:
        Policy.from_dict(model, rules)
    except InvalidInput as exc:
        raise InvalidInput(f"--policy {path}: {exc.message}") from None
    return rules


if __name__ == "__main__":
    sys.exit(main())
