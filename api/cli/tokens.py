"""``modelswap token create|list|revoke``: named tokens in the tokens file
(MODELSWAP_TOKENS_FILE, else ``<root>/.tokens.json``; ``--file`` overrides both).

Edits the file here, never through a server: every serving process reading the file
picks a change up within its poll interval (core.access.keyring)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from modelswap.api.cli.commands import Command, Result, needs_action
from modelswap.api.cli.render import table
from modelswap.core.access import tokens
from modelswap.core.access.keyring import last_uses
from modelswap.core.access.roles import ROLES
from modelswap.core.settings import Settings
from modelswap.core.store.clock import iso, utcnow
from modelswap.core.store.layout import TOKEN_USE_DIR


def add_commands(command: Command, root: argparse.ArgumentParser, formatter: type[argparse.HelpFormatter]) -> None:
    sub = command("token", needs_action, "named tokens with roles per model: create, list, revoke", parents=[])
    actions = sub.add_subparsers(dest="action", required=True, metavar="ACTION")
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--file", type=Path, help="the tokens file (default: MODELSWAP_TOKENS_FILE, else <root>/.tokens.json)"
    )
    where.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print machine-readable JSON")

    def action(name: str, handler: Any, text: str) -> argparse.ArgumentParser:
        p = actions.add_parser(name, parents=[root, where], help=text, description=text, formatter_class=formatter)
        p.set_defaults(handler=handler)
        return p

    p = action("create", cmd_create, "add a token; prints it once (only its sha256 is stored)")
    p.add_argument("name", help="who or what holds it, e.g. oncall-alice (history shows token:<name>)")
    p.add_argument("--role", required=True, choices=ROLES, help="what it may do; each role includes those before it")
    p.add_argument(
        "--models", help="comma-separated model names or globs it covers, e.g. 'churn*,fraud' (default: every model)"
    )
    p.add_argument("--expires", help="when it stops working: 90d, 12h, 2w, or an ISO date (default: never)")
    action("list", cmd_list, "names, roles, models, expiry and last use (never the tokens)")
    action("revoke", cmd_revoke, "remove a token: refused by every server within its poll interval").add_argument(
        "name", help="the token's name"
    )


def tokens_file(args: argparse.Namespace, settings: Settings) -> Path:
    return args.file if args.file is not None else settings.tokens_path


def cmd_create(args: argparse.Namespace, settings: Settings) -> Result:
    path = tokens_file(args, settings)
    # an empty --models (an unset variable in a script) is refused, never "every model"
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models is not None else None
    expires = tokens.parse_expiry(args.expires) if args.expires else None
    token, entry = tokens.create(path, args.name, args.role, models=models, expires=expires)
    data = {**entry.describe(), "token": token, "file": str(path)}
    lines = [
        f"created token {entry.name!r} ({entry.role}"
        + (f" on {', '.join(entry.models)}" if entry.models else ", every model")
        + (f", expires {iso(entry.expires)}" if entry.expires else "")
        + f") in {path}",
        "the token (shown once; store it in your secret manager):",
        token,
    ]
    return data, "\n".join(lines)


def cmd_list(args: argparse.Namespace, settings: Settings) -> Result:
    path = tokens_file(args, settings)
    uses = last_uses(settings.root / TOKEN_USE_DIR)
    now = utcnow()
    rows = []
    for entry in tokens.read_entries(path):
        used = uses.get(entry.name)
        rows.append(
            {
                **entry.describe(),
                "created": entry.created,
                "expired": entry.expired(now),
                "last_used": iso(used) if used is not None else None,
            }
        )
    text = table(
        ("NAME", "ROLE", "MODELS", "EXPIRES", "LAST USED"),
        [
            (
                r["name"],
                r["role"],
                ",".join(r["models"]) if r["models"] else "*",
                (r["expires"] or "never") + (" (expired)" if r["expired"] else ""),
                r["last_used"] or "never",
            )
            for r in rows
        ],
    )
    return {"file": str(path), "tokens": rows}, text if rows else f"no tokens in {path}"


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> Result:
    path = tokens_file(args, settings)
    entry = tokens.revoke(path, args.name)
    return {"revoked": entry.name, "file": str(path)}, f"revoked token {entry.name!r} in {path}"
