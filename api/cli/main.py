"""The ``modelswap`` command: works on the store directly (``--root``) or, for
the commands that say so, through a running server (``--url``).

Exit status: 0 success, 1 an error (one line on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from modelswap.core.errors import InvalidInput, ModelswapError
from modelswap.core.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], tuple[Any, str]]


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    env = dict(os.environ if environ is None else environ)
    try:
        settings = Settings.from_env(env)
        if getattr(args, "root", None):
            settings = settings.with_root(Path(args.root))
        if getattr(args, "url", None):
            settings = replace(settings, url=args.url)
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        data, text = args.handler(args, settings)
    except ModelswapError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=str))
    elif text:
        print(text)
    return _exit_code(data)


def _exit_code(data: Any) -> int:
    if isinstance(data, dict) and data.get("ok") is False:
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # Accepted before or after the command; SUPPRESS keeps a sub-command from
    # resetting a value given before it.
    common.add_argument("--root", default=argparse.SUPPRESS, help="store root (default: MODELSWAP_ROOT or ./models)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print machine-readable JSON")
    common.add_argument("--url", default=argparse.SUPPRESS, help="act through this server (default: MODELSWAP_URL)")

    parser = argparse.ArgumentParser(
        prog="modelswap", description="Filesystem-versioned model store with atomic hot-swap."
    )
    parser.add_argument("--root", help="store root (default: MODELSWAP_ROOT or ./models)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--url", help="act through this server, sending MODELSWAP_ADMIN_TOKEN (default: MODELSWAP_URL)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    from modelswap.api.cli import commands as cli_store

    p = command("train", cli_store.cmd_train, "train a model on a dataset, evaluate, publish")
    p.add_argument("model")
    p.add_argument("--dataset", default="iris", help="iris|wine|breast_cancer|digits|csv:PATH")
    p.add_argument("--target", help="target column of a csv dataset")
    p.add_argument("--estimator", default="logreg", help="logreg|random_forest|gradient_boosting|knn|decision_tree")
    p.add_argument("--seed", type=int, default=0)
    policy = p.add_mutually_exclusive_group()
    policy.add_argument("--deploy", action="store_true", help="deploy the new version")
    policy.add_argument("--deploy-if-better", metavar="METRIC", help="deploy only if METRIC beats the live version")

    p = command("publish", cli_store.cmd_publish, "publish a joblib file as a new version")
    p.add_argument("model")
    p.add_argument("file", type=Path)
    p.add_argument("--metrics", type=Path, help="JSON file of evaluation metrics")
    p.add_argument("--example", type=Path, help="JSON file with a few input rows to validate with")
    p.add_argument("--tag", action="append", default=[], metavar="K=V")
    p.add_argument("--description", default="")
    p.add_argument("--deploy", action="store_true")

    command("models", cli_store.cmd_models, "every model: current, canary, number of versions")

    p = command("versions", cli_store.cmd_versions, "a model's versions with metrics and status")
    p.add_argument("model")
    p.add_argument("--sort", metavar="METRIC", help="sort by a metric, best first")

    p = command("best", cli_store.cmd_best, "the version with the best value of a metric")
    p.add_argument("model")
    p.add_argument("--metric", required=True)
    p.add_argument("--lower-is-better", action="store_true")

    p = command(
        "status", cli_store.cmd_status, "current, canary, previous (and the fleet, with --url or a running server)"
    )
    p.add_argument("model")

    p = command("history", cli_store.cmd_history, "deploy history, newest first")
    p.add_argument("model")
    p.add_argument("--limit", type=int, default=50)

    p = command("deploy", cli_store.cmd_deploy, "validate a version and make it live")
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--reason", default="")

    p = command("rollback", cli_store.cmd_rollback, "go back to the previous live version (or --to one)")
    p.add_argument("model")
    p.add_argument("--to", dest="to")
    p.add_argument("--reason", default="")

    p = command("gc", cli_store.cmd_gc, "delete all but the newest N versions (never live, canary or rollback target)")
    p.add_argument("model")
    p.add_argument("--keep", type=int, required=True)
    p.add_argument("--dry-run", action="store_true")

    p = command("canary", cli_store.cmd_canary, "A/B canary: start, status, stop, promote")
    p.add_argument("action", choices=["start", "status", "stop", "promote"])
    p.add_argument("model")
    p.add_argument("version", nargs="?")
    p.add_argument("--fraction", type=float, help="share of traffic for the canary, e.g. 0.1")
    p.add_argument("--max-error-rate", type=float, help="guard: stop the canary above this error rate")
    p.add_argument("--min-requests", type=int, default=200, help="guard: judge only after this many canary requests")
    p.add_argument("--reason", default="")

    p = command("verify", cli_store.cmd_verify, "check checksums, registry, symlink and leftovers; --repair mends")
    p.add_argument("model", nargs="?")
    p.add_argument("--repair", action="store_true")

    from modelswap.api.cli import serve as cli_serve

    cli_serve.add_commands(command)
    return parser


def parse_tags(pairs: Sequence[str]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--tag {pair!r}: expected KEY=VALUE")
        tags[key] = value
    return tags


if __name__ == "__main__":
    sys.exit(main())


def main_entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
