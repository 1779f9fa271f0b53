"""``modelswap`` commands that find and compare versions: show (by model id), lineage,
compare, and aliases."""

from __future__ import annotations

import argparse

from modelswap.api.cli import render
from modelswap.api.cli.backends import backend_for
from modelswap.api.cli.commands import Command, Result, needs_action
from modelswap.core.settings import Settings


def add_commands(
    command: Command, where: list[argparse.ArgumentParser], formatter: type[argparse.HelpFormatter]
) -> None:
    """Register show, lineage, compare and alias on the ``modelswap`` parser."""
    p = command("show", cmd_show, "the version a model id (m-...) names, wherever it is in the store")
    p.add_argument("model_id", metavar="ID", help="a model id, m- and 32 hex digits")

    p = command("lineage", cmd_lineage, "a version's ancestors (parents) and descendants")
    p.add_argument("model", help="model name")
    p.add_argument("version", help="version id or alias")

    p = command("compare", cmd_compare, "two versions side by side: metrics, input schema, size, libraries")
    p.add_argument("model", help="model name")
    p.add_argument("a", metavar="VERSION_A", help="version id or alias")
    p.add_argument("b", metavar="VERSION_B", help="version id or alias")

    alias = command("alias", needs_action, "named aliases for versions: set, delete, list", parents=[])
    alias_actions = alias.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, handler, help_text in (
        ("set", cmd_alias_set, "point ALIAS at a version (moving it if it exists)"),
        ("delete", cmd_alias_delete, "remove an alias"),
        ("list", cmd_alias_list, "every alias of a model"),
    ):
        a = alias_actions.add_parser(
            name, parents=where, help=help_text, description=help_text, formatter_class=formatter
        )
        a.set_defaults(handler=handler)
        a.add_argument("model", help="model name")
        if name != "list":
            a.add_argument("alias", help="alias name, e.g. champion (not 'latest' or v<number>)")
        if name == "set":
            a.add_argument("version", help="version id (or another alias)")


def cmd_show(args: argparse.Namespace, settings: Settings) -> Result:
    data = backend_for(settings).model_id(args.model_id)
    return data, render.version_text(data)


def cmd_lineage(args: argparse.Namespace, settings: Settings) -> Result:
    data = backend_for(settings).lineage(args.model, args.version)
    return data, render.lineage_text(data)


def cmd_compare(args: argparse.Namespace, settings: Settings) -> Result:
    data = backend_for(settings).compare(args.model, args.a, args.b)
    return data, render.compare_text(data)


def cmd_alias_set(args: argparse.Namespace, settings: Settings) -> Result:
    data = backend_for(settings).alias_set(args.model, args.alias, args.version)
    return data, f"{args.model}: {args.alias} -> {data['aliases'][args.alias]}"


def cmd_alias_delete(args: argparse.Namespace, settings: Settings) -> Result:
    data = backend_for(settings).alias_delete(args.model, args.alias)
    return data, f"{args.model}: alias {args.alias} removed"


def cmd_alias_list(args: argparse.Namespace, settings: Settings) -> Result:
    data = backend_for(settings).aliases(args.model)
    rows = [[alias, version] for alias, version in data["aliases"].items()]
    return data, render.table(["ALIAS", "VERSION"], rows) if rows else f"{args.model} has no aliases"
