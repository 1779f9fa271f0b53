"""``modelswap score``: score a Parquet, CSV or JSON Lines file with one pinned version.

Works on the store directly (the job reads the model volume, as a serving pod does); a
progress line on a terminal, one summary line otherwise, ``--json`` for the report.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from modelswap.api.cli.commands import Command, Result
from modelswap.core.batch import BATCH_METHODS, DEFAULT_CHUNK_ROWS
from modelswap.core.settings import Settings
from modelswap.core.store.store import Store


def add_commands(command: Command, root: argparse.ArgumentParser, output: argparse.ArgumentParser) -> None:
    p = command(
        "score",
        cmd_score,
        "score a Parquet, CSV or JSON Lines file with one version (default: the live one, pinned at the start)",
        parents=[root, output],
    )
    p.add_argument("model", help="model name")
    p.add_argument("input", type=Path, help="the rows to score: .parquet (.pq), .csv or .jsonl (.ndjson)")
    p.add_argument("--output", "-o", type=Path, required=True, help="where the answers go (format from its extension)")
    p.add_argument("--version", help="a version id or alias (default: what current names when the job starts)")
    p.add_argument("--method", choices=BATCH_METHODS, default="predict", help="what to compute per row")
    p.add_argument("--keep", default="", help="comma-separated input columns copied to the output, e.g. customer_id")
    p.add_argument(
        "--chunk-rows", type=rows_count, default=DEFAULT_CHUNK_ROWS, help="rows read, checked and scored at a time"
    )
    p.add_argument(
        "--rejects",
        type=Path,
        help="write rows that do not fit the signature here (row, reason, kept columns, values) and go on; "
        "without it such a row stops the job and nothing is written",
    )


def rows_count(text: str) -> int:
    """A whole number of rows, at least 1 (argparse makes anything else bad usage, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of rows, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_score(args: argparse.Namespace, settings: Settings) -> Result:
    keep = [k.strip() for k in args.keep.split(",") if k.strip()]
    bar = ProgressLine(sys.stderr) if sys.stderr.isatty() else None
    try:
        report = Store.from_settings(settings).score(
            args.model,
            args.input,
            args.output,
            version=args.version,
            method=args.method,
            keep=keep,
            chunk_rows=args.chunk_rows,
            rejects=args.rejects,
            ignore_extra_columns=settings.extra_columns == "ignore",
            progress=bar.update if bar is not None else None,
        )
    finally:
        if bar is not None:
            bar.end()
    rate = report.rows / report.seconds if report.seconds else 0.0
    text = (
        f"scored {report.rows:,} rows of {args.input} with {report.model} {report.version} ({report.method}) "
        f"into {args.output} in {report.seconds:.1f} s ({rate:,.0f} rows/s)"
    )
    if report.rejects_file is not None:
        text += f"; {report.rejects:,} rows set aside in {args.rejects}"
    return report.to_dict(), text


class ProgressLine:
    """``1,200,000 rows  85,000 rows/s  60 %  ETA 9 s``, redrawn in place on a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.start = time.monotonic()
        self.drawn = False

    def update(self, rows: int, fraction: float) -> None:
        elapsed = max(time.monotonic() - self.start, 1e-6)
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else float("nan")
        eta_text = f"ETA {eta:,.0f} s" if eta == eta else "ETA ?"
        line = f"{rows:,} rows  {rows / elapsed:,.0f} rows/s  {fraction:.0%}  {eta_text}"
        self.stream.write(f"\r{line:<60}")
        self.stream.flush()
        self.drawn = True

    def end(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
