"""``modelswap`` commands that work directly on the store directory."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from api import render
from core import registry as reg
from core.clock import default_actor
from core.errors import InvalidInput, NotFound
from core.fleet import read_fleet
from core.settings import Settings
from core.store import Store
from core.training import retrain
from core.verify import verify_store

Result = tuple[Any, str]


def open_store(settings: Settings) -> Store:
    return Store(settings.root, lock_timeout=settings.lock_timeout, strict_versions=settings.strict_versions)


def _read_json_arg(path: Path | None, what: str) -> Any:
    if path is None:
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{what} {path}: {exc}") from exc


def cmd_train(args: argparse.Namespace, settings: Settings) -> Result:
    outcome = retrain(
        open_store(settings),
        args.model,
        dataset=args.dataset,
        target=args.target,
        estimator=args.estimator,
        deploy=args.deploy,
        deploy_if_better=args.deploy_if_better,
        actor=default_actor(),
        seed=args.seed,
    )
    data = outcome.to_dict()
    metrics = ", ".join(f"{k}={v}" for k, v in outcome.metrics.items() if not k.startswith("n_"))
    text = f"published {outcome.model} {outcome.version} ({metrics})\n" + (
        f"deployed: {outcome.reason}" if outcome.deployed else f"not deployed: {outcome.reason}"
    )
    return data, text


def cmd_publish(args: argparse.Namespace, settings: Settings) -> Result:
    from api.cli import parse_tags

    store = open_store(settings)
    metrics = _read_json_arg(args.metrics, "metrics file")
    example = _read_json_arg(args.example, "example file")
    if example is not None and not (
        isinstance(example, list) and example and all(isinstance(r, list) for r in example)
    ):
        raise InvalidInput(f"example file {args.example}: expected a JSON list of rows, e.g. [[5.1, 3.5, 1.4, 0.2]]")
    record = store.publish(
        args.model,
        args.file,
        metrics=metrics,
        tags=parse_tags(args.tag),
        description=args.description,
        input_example=example,
        actor=default_actor(),
    )
    data: dict[str, Any] = {"model": args.model, "version": record.id, "deployed": False}
    text = f"published {args.model} {record.id}"
    if args.deploy:
        transition = store.deploy(args.model, record.id, actor=default_actor(), reason="publish --deploy")
        data["deployed"] = True
        text += f"\ndeployed {args.model}: {transition.previous or '-'} -> {transition.current}"
    return data, text


def cmd_models(args: argparse.Namespace, settings: Settings) -> Result:
    store = open_store(settings)
    rows = [store.status(m).to_dict() for m in store.models()]
    text = render.table(
        ["MODEL", "CURRENT", "CANARY", "VERSIONS"],
        [[r["model"], r["current"], r["canary"], r["versions"]] for r in rows],
    )
    return rows, text if rows else f"no models in {settings.root}"


def cmd_versions(args: argparse.Namespace, settings: Settings) -> Result:
    store = open_store(settings)
    registry = store.registry(args.model)
    status = store.status(args.model)
    records = [r.to_dict() for r in registry.versions()]
    if args.sort:
        present = [r for r in records if isinstance(r["metrics"].get(args.sort), (int, float))]
        if not present:
            raise NotFound(f"no version of {args.model} has a metric {args.sort!r}")
        records = sorted(present, key=lambda r: r["metrics"][args.sort], reverse=True) + [
            r for r in records if r not in present
        ]
    else:
        records.reverse()
    return records, render.versions_table(records, status.current, status.canary, status.previous)


def cmd_best(args: argparse.Namespace, settings: Settings) -> Result:
    best = reg.best_version(
        open_store(settings).registry(args.model), args.metric, lower_is_better=args.lower_is_better
    )
    if best is None:
        raise NotFound(f"no version of {args.model} has a metric {args.metric!r}")
    return best.to_dict(), f"{best.id}  {args.metric}={best.metrics[args.metric]}"


def cmd_status(args: argparse.Namespace, settings: Settings) -> Result:
    store = open_store(settings)
    data: dict[str, Any] = store.status(args.model).to_dict()
    from core.loader import sklearn_mismatch

    warnings = []
    if data["current"]:
        mismatch = sklearn_mismatch(store.manifest(args.model, data["current"]))
        if mismatch:
            warnings.append(f"current {data['current']}: {mismatch}")
    data["warnings"] = warnings
    data["fleet"] = read_fleet(store.paths(args.model), settings.poll_interval, data["current"]).to_dict()
    return data, render.status_text(data)


def cmd_history(args: argparse.Namespace, settings: Settings) -> Result:
    entries = [e.to_dict() for e in reversed(open_store(settings).registry(args.model).history())][: max(args.limit, 0)]
    return entries, render.history_table(entries) if entries else "no history yet"


def cmd_deploy(args: argparse.Namespace, settings: Settings) -> Result:
    t = open_store(settings).deploy(args.model, args.version, actor=default_actor(), reason=args.reason)
    return t.to_dict(), f"deployed {t.model}: {t.previous or '-'} -> {t.current}"


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> Result:
    t = open_store(settings).rollback(args.model, args.to, actor=default_actor(), reason=args.reason)
    return t.to_dict(), f"rolled back {t.model}: {t.previous or '-'} -> {t.current}"


def cmd_gc(args: argparse.Namespace, settings: Settings) -> Result:
    plan = open_store(settings).gc(args.model, args.keep, dry_run=args.dry_run, actor=default_actor())
    verb = "would delete" if plan.dry_run else "deleted"
    text = f"{verb} {len(plan.deleted)} version(s), kept {len(plan.kept)}" + "".join(f"\n  {v}" for v in plan.deleted)
    return plan.to_dict(), text


def cmd_verify(args: argparse.Namespace, settings: Settings) -> Result:
    store = open_store(settings)
    models = [args.model] if args.model else None
    report = verify_store(store, models, repair=args.repair, actor=default_actor())
    if not report.problems:
        return report.to_dict(), "ok: no problems found"
    lines = [f"{p.model}: {p.kind}: {p.message}{' [repaired]' if p.repaired else ''}" for p in report.problems]
    lines.append(
        "ok: everything repaired"
        if report.ok
        else "problems remain" + ("" if args.repair else "; `modelswap verify --repair` mends what it can")
    )
    return report.to_dict(), "\n".join(lines)
