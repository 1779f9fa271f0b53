"""Plain-text tables for the ``modelswap`` command (the ``--json`` form skips these)."""

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
    return str(value)


def versions_table(
    versions: Sequence[dict[str, Any]], current: str | None, canary: str | None, previous: str | None
) -> str:
    metric_names = [m for m in KEY_METRICS if any(m in v.get("metrics", {}) for v in versions)]
    if not metric_names:
        seen: list[str] = []
        for v in versions:
            seen += [k for k in v.get("metrics", {}) if k not in seen]
        metric_names = seen[:3]
    rows = []
    for v in versions:
        marks = [
            m
            for m, hit in (
                ("current", v["id"] == current),
                ("canary", v["id"] == canary),
                ("previous", v["id"] == previous),
            )
            if hit
        ]
        rows.append(
            [v["id"], v.get("created_at", "")[:19].replace("T", " ")]
            + [v.get("metrics", {}).get(m) for m in metric_names]
            + [v.get("status", ""), ",".join(marks) or ""]
        )
    return table(["VERSION", "CREATED"] + [m.upper() for m in metric_names] + ["STATUS", "LIVE"], rows)


def history_table(entries: Sequence[dict[str, Any]]) -> str:
    rows = [
        [
            e.get("time", "")[:19].replace("T", " "),
            e.get("action"),
            e.get("from"),
            e.get("to"),
            e.get("actor"),
            e.get("reason") or "",
        ]
        for e in entries
    ]
    return table(["TIME", "ACTION", "FROM", "TO", "ACTOR", "REASON"], rows)


def status_text(status: dict[str, Any]) -> str:
    lines = [
        f"model:     {status['model']}",
        f"current:   {status.get('current') or '-'}",
        f"canary:    {status.get('canary') or '-'}",
        f"previous:  {status.get('previous') or '-'}  (where `rollback` goes)",
        f"versions:  {status.get('versions')}",
    ]
    for warning in status.get("warnings", []):
        lines.append(f"warning:   {warning}")
    fleet = status.get("fleet")
    if fleet is not None:
        lines.append(f"fleet:     {fleet['summary']}")
        for proc in fleet["processes"]:
            err = f"  load error: {proc['last_load_error']}" if proc.get("last_load_error") else ""
            lines.append(
                f"  {proc['host']}:{proc['pid']}  {proc.get('version') or '-'}  canary={proc.get('canary') or '-'}{err}"
            )
    return "\n".join(lines)
