"""``modelswap policy set|show|clear``: a model's delivery policy, on the store directly
(the serving process holding the model's lease acts on it) or through a server with ``--url``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from modelswap.api.cli.backends import backend_for
from modelswap.api.cli.commands import Command, Result, verb_group
from modelswap.core.errors import InvalidInput
from modelswap.core.settings import Settings


def add_commands(
    command: Command, where: list[argparse.ArgumentParser], formatter: type[argparse.HelpFormatter]
) -> None:
    action = verb_group(command, where, formatter, "policy",
                        "a model's delivery policy: gate, shadow, rollout, on_alert (set, show, clear)")  # fmt: skip
    p = action("set", cmd_set, "set the policy every new version of the model goes through")
    p.add_argument("file", help="the policy as a JSON file (- reads standard input)")
    p.add_argument("--reason", default="", help="why, for the history")
    action("show", cmd_show, "the policy, and where the newest candidate stands in it")
    action("clear", cmd_clear, "remove the policy: new versions are left alone again").add_argument(
        "--reason", default="", help="why, for the history"
    )


def _read(name: str) -> Any:
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read {name}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{name} is not JSON: {exc}") from None


def cmd_set(args: argparse.Namespace, settings: Settings) -> Result:
    body = _read(args.file)
    if not isinstance(body, dict):
        raise InvalidInput(f'{args.file} must hold a policy object like {{"gate": {{...}}, "rollout": {{...}}}}')
    data = backend_for(settings).policy_set(args.model, body, args.reason)
    return data, policy_text(data)


def cmd_show(args: argparse.Namespace, settings: Settings) -> Result:
    data = backend_for(settings).policy(args.model)
    return data, policy_text(data)


def cmd_clear(args: argparse.Namespace, settings: Settings) -> Result:
    data = backend_for(settings).policy_clear(args.model, args.reason)
    return data, policy_text(data)


def policy_text(data: dict[str, Any]) -> str:
    policy, candidate = data.get("policy"), data.get("candidate")
    lines = [f"{data['model']}: live {data.get('live') or '-'}"]
    if policy is None:
        lines.append("no delivery policy: new versions are left alone")
    else:
        lines.append(f"policy set {policy['set_at']} by {policy['set_by']}")
        for part in ("gate", "shadow", "rollout", "on_alert"):
            lines.append(f"  {part:<9} {json.dumps(policy[part]) if policy[part] is not None else '-'}")
    if candidate is not None:
        lines.append(f"candidate {candidate['version']}: {candidate['state']} at {candidate['stage']}"
                     + (f" ({candidate['reason']})" if candidate.get("reason") else ""))  # fmt: skip
        for stage in candidate.get("stages") or []:
            lines.append(f"  {stage['stage']:<8} {stage['verdict']:<10} {stage['reason']}")
        if candidate.get("last_figures"):
            lines.append(f"  now: {json.dumps(candidate['last_figures'])}")
    return "\n".join(lines)
