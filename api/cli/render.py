"""Plain text for the ``modelswap`` command (``--json`` prints the data instead)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

KEY_METRICS = ("accuracy", "f1_macro", "roc_auc")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) or abs(value) < 1e15 else str(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value) or "-"
    return str(value)


def _time(stamp: Any) -> str:
    return str(stamp or "")[:19].replace("T", " ")


def models_table(rows: Sequence[dict[str, Any]]) -> str:
    return table(
        ["MODEL", "CURRENT", "CANARY", "PREVIOUS", "VERSIONS"],
        [[r["model"], r["current"], r["canary"], r.get("previous"), r["versions"]] for r in rows],
    )


def versions_table(versions: Sequence[dict[str, Any]]) -> str:
    metric_names = [m for m in KEY_METRICS if any(m in v.get("metrics", {}) for v in versions)]
    if not metric_names:
        seen: list[str] = []
        for v in versions:
            seen += [k for k in v.get("metrics", {}) if k not in seen]
        metric_names = seen[:3]
    rows = [
        [v["id"], _time(v.get("created_at"))]
        + [v.get("metrics", {}).get(m) for m in metric_names]
        + [v.get("status", ""), ",".join([*v.get("live", []), *v.get("aliases", [])]) or ""]
        for v in versions
    ]
    return table(["VERSION", "CREATED"] + [m.upper() for m in metric_names] + ["STATUS", "LIVE / ALIASES"], rows)


def history_table(entries: Sequence[dict[str, Any]]) -> str:
    rows = [
        [_time(e.get("time")), e.get("action"), e.get("from"), e.get("to"), e.get("actor"), e.get("reason") or ""]
        for e in entries
    ]
    return table(["TIME", "ACTION", "FROM", "TO", "ACTOR", "REASON"], rows)


def transition_text(t: dict[str, Any]) -> str:
    verbs = {"deploy": "deployed", "rollback": "rolled back", "canary_promote": "promoted"}
    return f"{verbs.get(t['action'], t['action'])} {t['model']}: {t['previous'] or '-'} -> {t['current']}"


def guard_text(guard: dict[str, Any] | None) -> str:
    if not guard:
        return "none"
    return f"max error rate {guard['max_error_rate']:.0%} after {guard['min_requests']} requests"


def canary_text(config: dict[str, Any]) -> str:
    return f"{config['version']} on {config['fraction']:.0%} of traffic, guard: {guard_text(config.get('guard'))}"


def canary_status_text(data: dict[str, Any]) -> str:
    config = data.get("config")
    if not config:
        return f"no canary of {data['model']} is running"
    lines = [
        f"canary {data['model']}: {canary_text(config)}",
        f"started {_time(config.get('started_at'))} by {config.get('started_by') or '-'}",
    ]
    counts = (data.get("this_process") or {}).get("counts", {})
    for variant, c in counts.items():
        lines.append(f"  {variant}: {c['requests']} requests, {c['errors']} errors (this server process)")
    return "\n".join(lines)


def gc_text(plan: dict[str, Any]) -> str:
    verb = "would delete" if plan["dry_run"] else "deleted"
    lines = [f"{verb} {len(plan['deleted'])} version(s), kept {len(plan['kept'])}"]
    lines += [f"  {'would delete' if plan['dry_run'] else 'deleted'}  {v}" for v in plan["deleted"]]
    reasons = plan.get("reasons", {})
    lines += [f"  kept  {v}  ({', '.join(reasons.get(v, []))})" for v in plan["kept"]]
    return "\n".join(lines)


def train_text(outcome: dict[str, Any]) -> str:
    metrics = ", ".join(f"{k}={_cell(v)}" for k, v in outcome["metrics"].items() if not k.startswith("n_"))
    line = f"published {outcome['model']} {outcome['version']} ({metrics})"
    if outcome["deployed"]:
        return f"{line}\ndeployed {outcome['model']} {outcome['version']}: {outcome['reason']}"
    return f"{line}\nnot deployed: {outcome['reason']}"


def status_text(status: dict[str, Any]) -> str:
    lines = [
        f"model:     {status['model']}",
        f"current:   {status.get('current') or '-'}",
        f"canary:    {status.get('canary') or '-'}",
        f"previous:  {status.get('previous') or '-'}  (where `rollback` goes)",
        f"versions:  {status.get('versions')}",
    ]
    lines += [f"warning:   {w}" for w in status.get("warnings", [])]
    server = status.get("this_process") or {}
    if server.get("last_load_error"):
        lines.append(f"warning:   server load error: {server['last_load_error']['message']}")
    fleet = status.get("fleet")
    if fleet is not None:
        lines.append(f"fleet:     {fleet['summary']}")
        for proc in fleet["processes"]:
            err = f"  load error: {proc['last_load_error']}" if proc.get("last_load_error") else ""
            lines.append(
                f"  {proc['host']}:{proc['pid']}  {proc.get('version') or '-'}  canary={proc.get('canary') or '-'}{err}"
            )
    return "\n".join(lines)


def verify_text(report: dict[str, Any], *, repaired: bool) -> str:
    problems = report["problems"]
    if not problems:
        return "ok: no problems found"
    lines = [f"{p['model']}: {p['kind']}: {p['message']}{' [repaired]' if p['repaired'] else ''}" for p in problems]
    if report["ok"]:
        lines.append("ok: everything repaired")
    else:
        lines.append("problems remain" + ("" if repaired else "; `modelswap verify --repair` mends what it can"))
    return "\n".join(lines)


def signature_lines(signature: dict[str, Any] | None) -> list[str]:
    if not signature:
        return ["  (no signature)"]
    lines = [
        f"  {c['name'] if c['name'] is not None else '#' + str(i)}: {c['type']}{_column_note(c)}"
        for i, c in enumerate(signature["inputs"])
    ]
    output = signature.get("output") or {}
    if output.get("classes") is not None:
        lines.append(f"  -> classes {', '.join(map(str, output['classes']))}")
    return lines


def _column_note(column: dict[str, Any]) -> str:
    """`` (optional)`` for a column a request may leave out, `` (nullable)`` for one it may send null."""
    if not column.get("required", True):
        return " (optional)"
    return " (nullable)" if column["nullable"] else ""


def version_text(data: dict[str, Any]) -> str:
    manifest = data.get("manifest", {})
    metrics = ", ".join(f"{k}={_cell(v)}" for k, v in data.get("metrics", {}).items()) or "-"
    lines = [
        f"model:     {data.get('model', '-')}",
        f"version:   {data['id']}",
        f"model id:  {data.get('model_id', '-')}",
        f"created:   {_time(data.get('created_at'))}",
        f"status:    {data.get('status', '-')}",
        f"aliases:   {', '.join(data.get('aliases', [])) or '-'}",
        f"parent:    {data.get('parent') or '-'}",
        f"metrics:   {metrics}",
        f"estimator: {manifest.get('estimator', '-')} (scikit-learn {manifest.get('sklearn_version') or '?'})",
        f"reference: {_reference(data.get('reference'))}",
        "inputs:",
        *signature_lines(manifest.get("signature")),
    ]
    return "\n".join(lines)


def _reference(reference: dict[str, Any] | None) -> str:
    if not reference:
        return "-"
    return f"{reference['rows']} rows ({', '.join(reference['features'])})"


def lineage_text(data: dict[str, Any]) -> str:
    chain = " <- ".join([data["version"], *data["ancestors"]])
    lines = [f"{data['model']} {chain}"]
    lines += [f"  descendant  {v}" for v in data["descendants"]] or ["  (no descendants)"]
    return "\n".join(lines)


def compare_text(data: dict[str, Any]) -> str:
    rows = [[name, m["a"], m["b"], m["delta"]] for name, m in data["metrics"].items()]
    rows.append(["size (bytes)", data["size"]["a"], data["size"]["b"], data["size"]["delta"]])
    rows.append(["estimator", data["estimator"]["a"], data["estimator"]["b"], None])
    rows.append(["scikit-learn", data["sklearn_version"]["a"], data["sklearn_version"]["b"], None])
    lines = [table(["", data["a"], data["b"], "B - A"], rows)]
    schema = data["schema"]
    if schema["breaking"] or schema["compatible"]:
        lines.append("input schema, A -> B:")
        lines += [f"  {line}" for line in schema["breaking"]]
        lines += [f"  {line}  (compatible)" for line in schema["compatible"]]
    else:
        lines.append("input schema: the same")
    return "\n".join(lines)
