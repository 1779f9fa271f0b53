"""``modelswap`` commands on the store: directly, or through a server with ``--url``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from modelswap.api.cli import render
from modelswap.api.cli.backends import backend_for
from modelswap.core import registry as reg
from modelswap.core.canary import Guard
from modelswap.core.errors import InvalidInput, NotFound
from modelswap.core.settings import Settings
from modelswap.core.store import Store
from modelswap.core.verify import verify_store

Result = tuple[Any, str]


def _read_json_arg(path: Path | None, what: str) -> Any:
    if path is None:
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{what} {path}: {exc}") from exc


def cmd_train(args: argparse.Namespace, settings: Settings) -> Result:
    outcome = backend_for(settings).train(
        args.model,
        dataset=args.dataset,
        target=args.target,
        estimator=args.estimator,
        deploy=args.deploy,
        deploy_if_better=args.deploy_if_better,
        seed=args.seed,
    )
    metrics = ", ".join(f"{k}={v}" for k, v in outcome["metrics"].items() if not k.startswith("n_"))
    text = f"published {outcome['model']} {outcome['version']} ({metrics})\n" + (
        f"deployed: {outcome['reason']}" if outcome["deployed"] else f"not deployed: {outcome['reason']}"
    )
    return outcome, text


def cmd_publish(args: argparse.Namespace, settings: Settings) -> Result:
    from modelswap.api.cli.main import parse_tags

    example = _read_json_arg(args.example, "example file")
    if example is not None and not (
        isinstance(example, list) and example and all(isinstance(r, list) for r in example)
    ):
        raise InvalidInput(f"example file {args.example}: expected a JSON list of rows, e.g. [[5.1, 3.5, 1.4, 0.2]]")
    if not args.file.is_file():
        raise InvalidInput(f"{args.file} is not a file")
    backend = backend_for(settings)
    record = backend.publish(
        args.model,
        args.file,
        metrics=_read_json_arg(args.metrics, "metrics file"),
        tags=parse_tags(args.tag),
        description=args.description,
        input_example=example,
    )
    data: dict[str, Any] = {"model": args.model, "version": record["id"], "deployed": False}
    text = f"published {args.model} {record['id']}"
    if args.deploy:
        t = backend.deploy(args.model, record["id"], "publish --deploy")
        data["deployed"] = True
        text += f"\ndeployed {args.model}: {t['previous'] or '-'} -> {t['current']}"
    return data, text


def cmd_models(args: argparse.Namespace, settings: Settings) -> Result:
    rows = backend_for(settings).models()
    text = render.table(
        ["MODEL", "CURRENT", "CANARY", "VERSIONS"],
        [[r["model"], r["current"], r["canary"], r["versions"]] for r in rows],
    )
    return rows, text if rows else "no models"


def cmd_versions(args: argparse.Namespace, settings: Settings) -> Result:
    data = backend_for(settings).versions(args.model)
    records = data["versions"]
    if args.sort:
        present = [r for r in records if isinstance(r["metrics"].get(args.sort), (int, float))]
        if not present:
            raise NotFound(f"no version of {args.model} has a metric {args.sort!r}")
        records = sorted(present, key=lambda r: r["metrics"][args.sort], reverse=True) + [
            r for r in records if r not in present
        ]
    return records, render.versions_table(records, data["current"], data["canary"], data.get("previous"))


def cmd_best(args: argparse.Namespace, settings: Settings) -> Result:
    records = backend_for(settings).versions(args.model)["versions"]
    registry = reg.Registry(args.model)
    for r in records:
        registry = registry.with_version(reg.Version.from_dict(r))
    best = reg.best_version(registry, args.metric, lower_is_better=args.lower_is_better)
    if best is None:
        raise NotFound(f"no version of {args.model} has a metric {args.metric!r}")
    return best.to_dict(), f"{best.id}  {args.metric}={best.metrics[args.metric]}"


def cmd_status(args: argparse.Namespace, settings: Settings) -> Result:
    data = backend_for(settings).status(args.model)
    return data, render.status_text(data)


def cmd_history(args: argparse.Namespace, settings: Settings) -> Result:
    entries = backend_for(settings).history(args.model)[: max(args.limit, 0)]
    return entries, render.history_table(entries) if entries else "no history yet"


def cmd_deploy(args: argparse.Namespace, settings: Settings) -> Result:
    t = backend_for(settings).deploy(args.model, args.version, args.reason)
    return t, f"deployed {t['model']}: {t['previous'] or '-'} -> {t['current']}"


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> Result:
    t = backend_for(settings).rollback(args.model, args.to, args.reason)
    return t, f"rolled back {t['model']}: {t['previous'] or '-'} -> {t['current']}"


def cmd_gc(args: argparse.Namespace, settings: Settings) -> Result:
    plan = backend_for(settings).gc(args.model, args.keep, args.dry_run)
    verb = "would delete" if plan["dry_run"] else "deleted"
    text = f"{verb} {len(plan['deleted'])} version(s), kept {len(plan['kept'])}" + "".join(
        f"\n  {v}" for v in plan["deleted"]
    )
    return plan, text


def cmd_canary(args: argparse.Namespace, settings: Settings) -> Result:
    backend = backend_for(settings)
    if args.action == "start":
        if args.version is None or args.fraction is None:
            raise InvalidInput("canary start needs MODEL VERSION --fraction F")
        guard = None
        if args.max_error_rate is not None:
            guard = Guard.from_dict({"max_error_rate": args.max_error_rate, "min_requests": args.min_requests})
        config = backend.canary_start(args.model, args.version, args.fraction, guard, args.reason)
        return config, f"canary {args.model}: {config['version']} on {config['fraction']:.0%} of traffic" + (
            f", guard {config['guard']}" if config.get("guard") else ""
        )
    if args.version is not None:
        raise InvalidInput(f"canary {args.action} takes only MODEL")
    if args.action == "status":
        data = backend.canary_status(args.model)
        running = data.get("config")
        text = (
            f"canary {args.model}: {running['version']} on {running['fraction']:.0%}, started {running['started_at']} "
            f"by {running['started_by']}" + (f", guard {running['guard']}" if running.get("guard") else "")
            if running
            else f"no canary of {args.model} is running"
        )
        counts = data.get("this_process", {}).get("counts", {})
        for variant, c in counts.items():
            text += f"\n  {variant}: {c['requests']} requests, {c['errors']} errors (this server process)"
        return data, text
    if args.action == "stop":
        data = backend.canary_stop(args.model, args.reason)
        return data, f"canary {args.model} stopped ({data['stopped']}); all traffic on stable"
    t = backend.canary_promote(args.model, args.reason)
    return t, f"promoted {t['model']}: {t['previous'] or '-'} -> {t['current']}; canary ended"


def cmd_verify(args: argparse.Namespace, settings: Settings) -> Result:
    if settings.url:
        raise InvalidInput("verify works on the store directly: run it where the volume is mounted, without --url")
    store = Store.from_settings(settings)
    models = [args.model] if args.model else None
    report = verify_store(store, models, repair=args.repair)
    if not report.problems:
        return report.to_dict(), "ok: no problems found"
    lines = [f"{p.model}: {p.kind}: {p.message}{' [repaired]' if p.repaired else ''}" for p in report.problems]
    lines.append(
        "ok: everything repaired"
        if report.ok
        else "problems remain" + ("" if args.repair else "; `modelswap verify --repair` mends what it can")
    )
    return report.to_dict(), "\n".join(lines)
