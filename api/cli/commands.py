"""``modelswap`` commands on the store: directly, or through a server with ``--url``."""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from modelswap.api.cli import render
from modelswap.api.cli.backends import backend_for
from modelswap.core.delivery.abtest import Guard
from modelswap.core.errors import InvalidInput, ModelswapError, NotFound, no_reference
from modelswap.core.schema.signature import Signature
from modelswap.core.settings import Settings
from modelswap.core.store.registry import Version, best_version, lower_is_better
from modelswap.core.store.store import Store
from modelswap.core.store.verify import verify_store
from modelswap.core.training.fit import add_training_arguments, training_options

Result = tuple[Any, str]
Command = Callable[..., argparse.ArgumentParser]


def add_commands(
    command: Command, sub: Any, where: list[argparse.ArgumentParser], formatter: type[argparse.HelpFormatter]
) -> None:
    """Register the store commands on the ``modelswap`` parser."""
    root, _url, output = where
    p = command("train", cmd_train, "train a model on a dataset, evaluate on a held-out split, publish")
    add_training_arguments(p)

    p = command("publish", cmd_publish, "publish a model file (skops or joblib) as a new version")
    p.add_argument("model", help="model name")
    p.add_argument(
        "file",
        type=Path,
        help="the estimator, saved with skops.io.dump (model.skops) or joblib.dump; a server (--url) "
        "takes skops files only, unless it sets MODELSWAP_ALLOW_PICKLE_UPLOADS=1",
    )
    p.add_argument("--metrics", type=Path, help="JSON file of evaluation metrics")
    p.add_argument(
        "--example",
        type=Path,
        help="a few input rows to infer the signature from and validate with: JSON records or rows, or CSV",
    )
    p.add_argument(
        "--reference",
        type=Path,
        help="the training rows (JSON records or rows, or CSV like --example): the version keeps their "
        "profile and its predictions' (reference.json), the baseline of drift monitoring",
    )
    p.add_argument("--signature", type=Path, help='JSON file: {"inputs": [{"name", "type", "nullable", "required"}]}')
    p.add_argument("--metadata", type=Path, help="JSON file of free-form metadata kept in the manifest")
    p.add_argument("--tag", action="append", default=[], metavar="K=V", help="a tag (repeatable)")
    p.add_argument("--description", default="", help="free text shown with the version")
    p.add_argument("--deploy", action="store_true", help="deploy it once published")
    schema_flag(p)

    command("models", cmd_models, "every model: current, canary, number of versions")

    p = command("versions", cmd_versions, "a model's versions with metrics, status and live marks")
    p.add_argument("model", help="model name")
    p.add_argument("--sort", metavar="METRIC", help="sort by a metric, best first")
    p.add_argument(
        "--where", action="append", metavar="EXPR", help="keep versions where e.g. 'accuracy>0.9' (repeatable)"
    )
    p.add_argument("--tag", action="append", metavar="K=V", help="keep versions with this tag (repeatable)")

    p = command("best", cmd_best, "the version with the best value of a metric")
    p.add_argument("model", help="model name")
    p.add_argument("--metric", required=True, help="metric name, e.g. accuracy")
    p.add_argument(
        "--lower-is-better",
        action="store_true",
        default=None,
        help="smaller wins (default: only for names ending in loss, error, mse, mae, rmse)",
    )

    p = command("status", cmd_status, "current, canary, previous, and every serving process (the fleet)")
    p.add_argument("model", help="model name")

    p = command("history", cmd_history, "deploy history, newest first")
    p.add_argument("model", help="model name")
    p.add_argument("--limit", type=int, default=50, help="show the newest N entries")

    p = command("deploy", cmd_deploy, "validate a version and make it live")
    p.add_argument("model", help="model name")
    p.add_argument("version", help="version id or alias")
    p.add_argument("--reason", default="", help="why, for the history")
    p.add_argument("--watch", type=float, metavar="SECONDS", help="watch it this long; a breach rolls back by itself")
    p.add_argument(
        "--max-error-rate", type=float, help="watch: server-error rate allowed above the predecessor's (0.02)"
    )
    p.add_argument(
        "--max-latency-ratio", type=float, help="watch: roll back when p99 exceeds this times the predecessor's"
    )
    p.add_argument("--min-requests", type=int, help="watch: requests before judging (50)")
    schema_flag(p)

    p = command("rollback", cmd_rollback, "go back to the previous live version (or --to one)")
    p.add_argument("model", help="model name")
    p.add_argument("--to", dest="to", metavar="VERSION", help="roll back to this version (or alias) instead")
    p.add_argument("--reason", default="", help="why, for the history")
    schema_flag(p)

    p = command("gc", cmd_gc, "delete all but the newest N versions (never live, canary or rollback target)")
    p.add_argument("model", help="model name")
    p.add_argument("--keep", type=int, required=True, help="how many of the newest versions to keep")
    p.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")

    p = command("delete", cmd_delete, "delete one version (never the live, canary or rollback target, nor an alias's)")
    p.add_argument("model", help="model name")
    p.add_argument("version", help="version id")

    canary_action = verb_group(command, where, formatter, "canary", "A/B canary: start, status, stop, promote")

    c = canary_action("start", cmd_canary_start, "send a fraction of traffic to a version (validated like a deploy)")
    c.add_argument("version", help="version id of the canary")
    c.add_argument("--fraction", type=float, required=True, help="share of traffic for the canary, e.g. 0.1")
    c.add_argument("--max-error-rate", type=float, help="guard: stop the canary above this error rate")
    c.add_argument("--min-requests", type=int, default=200, help="guard: judge only after this many canary requests")
    c.add_argument("--reason", default="", help="why, for the history")
    schema_flag(c)
    canary_action("status", cmd_canary_status, "the canary's config (and, with --url, the server's counts)")
    c = canary_action("stop", cmd_canary_stop, "end the canary: all traffic back to stable")
    c.add_argument("--reason", default="", help="why, for the history")
    c = canary_action("promote", cmd_canary_promote, "make the canary the live version and end the test")
    c.add_argument("--reason", default="", help="why, for the history")
    schema_flag(c)

    p = command(
        "verify",
        cmd_verify,
        "check checksums, registry, symlink and leftovers (where the volume is mounted); --repair mends",
        parents=[root, output],
    )
    p.add_argument("model", nargs="?", help="one model (default: every model)")
    p.add_argument("--repair", action="store_true", help="mend what can be mended, and record it in history")


def schema_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-schema-change",
        action="store_true",
        help="go ahead even if the version's inputs break clients of the live one (recorded in history)",
    )


Action = Callable[[str, Callable[..., Result], str], argparse.ArgumentParser]


def verb_group(
    command: Command,
    where: list[argparse.ArgumentParser],
    formatter: type[argparse.HelpFormatter],
    name: str,
    help_text: str,
) -> Action:
    """A command of verbs on one model (``canary start iris ...``): returns ``action(verb,
    handler, help)``, which adds a verb taking the model's name and returns its parser."""
    sub = command(name, needs_action, help_text, parents=[]).add_subparsers(dest="action", required=True,
                                                                             metavar="ACTION")  # fmt: skip

    def action(verb: str, handler: Callable[..., Result], text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(verb, parents=where, help=text, description=text, formatter_class=formatter)
        p.set_defaults(handler=handler)
        p.add_argument("model", help="model name")
        return p

    return action


def needs_action(args: argparse.Namespace, settings: Settings) -> Result:
    raise InvalidInput(f"{args.command} needs an action; see modelswap {args.command} --help")


def read_example(path: Path, what: str = "example") -> list[Any]:
    """An example (or reference) file: a JSON list of records or rows, or CSV with a
    header (values that read as numbers become numbers, empty cells nulls)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInput(f"{what} file {path}: {exc.strerror}") from exc
    if path.suffix.lower() != ".csv" and text.lstrip().startswith("["):
        example = read_json_file(path, f"{what} file")
        if not isinstance(example, list) or not example or not all(isinstance(r, (list, dict)) for r in example):
            raise InvalidInput(f"{what} file {path}: expected a JSON list of records or rows")
        return example
    rows = list(csv.reader(io.StringIO(text)))
    if len(rows) < 2:
        raise InvalidInput(f"{what} file {path}: a CSV {what} needs a header row and at least one row")
    header = rows[0]
    return [dict(zip(header, (_cell(v) for v in row), strict=False)) for row in rows[1:] if row]


def _cell(text: str) -> Any:
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def read_json_file(path: Path | None, what: str) -> Any:
    if path is None:
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{what} {path}: {exc}") from exc


def parse_tags(pairs: Sequence[str]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--tag {pair!r}: expected KEY=VALUE")
        tags[key] = value
    return tags


def cmd_train(args: argparse.Namespace, settings: Settings) -> Result:
    outcome = backend_for(settings).train(args.model, **training_options(args))
    return outcome, render.train_text(outcome)


def cmd_publish(args: argparse.Namespace, settings: Settings) -> Result:
    example = read_example(args.example) if args.example is not None else None
    reference = read_example(args.reference, "reference") if args.reference is not None else None
    signature = read_json_file(args.signature, "signature file")
    metadata = read_json_file(args.metadata, "metadata file")
    if not args.file.is_file():
        raise InvalidInput(f"{args.file} is not a file")
    backend = backend_for(settings)
    record = backend.publish(
        args.model,
        args.file,
        metrics=read_json_file(args.metrics, "metrics file"),
        tags=parse_tags(args.tag),
        description=args.description,
        example=example,
        reference=reference,
        signature=Signature.from_dict(signature) if signature is not None else None,
        metadata=metadata,
        force=args.allow_schema_change,  # an upload through --url is checked against the live version
    )
    data: dict[str, Any] = {"model": args.model, "version": record["id"], "deployed": False}
    text = f"published {args.model} {record['id']} (model id {record['model_id']})"
    data["reference"] = reference is not None
    if reference is None:
        text += "\n" + no_reference("--reference FILE")
    if args.deploy:
        try:
            t = backend.deploy(args.model, record["id"], "publish --deploy", args.allow_schema_change)
        except ModelswapError as exc:
            # The version exists now whatever the deploy did: say both in the one error line.
            raise type(exc)(f"published {args.model} {record['id']}, but deploying it failed: {exc.message}") from exc
        data["deployed"] = True
        text += "\n" + render.transition_text(t)
    return data, text


def cmd_models(args: argparse.Namespace, settings: Settings) -> Result:
    rows = backend_for(settings).models()
    return rows, render.models_table(rows) if rows else "no models"


def cmd_versions(args: argparse.Namespace, settings: Settings) -> Result:
    tags = parse_tags(args.tag or [])
    data = backend_for(settings).versions(args.model, where=args.where or [], tags=tags)
    records = data["versions"]
    if args.sort:
        present = [r for r in records if isinstance(r["metrics"].get(args.sort), (int, float))]
        if not present:
            raise NotFound(f"no version of {args.model} has a metric {args.sort!r}")
        best_first = sorted(present, key=lambda r: r["metrics"][args.sort], reverse=not lower_is_better(args.sort))
        records = best_first + [r for r in records if r not in present]
    return records, render.versions_table(records)


def cmd_best(args: argparse.Namespace, settings: Settings) -> Result:
    records = backend_for(settings).versions(args.model)["versions"]  # newest first
    lower = lower_is_better(args.metric) if args.lower_is_better is None else args.lower_is_better
    best = best_version([Version.from_dict(r) for r in reversed(records)], args.metric, lower_is_better=lower)
    if best is None:
        raise NotFound(f"no version of {args.model} has a metric {args.metric!r}")
    return best.to_dict(), f"{best.id}  {args.metric}={best.metrics[args.metric]}"


def cmd_status(args: argparse.Namespace, settings: Settings) -> Result:
    backend = backend_for(settings)
    data = backend.model(args.model)
    fleet = backend.fleet(args.model)
    data["fleet"] = {k: v for k, v in fleet.items() if k != "model"}
    return data, render.status_text(data)


def cmd_history(args: argparse.Namespace, settings: Settings) -> Result:
    entries = backend_for(settings).history(args.model, limit=max(args.limit, 0))
    return entries, render.history_table(entries) if entries else "no history yet"


def cmd_deploy(args: argparse.Namespace, settings: Settings) -> Result:
    fields = ("watch", "max_error_rate", "max_latency_ratio", "min_requests")
    watch = {name: getattr(args, name) for name in fields if getattr(args, name) is not None} or None
    t = backend_for(settings).deploy(args.model, args.version, args.reason, args.allow_schema_change, watch)
    text = render.transition_text(t)
    if "watch" in t:
        text += f"; watched for {t['watch']['watch']:g}s (`modelswap watch status {args.model}`)"
    return t, text


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> Result:
    t = backend_for(settings).rollback(args.model, args.to, args.reason, args.allow_schema_change)
    return t, render.transition_text(t)


def cmd_gc(args: argparse.Namespace, settings: Settings) -> Result:
    plan = backend_for(settings).gc(args.model, args.keep, args.dry_run)
    return plan, render.gc_text(plan)


def cmd_delete(args: argparse.Namespace, settings: Settings) -> Result:
    data = backend_for(settings).delete(args.model, args.version)
    return data, f"deleted {args.model} {data['deleted']}"


def cmd_canary_start(args: argparse.Namespace, settings: Settings) -> Result:
    guard = None
    if args.max_error_rate is not None:
        guard = Guard.from_dict({"max_error_rate": args.max_error_rate, "min_requests": args.min_requests})
    config = backend_for(settings).canary_start(
        args.model, args.version, args.fraction, guard, args.reason, args.allow_schema_change
    )
    return config, f"canary {args.model}: " + render.canary_text(config)


def cmd_canary_status(args: argparse.Namespace, settings: Settings) -> Result:
    data = backend_for(settings).canary(args.model)
    return data, render.canary_status_text(data)


def cmd_canary_stop(args: argparse.Namespace, settings: Settings) -> Result:
    data = backend_for(settings).canary_stop(args.model, args.reason)
    return data, f"canary {args.model} stopped ({data['stopped']}); all traffic on stable"


def cmd_canary_promote(args: argparse.Namespace, settings: Settings) -> Result:
    t = backend_for(settings).canary_promote(args.model, args.reason, args.allow_schema_change)
    return t, render.transition_text(t) + "; canary ended"


def cmd_verify(args: argparse.Namespace, settings: Settings) -> Result:
    if settings.url:
        raise InvalidInput("verify works on the store directly: run it where the volume is mounted, without --url")
    report = verify_store(Store.from_settings(settings), [args.model] if args.model else None, repair=args.repair)
    return report.to_dict(), render.verify_text(report.to_dict(), repaired=args.repair)
