"""``modelswap monitor``: drift, live quality, traffic and alerts of a model, per version
and variant, as the fleet counted them; and its thresholds (``--set``)."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from typing import Any

from modelswap.api.cli.backends import backend_for
from modelswap.api.cli.commands import Command, Result
from modelswap.api.client import Client
from modelswap.core.access.admin_token import client_token
from modelswap.core.errors import InvalidInput
from modelswap.core.monitoring.monitor import Monitor
from modelswap.core.settings import Settings
from modelswap.core.store.aliases import resolve
from modelswap.core.store.ids import is_version_id
from modelswap.core.store.store import Store


def add_commands(command: Command) -> None:
    p = command(
        "monitor",
        cmd_monitor,
        "drift against each version's reference, live quality from feedback, errors, p99 and alerts",
    )
    p.add_argument("model", help="model name")
    p.add_argument("--version", help="only this version (id or alias)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change a threshold in the model's monitor.json (e.g. psi_warning=0.3); repeatable",
    )
    p.add_argument("--config", action="store_true", help="print the model's thresholds")


def cmd_monitor(args: argparse.Namespace, settings: Settings) -> Result:
    changes = dict(_assignment(text) for text in args.set)
    if changes or args.config:
        backend = backend_for(settings)
        data = backend.set_monitor_config(args.model, changes) if changes else backend.monitor_config(args.model)
        return data, config_text(data)
    if settings.url:
        data = Client(settings.url, client_token(settings)).monitor(args.model, version=args.version)
        return data, monitor_text(data)
    # On the store: the counts the serving processes wrote to the volume; log nothing.
    monitor = Monitor(Store.from_settings(settings), replace(settings, prediction_log=None))
    version = args.version
    if version is not None and not is_version_id(version):
        version = resolve(monitor.store, args.model, version)
    data = monitor.view(args.model, version=version)
    return data, monitor_text(data)


def _assignment(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise InvalidInput(f"--set takes NAME=VALUE (e.g. psi_warning=0.3), got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--set {name}: {raw!r} is not a number") from exc
    return name.strip(), value


def config_text(data: dict[str, Any]) -> str:
    return "\n".join(f"{k:<22} {v}" for k, v in data.items() if k != "model")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def monitor_text(data: dict[str, Any]) -> str:
    minutes = data["window_seconds"] / 60
    lines = [
        f"{data['model']}: live {data['live'] or 'nothing'}"
        + (f", canary {data['canary']}" if data["canary"] else "")
        + f"; window {minutes:g} min; counts from {data['processes']} process(es)"
    ]
    if not data["monitoring"]:
        lines.append("(monitoring is off on this server: MODELSWAP_MONITOR=0)")
    if not data["versions"]:
        lines.append("no traffic counted yet")
    header = (
        f"{'VERSION':<24} {'VARIANT':<8} {'REQUESTS':>9} {'ERRORS':>7} {'4XX':>7} {'P99 MS':>7} {'QUALITY':<20} DRIFT"
    )
    if data["versions"]:
        lines += ["", header]
    for row in data["versions"]:
        w = row["window"]
        mark = " (live)" if row["live"] else " (canary)" if row["canary"] else ""
        quality = w["quality"]
        q = "-" if quality is None else f"{quality['metric']} {quality['value']:.3f} n={quality['labelled']}"
        dataset = w["drift"]["dataset"]
        drift = "no reference" if not w["drift"]["reference"] else (dataset or {}).get("severity", "-")
        server, client = _pct(w["server_error_rate"]), _pct(w["client_error_rate"])  # the model's; the clients'
        lines.append(
            f"{row['version'] + mark:<24} {row['variant']:<8} {w['requests']:>9} {server:>7} {client:>7} "
            f"{_num(w['p99_ms'], '.1f'):>7} {q:<20} {drift}"
        )
    for row in data["versions"]:
        drift = row["window"]["drift"]
        items = drift["features"] + ([drift["prediction"]] if drift["prediction"] else [])
        if not items:
            continue
        lines += ["", f"drift of {row['version']} ({row['variant']}), last {minutes:g} min:"]
        lines.append(f"  {'FEATURE':<20} {'PSI':>7} {'JS':>7} {'KL':>7} {'KS':>7} {'KS P':>8} {'N':>7}  VERDICT")
        for d in items:
            lines.append(
                f"  {d['feature']:<20} {_num(d['psi']):>7} {_num(d['js']):>7} {_num(d['kl']):>7} "
                f"{_num(d['ks']):>7} {_num(d['ks_pvalue'], '.2g'):>8} {d['samples']:>7}  {d['severity']}"
            )
    shadow = data.get("shadow")
    if shadow:
        figures = f"agreement {_num(shadow['agreement'])}, PSI {_num(shadow['psi'])}, {shadow['errors']} errors"
        lines += ["", f"shadow {shadow['version']}: {shadow['compared']} compared, {figures}"]
    lines.append("")
    if data["alerts"]:
        lines.append("alerts:")
        for a in data["alerts"]:
            lines.append(f"  {a['severity']:<8} {a['kind']:<16} {a['message']} (since {a['first_seen']})")
    else:
        lines.append("alerts: none")
    return "\n".join(lines)
