"""``modelswap score``: a file scored with one pinned version, chunk by chunk.

1. The version is resolved once (``current`` by default, or an id or alias) and loaded as
   a serving process loads it (digests, a predict on its example).
2. The input is read in chunks of ``chunk_rows`` (core.batch.files); each chunk meets the
   signature through the same checks as a request (core.schema.inputs), is scored, and
   its kept columns and answers are written to a hidden partial file beside the output.
3. A row that does not fit stops the job (InvalidInput naming the row and the column;
   nothing is written), or, with ``rejects``, goes to that file with its reason.
4. At the end, one change under the model's lock: a ``score`` history entry is journalled
   and the partial files are renamed into place (rejects, ``OUT.meta.json`` for CSV and
   JSON Lines, then the output); a failure there undoes the entry. A killed job leaves
   only a hidden partial file, which the next job writing the same output removes.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from modelswap.core.batch import DEFAULT_CHUNK_ROWS, pinned
from modelswap.core.batch.answers import Answers
from modelswap.core.batch.files import (
    JSON_OPTIONS,
    PARQUET,
    Chunk,
    Reader,
    Writer,
    format_of,
    partial_name,
    remove_stale_partials,
)
from modelswap.core.errors import InvalidInput, ModelswapError
from modelswap.core.schema.columns import frame_of, input_columns, prepare_columns
from modelswap.core.schema.inputs import IGNORE, REFUSE, Table
from modelswap.core.schema.signature import Signature
from modelswap.core.serving.loader import LoadedModel, load_version
from modelswap.core.store import history
from modelswap.core.store.clock import default_actor, iso, utcnow
from modelswap.core.store.fsio import dumps_json, fsync_dir, write_bytes_durable
from modelswap.core.store.kernel import Kernel

REJECT_COLUMNS = ("row", "reason", "values")  # a rejects file's own columns, beside the kept ones
Progress = Callable[[int, float], None]  # rows scored so far, fraction of the input read


@dataclass(frozen=True)
class ScoreReport:
    """What a score job did; also the output's metadata and the history entry's details."""

    model: str
    version: str
    model_id: str
    method: str
    signature: str  # sha256 of the signature's JSON: which input contract the rows met
    input: str
    output: str
    rejects_file: str | None
    rows: int  # rows scored (written to the output)
    rejects: int  # rows set aside
    started: str
    finished: str
    seconds: float
    actor: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metadata(self) -> dict[str, str]:
        """Parquet key-value metadata: ``modelswap.<field>`` for each field."""
        return {f"modelswap.{k}": "" if v is None else str(v) for k, v in self.to_dict().items()}


def signature_digest(signature: Signature) -> str:
    return "sha256:" + hashlib.sha256(dumps_json(signature.to_dict())).hexdigest()


def score(
    kernel: Kernel,
    model: str,
    input: str | Path,
    output: str | Path,
    *,
    version: str | None = None,
    method: str = "predict",
    keep: Sequence[str] = (),
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    rejects: str | Path | None = None,
    extra: str = REFUSE,
    actor: str | None = None,
    progress: Progress | None = None,
) -> ScoreReport:
    """Score ``input`` with ``version`` of ``model`` (default: the live one, resolved once)
    into ``output``; see the module docstring. Raises InvalidInput for a row that does not
    fit (without ``rejects``), a bad file or option; nothing is written then."""
    started, clock = utcnow(), time.perf_counter()
    source, target = Path(input), Path(output)
    reject_target = Path(rejects) if rejects is not None else None
    if chunk_rows < 1:
        raise InvalidInput(f"chunk_rows must be at least 1, got {chunk_rows}")
    targets = [target] + ([reject_target] if reject_target is not None else [])
    for path in targets:
        _check_target(path, source, kernel.root)
    if reject_target is not None and reject_target.resolve() == target.resolve():
        raise InvalidInput("the rejects file and the output must differ")
    reader = Reader(source)  # a missing, misnamed or damaged input is refused before the model loads
    pinned_version = pinned.resolve(kernel, model, version)
    with kernel.locked(model):
        pass  # the end records history under this lock: a store the job cannot write fails now, not after the work
    # loaded for this job only: the process cache (core.batch.pinned.load) is for workers that
    # score many partitions; a training process scoring night after night must not keep every version
    loaded = load_version(
        kernel.existing(model), pinned_version, strict_versions=kernel.strict_versions,
        trusted_types=kernel.trusted_types, share_memory=True,
    )  # fmt: skip
    answers = Answers.of(loaded.signature, method, f"{model} {pinned_version}")
    answers.check_keep(keep, also=REJECT_COLUMNS if reject_target is not None else ())
    wanted = _input_columns(loaded.signature, reader, keep, extra)
    kept_types = reader.kept_types(keep)
    kept_fields = [pa.field(k, kept_types[k]) for k in keep]
    for path in targets:
        remove_stale_partials(path)
        remove_stale_partials(_meta_path(path))
    writers: list[Writer] = []
    try:
        out = Writer(target, pa.schema([*kept_fields, *answers.fields]))
        writers.append(out)
        set_aside = (
            Writer(reject_target, pa.schema([pa.field("row", pa.int64()), pa.field("reason", pa.string()),
                                             *kept_fields, pa.field("values", pa.string())]))
            if reject_target is not None
            else None
        )  # fmt: skip
        writers += [set_aside] if set_aside is not None else []
        with closing(reader.chunks(wanted, keep, chunk_rows)) as chunks:  # closed now, on an error too
            for chunk in chunks:
                _score_chunk(source, loaded, answers, chunk, out, set_aside)
                if progress is not None:
                    progress(out.rows, chunk.done)
        report = ScoreReport(
            model=model,
            version=pinned_version,
            model_id=_model_id(kernel, model, pinned_version),
            method=method,
            signature=signature_digest(loaded.signature),
            input=str(source.resolve()),
            output=str(target.resolve()),
            rejects_file=str(reject_target.resolve()) if reject_target is not None else None,
            rows=out.rows,
            rejects=set_aside.rows if set_aside is not None else 0,
            started=iso(started),
            finished=iso(utcnow()),
            seconds=round(time.perf_counter() - clock, 3),
            actor=actor or default_actor(),
        )
        _finish(kernel, report, writers)
    except BaseException:
        for writer in writers:
            writer.discard()
            _meta_partial(writer).unlink(missing_ok=True)
        raise
    return report


def _model_id(kernel: Kernel, model: str, version: str) -> str:
    record = kernel.registry(model).get(version)
    return record.model_id if record is not None else ""


def _check_target(path: Path, source: Path, root: Path) -> None:
    """An output (or rejects) path the job may write: a known format, in an existing
    directory, not a directory itself, not the input, not inside the store."""
    format_of(path)
    if path.resolve() == source.resolve():
        raise InvalidInput(f"{path}: the output would overwrite the input")
    if not path.resolve().parent.is_dir():
        raise InvalidInput(f"{path}: no directory {path.parent} to write it in")
    if path.is_dir():
        raise InvalidInput(f"{path} is a directory; name the file to write")
    if path.resolve().is_relative_to(Path(root).resolve()):
        raise InvalidInput(f"{path} is inside the model store {root}; write the output elsewhere")


def _input_columns(signature: Signature, reader: Reader, keep: Sequence[str], extra: str) -> list[str]:
    """The file's columns that feed the model (core.schema.columns.input_columns), errors naming the file."""
    try:
        return input_columns(
            signature, reader.names, keep, ignore_extra=extra == IGNORE, where="the file",
            hint="keep a column in the output with --keep; MODELSWAP_EXTRA_COLUMNS=ignore skips the others",
        )  # fmt: skip
    except InvalidInput as exc:
        raise InvalidInput(f"{reader.path}: {exc.message}") from None


def _score_chunk(
    source: Path, loaded: LoadedModel, answers: Answers, chunk: Chunk, out: Writer, set_aside: Writer | None
) -> None:
    bad: dict[int, str] | None = {} if set_aside is not None else None
    try:
        columns = prepare_columns(
            loaded.signature, Table(columns=chunk.columns, text=chunk.text), extra=IGNORE, row0=chunk.row0, bad=bad
        )
    except InvalidInput as exc:
        raise InvalidInput(f"{source}: {exc.message}") from None
    kept: Mapping[str, pa.Array] = chunk.kept
    if bad:
        assert set_aside is not None
        rows = sorted(bad)
        set_aside.write(_rejected(chunk, rows, [bad[r] for r in rows]))
        fit = np.ones(chunk.n_rows, dtype=bool)
        fit[rows] = False
        columns = [c[fit] for c in columns]
        mask = pa.array(fit)
        kept = {k: v.filter(mask) for k, v in kept.items()}
        if not fit.any():
            return
    try:
        result = getattr(loaded.estimator, answers.method)(frame_of(loaded.signature, columns))
    except ModelswapError:
        raise
    except Exception as exc:  # the estimator's own failure on rows that met the signature
        last = chunk.row0 + chunk.n_rows - 1
        raise InvalidInput(
            f"{loaded.model} {loaded.version}: {answers.method} failed on rows {chunk.row0}-{last}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    arrays = [*kept.values(), *answers.arrays(result)]
    out.write(pa.Table.from_arrays(arrays, names=[*kept, *answers.names]))


def _rejected(chunk: Chunk, rows: list[int], reasons: list[str]) -> pa.Table:
    """The set-aside rows: number, reason, kept columns, and the model's input fields as JSON."""
    values = [
        orjson.dumps(
            {name: _plain(col[r]) for name, col in chunk.columns.items()},
            default=str,  # a decimal, bytes: as text rather than no rejects file at all
            option=orjson.OPT_SERIALIZE_NUMPY,
        ).decode()
        for r in rows
    ]
    index = pa.array(rows)
    arrays = [pa.array([chunk.row0 + r for r in rows], pa.int64()), pa.array(reasons, pa.string())]
    arrays += [col.take(index) for col in chunk.kept.values()]
    arrays.append(pa.array(values, pa.string()))
    return pa.Table.from_arrays(arrays, names=["row", "reason", *chunk.kept, "values"])


def _plain(value: Any) -> Any:
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def _meta_partial(writer: Writer) -> Path:
    return partial_name(_meta_path(writer.target))


def _finish(kernel: Kernel, report: ScoreReport, writers: list[Writer]) -> None:
    """Complete the files, then journal the ``score`` entry and rename them as one change."""
    for writer in writers:
        writer.finish(report.metadata() if writer.kind == PARQUET else None)
        if writer.kind != PARQUET:
            write_bytes_durable(
                _meta_partial(writer), orjson.dumps(report.to_dict(), option=JSON_OPTIONS | orjson.OPT_INDENT_2)
            )
    what = f"{report.rows:,} rows of {report.input}" + (f", {report.rejects:,} set aside" if report.rejects else "")
    entry = history.HistoryEntry(
        time=report.finished,
        action=history.SCORE,
        actor=report.actor,
        from_version=None,
        to_version=report.version,
        reason=f"scored {what}",
        details={k: v for k, v in report.to_dict().items() if k not in ("model", "version", "actor", "finished")},
    )

    def put_in_place() -> None:
        for writer in reversed(writers):  # the rejects first: the output's presence says "complete"
            if writer.kind != PARQUET:
                os.replace(_meta_partial(writer), _meta_path(writer.target))
            os.replace(writer.temp, writer.target)
            fsync_dir(writer.target.parent)

    with kernel.locked(report.model) as paths:
        kernel.commit(paths, kernel.load_registry(paths), entry, put_in_place)
