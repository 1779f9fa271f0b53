"""The ``modelswap`` command: works on the store directly (``--root``) or, for the
commands that can, through a running server (``--url``).

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

from modelswap.core.errors import ModelswapError
from modelswap.core.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], tuple[Any, str]]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default in its help line; descriptions keep their line breaks."""


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
        if getattr(args, "json", False):
            print(json.dumps(data, indent=2, default=str))
        elif text:
            print(text)
        sys.stdout.flush()
    except ModelswapError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`modelswap history iris | head`): nothing left to say.
        # Point stdout at /dev/null so the interpreter's final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 1 if isinstance(data, dict) and data.get("ok") is False else 0


def build_parser() -> argparse.ArgumentParser:
    # Options accepted before or after the command. SUPPRESS keeps a sub-command from
    # resetting a value given before it; commands that cannot use one do not list it.
    root = argparse.ArgumentParser(add_help=False)
    root.add_argument("--root", default=argparse.SUPPRESS, help="store root (default: MODELSWAP_ROOT, else ./models)")
    url = argparse.ArgumentParser(add_help=False)
    url.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help="act through this server, sending MODELSWAP_TOKEN, else MODELSWAP_ADMIN_TOKEN (default: MODELSWAP_URL)",
    )
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print machine-readable JSON")

    parser = argparse.ArgumentParser(
        prog="modelswap",
        description="Filesystem-versioned scikit-learn model store and server with atomic hot swap.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--root", help="store root (default: MODELSWAP_ROOT, else ./models)")
    parser.add_argument(
        "--url",
        help="act through this server, sending MODELSWAP_TOKEN, else MODELSWAP_ADMIN_TOKEN (default: MODELSWAP_URL)",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    where = [root, url, output]

    def command(
        name: str, handler: Handler, help_text: str, parents: list[argparse.ArgumentParser] | None = None
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            parents=where if parents is None else parents,
            help=help_text,
            description=help_text,
            formatter_class=HelpFormatter,
        )
        p.set_defaults(handler=handler)
        return p

    from modelswap.api.cli import batch, catalog, commands, delivery, monitor, policy, serve, tokens

    commands.add_commands(command, sub, where, HelpFormatter)
    catalog.add_commands(command, where, HelpFormatter)
    monitor.add_commands(command)
    delivery.add_commands(command, where, HelpFormatter)
    policy.add_commands(command, where, HelpFormatter)
    serve.add_commands(command, root)
    tokens.add_commands(command, root, HelpFormatter)
    batch.add_commands(command, root, output)
    return parser


def main_entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    main_entry()
