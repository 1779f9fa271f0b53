"""``modelswap shadow``, ``rollout`` and ``watch``: progressive delivery from the command line,
on the store directly (the serving processes drive it) or through a server with ``--url``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from modelswap.api.cli.backends import Local, backend_for
from modelswap.api.cli.commands import Action, Command, Result, schema_flag, verb_group
from modelswap.api.client import Client
from modelswap.core.access.admin_token import client_token
from modelswap.core.delivery.driver import rollout_view, shadow_view, watch_view
from modelswap.core.errors import InvalidInput
from modelswap.core.settings import Settings


def add_commands(
    command: Command, where: list[argparse.ArgumentParser], formatter: type[argparse.HelpFormatter]
) -> None:
    def group(name: str, help_text: str) -> Action:
        return verb_group(command, where, formatter, name, help_text)

    shadow = group("shadow", "shadow a version on live traffic and compare its answers: start, status, stop")
    p = shadow("start", cmd_shadow_start, "predict a share of live requests with a version too (never answered)")
    p.add_argument("version", help="version id or alias to shadow")
    p.add_argument("--fraction", type=float, default=1.0, help="share of live requests to shadow")
    p.add_argument("--reason", default="", help="why, for the history")
    schema_flag(p)
    shadow("status", cmd_shadow_status, "agreement, confusion, |delta|, PSI, errors and p99 of the shadow, fleet-wide")
    shadow("stop", cmd_shadow_stop, "stop shadowing").add_argument("--reason", default="", help="why, for the history")

    rollout = group("rollout", "stepped rollout judged by gates: start, status, pause, resume, abort")
    p = rollout("start", cmd_rollout_start, "move a version through traffic steps; promote or abort by its gates")
    p.add_argument("version", help="version id or alias to roll out")
    p.add_argument("--steps", default="5,25,50,100", help="percent of traffic per step, ending at 100")
    p.add_argument("--step-seconds", type=float, default=300.0, help="least time per step")
    p.add_argument("--min-requests", type=int, default=200, help="least canary requests per step before judging")
    p.add_argument("--max-hold-seconds", type=float, default=3600.0, help="abort after holding this long for traffic")
    p.add_argument("--gate", action="append", default=[], metavar="NAME=VALUE",
                   help="change a gate (max_error_increase, max_latency_ratio, latency_slack_ms, max_psi, "
                   "min_agreement, max_quality_drop); VALUE null skips it; repeatable")  # fmt: skip
    p.add_argument("--reason", default="", help="why, for the history")
    schema_flag(p)
    rollout("status", cmd_rollout_status, "the rollout's step, last judgement and the process driving it")
    for verb, text in (("pause", "hold at this step"), ("resume", "go on (the step starts again)"),
                       ("abort", "end it: canary removed, all traffic to the live version")):  # fmt: skip
        rollout(verb, cmd_rollout_change, text).add_argument("--reason", default="", help="why, for the history")

    watch = group("watch", "the watched deploy (deploy --watch): status, reset")
    watch("status", cmd_watch_status, "the watch's window, state and figures")
    watch("reset", cmd_watch_reset, "stop watching, or clear a trip so the version may be deployed again").add_argument(
        "--reason", default="", help="why, for the history"
    )


def _client(settings: Settings) -> Client | None:
    return Client(settings.url, client_token(settings)) if settings.url else None


def cmd_shadow_start(args: argparse.Namespace, settings: Settings) -> Result:
    data = backend_for(settings).shadow_start(
        args.model, args.version, args.fraction, args.reason, args.allow_schema_change
    )
    return data, shadow_text(data)


def cmd_shadow_status(args: argparse.Namespace, settings: Settings) -> Result:
    client = _client(settings)
    data = client.shadow(args.model) if client else shadow_view(Local(settings).ops.store, args.model,
                                                                stale=settings.monitor_retention)  # fmt: skip
    return data, shadow_text(data)


def cmd_shadow_stop(args: argparse.Namespace, settings: Settings) -> Result:
    data = backend_for(settings).shadow_stop(args.model, args.reason)
    return data, f"shadow of {args.model} stopped\n" + shadow_text(data)


def cmd_rollout_start(args: argparse.Namespace, settings: Settings) -> Result:
    try:
        steps = [float(s) for s in args.steps.split(",") if s.strip()]
    except ValueError:
        raise InvalidInput(f"--steps takes percentages like 5,25,50,100, got {args.steps!r}") from None
    plan: dict[str, Any] = {"version": args.version, "steps": steps, "step_seconds": args.step_seconds,
                            "min_requests": args.min_requests, "max_hold_seconds": args.max_hold_seconds,
                            "gates": dict(_gate(text) for text in args.gate)}  # fmt: skip
    data = backend_for(settings).rollout_start(args.model, plan, args.reason, args.allow_schema_change)
    return data, rollout_text(data)


def cmd_rollout_status(args: argparse.Namespace, settings: Settings) -> Result:
    client = _client(settings)
    data = client.rollout(args.model) if client else rollout_view(Local(settings).ops.store, args.model)
    return data, rollout_text(data)


def cmd_rollout_change(args: argparse.Namespace, settings: Settings) -> Result:
    data = backend_for(settings).rollout_change(args.model, args.action, args.reason)
    return data, rollout_text(data)


def cmd_watch_status(args: argparse.Namespace, settings: Settings) -> Result:
    client = _client(settings)
    data = client.watch(args.model) if client else watch_view(Local(settings).ops.store, args.model)
    return data, watch_text(data)


def cmd_watch_reset(args: argparse.Namespace, settings: Settings) -> Result:
    data = backend_for(settings).watch_reset(args.model, args.reason)
    return data, watch_text(data)


def _gate(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise InvalidInput(f"--gate takes NAME=VALUE (e.g. max_psi=0.3 or max_psi=null), got {text!r}")
    try:
        return name.strip(), json.loads(raw)
    except json.JSONDecodeError:
        raise InvalidInput(f"--gate {name}: {raw!r} is not a number or null") from None


def _num(x: Any, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def shadow_text(data: dict[str, Any]) -> str:
    if not data.get("version"):
        return f"{data['model']}: no shadow runs"
    s = data.get("stats") or {}
    lines = [
        f"{data['model']}: shadow {data['version']} on {100 * (data.get('fraction') or 0):g}% of live "
        f"{data.get('live') or '-'}" + ("" if data.get("running", True) else " (stopped)"),
        f"compared {s.get('compared', 0)} requests ({s.get('rows', 0)} rows) from {s.get('processes', 0)} process(es)",
        f"agreement {_num(s.get('agreement'))}  PSI {_num(s.get('psi'))}  mean |delta| {_num(s.get('mean_abs_delta'))}"
        f"  errors {s.get('errors', 0)} (rate {_num(s.get('error_rate'))})  dropped {s.get('dropped', 0)}",
        f"p99 stable {_num(s.get('stable_p99_ms'), '.1f')} ms, shadow {_num(s.get('shadow_p99_ms'), '.1f')} ms",
    ]
    confusion = s.get("confusion") or []
    if confusion:
        lines.append("confusion (stable -> shadow: rows): " + ", ".join(
            f"{c['stable']}->{c['shadow']}: {c['rows']}" for c in confusion[:20]))  # fmt: skip
    return "\n".join(lines)


def rollout_text(data: dict[str, Any]) -> str:
    if not data.get("state"):
        return f"{data['model']}: no rollout"
    steps = " -> ".join(f"{s:g}%" for s in data["steps"])
    lines = [
        f"{data['model']}: rollout of {data['version']} {data['state']} at {data['step_percent']:g}% ({steps})",
        f"step_seconds {data['step_seconds']:g}, min_requests {data['min_requests']}, "
        f"max_hold_seconds {data['max_hold_seconds']:g}; driven by {data.get('driver') or '-'}",
    ]
    if data.get("ended"):
        lines.append(f"ended: {data['ended']}")
    judgement = data.get("last_judgement")
    if judgement:
        lines.append(f"last judgement: {judgement['verdict']} (canary {judgement['canary']['requests']} requests)")
        for g in judgement.get("gates", []):
            mark = {True: "pass", False: "FAIL", None: "-"}[g["passed"]]
            lines.append(f"  {g['gate']:<20} {_num(g['value'], '.4g'):>8} limit {g['limit']:g}  {mark}  {g['note']}")
    return "\n".join(lines)


def watch_text(data: dict[str, Any]) -> str:
    if not data.get("state"):
        return f"{data['model']}: no watched deploy"
    line = (f"{data['model']}: watch of {data['version']} (after {data.get('previous') or '-'}) {data['state']}; "
            f"window {data['watch']:g}s, max_error_rate {data['max_error_rate']:g}")  # fmt: skip
    if data.get("ended"):
        line += f"\n{data['ended']}"
    return line
