"""Tables on disk for batch scoring: Parquet, CSV and JSON Lines, streamed in chunks.

A reader yields :class:`Chunk` values of at most ``chunk_rows`` rows, never the whole file:
Parquet through pyarrow's record batches (only the columns asked for), CSV through
pyarrow's streaming reader with every column read as text (parsed afterwards exactly as
the online CSV body is, so a stray word in a number column is named, not a reader crash),
JSON Lines one object per line, as the online ``records`` body is. The format comes from
the extension: ``.parquet``/``.pq``, ``.csv``, ``.jsonl``/``.ndjson``.

A writer writes under a hidden temporary name beside the target; :meth:`Writer.close`
finishes the file and the caller renames it into place, so a killed job never leaves a
half file under the target's name.
"""

from __future__ import annotations

import csv
import io
import os
import socket
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from modelswap.core.errors import InvalidInput
from modelswap.core.schema.inputs import Values
from modelswap.core.store.processes import alive

PARQUET, CSV, JSONL = "parquet", "csv", "jsonl"
EXTENSIONS = {".parquet": PARQUET, ".pq": PARQUET, ".csv": CSV, ".jsonl": JSONL, ".ndjson": JSONL}
CSV_BLOCK = 1 << 20  # bytes per CSV block read; chunks are re-cut to chunk_rows
PARQUET_BUFFER = 1 << 20  # bytes per Parquet read
SAMPLE_ROWS = 1000  # the first rows of a JSON Lines file name its fields and the kept columns' types
_HOST = socket.gethostname().replace("/", "_") or "host"


def format_of(path: Path) -> str:
    kind = EXTENSIONS.get(path.suffix.lower())
    if kind is None:
        raise InvalidInput(
            f"{path}: cannot tell the format from {path.suffix or 'no extension'!r}; "
            "use .parquet (or .pq), .csv, or .jsonl (or .ndjson)"
        )
    return kind


@dataclass(frozen=True)
class Chunk:
    """Consecutive rows of the input: ``columns`` by name (NumPy arrays, or lists for JSON
    Lines), ``text`` when every value is still a string to parse (CSV), ``kept`` the
    pass-through columns as Arrow arrays, ``row0`` the first row's number in the file,
    ``done`` the fraction of the input read so far (bytes, or rows for Parquet)."""

    columns: Mapping[str, Values]
    kept: Mapping[str, pa.Array]
    n_rows: int
    row0: int
    text: bool
    done: float


class Reader:
    """The input file's columns and a stream of chunks of them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.kind = format_of(path)
        if not path.is_file():
            raise InvalidInput(f"{path}: no such file")
        self.size = path.stat().st_size
        self.rows: int | None = None
        self._schema: pa.Schema | None = None  # Parquet's, from its footer
        self._sample: list[dict[str, Any]] = []  # JSON Lines' first rows
        self.names = self._names()

    def _names(self) -> list[str]:
        if self.kind == PARQUET:
            try:
                footer = pq.ParquetFile(self.path)
            except (pa.ArrowInvalid, OSError) as exc:
                raise InvalidInput(f"{self.path}: not a readable Parquet file ({exc})") from None
            self._schema, self.rows = footer.schema_arrow, footer.metadata.num_rows
            return list(self._schema.names)
        if self.kind == CSV:
            try:
                with self.path.open(newline="", encoding="utf-8-sig") as f:  # a BOM (Excel's) is not a name
                    header = next(csv.reader(f), None)
            except UnicodeDecodeError as exc:
                raise InvalidInput(f"{self.path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
            if not header:
                raise InvalidInput(f"{self.path}: the CSV file has no header line naming its columns")
            if len(set(header)) != len(header):
                raise InvalidInput(f"{self.path}: the header names a column twice")
            return header
        with self.path.open("rb") as f:
            self._sample = [_record(line, i, self.path) for i, line in enumerate(_lines(f, SAMPLE_ROWS))]
        names: dict[str, None] = {}
        for record in self._sample:
            names.update(dict.fromkeys(record))
        return list(names)  # the keys of the first rows; later rows may add more (then refused by name)

    def kept_types(self, kept: Sequence[str]) -> dict[str, pa.DataType]:
        """The Arrow type each kept column is written with: the file's own (Parquet), text
        (CSV), or what the first rows' values make (JSON Lines; text when they are all
        null or of no one type), so a later chunk cannot change it."""
        if self._schema is not None:
            return {k: self._schema.field(k).type for k in kept}
        if self.kind == CSV:
            return {k: pa.string() for k in kept}
        types = {}
        for k in kept:
            try:
                kind = pa.array([r.get(k) for r in self._sample]).type
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                kind = pa.null()
            plain = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
            types[k] = pa.int64() if pa.types.is_integer(kind) else kind if plain else pa.string()
        return types

    def chunks(self, wanted: Sequence[str], kept: Sequence[str], chunk_rows: int) -> Generator[Chunk, None, None]:
        """``wanted`` columns (model inputs present in the file) and ``kept`` ones, in chunks."""
        try:
            if self.kind == PARQUET:
                yield from self._parquet(wanted, kept, chunk_rows)
            elif self.kind == CSV:
                yield from self._csv(wanted, kept, chunk_rows)
            else:
                yield from self._jsonl(wanted, kept, chunk_rows)
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{self.path}: {exc}") from None  # a file the reader cannot parse

    def _parquet(self, wanted: Sequence[str], kept: Sequence[str], chunk_rows: int) -> Iterator[Chunk]:
        # pre_buffer off: pyarrow would otherwise keep every row group it has read until the
        # file is done (a 2,000,000-row file: +200 MB); a 1 MiB read buffer instead of whole
        # column chunks. Memory then follows chunk_rows, not the file.
        source = pq.ParquetFile(self.path, pre_buffer=False, buffer_size=PARQUET_BUFFER)
        names = list(dict.fromkeys([*wanted, *kept]))
        row0 = 0
        for batch in source.iter_batches(batch_size=chunk_rows, columns=names):
            n = batch.num_rows
            columns = {name: _numpy(batch.column(name)) for name in wanted}
            yield Chunk(
                columns, {k: batch.column(k) for k in kept}, n, row0, False, (row0 + n) / max(self.rows or 1, 1)
            )
            row0 += n

    def _csv(self, wanted: Sequence[str], kept: Sequence[str], chunk_rows: int) -> Iterator[Chunk]:
        options = pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in self.names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            include_columns=list(dict.fromkeys([*wanted, *kept])),
        )
        ragged: list[str] = []

        def refuse(row: Any) -> str:  # a row with too few or too many fields: named, never guessed at
            where = f"row {row.number - 2}" if row.number is not None else "a row"
            ragged.append(f"{where} has {row.actual_columns} fields, the header {row.expected_columns}: {row.text!r}")
            return "error"

        parse = pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=refuse)
        # use_threads off: the reader then numbers the rows it refuses (and parsing is not the cost here)
        read = pa_csv.ReadOptions(block_size=CSV_BLOCK, use_threads=False)
        with pa.OSFile(str(self.path), "r") as raw:  # opened here, so that how far the reader got can be told
            try:
                reader = pa_csv.open_csv(raw, read_options=read, parse_options=parse, convert_options=options)
                try:
                    row0 = 0
                    for batch in _rechunk(reader, chunk_rows):
                        n = batch.num_rows
                        columns = {name: _numpy(batch.column(name)) for name in wanted}
                        done = min(raw.tell() / max(self.size, 1), 1.0)
                        yield Chunk(columns, {k: batch.column(k) for k in kept}, n, row0, True, done)
                        row0 += n
                finally:
                    reader.close()  # its read-ahead thread must stop before the file closes
            except pa.ArrowInvalid:
                if ragged:
                    raise InvalidInput(f"{self.path}: {ragged[0]}") from None
                raise

    def _jsonl(self, wanted: Sequence[str], kept: Sequence[str], chunk_rows: int) -> Iterator[Chunk]:
        types = self.kept_types(kept)
        row0 = 0
        known = set(self.names)
        with self.path.open("rb") as f:
            while True:
                lines = list(_lines(f, chunk_rows))
                if not lines:
                    return
                records = [_record(line, row0 + i, self.path) for i, line in enumerate(lines)]
                for i, record in enumerate(records):
                    unknown = record.keys() - known
                    if unknown:
                        raise InvalidInput(
                            f"{self.path}: row {row0 + i} has field(s) {', '.join(map(repr, sorted(unknown)))} "
                            "that the first rows did not; every row must use the same fields"
                        )
                columns = {name: [r.get(name) for r in records] for name in wanted}
                kept_arrays = {k: _kept_array([r.get(k) for r in records], k, types[k], row0) for k in kept}
                yield Chunk(columns, kept_arrays, len(records), row0, False, min(f.tell() / max(self.size, 1), 1.0))
                row0 += len(records)


def _numpy(array: pa.Array) -> Values:
    """An Arrow column as NumPy: numbers (float64 with NaN when there are nulls), bool,
    datetime64[ns] (NaT for null), objects for anything else (None for null); text as
    pandas' Arrow-backed string array (see core.schema.inputs._text_array)."""
    kind = array.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        if pa.types.is_timestamp(kind) and kind.tz is not None:
            array = array.cast(pa.timestamp(kind.unit))  # as UTC wall time, like an ISO string with Z
        # microseconds: wide enough for any date (a time outside nanoseconds' range is then named)
        return np.asarray(array.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False), dtype="datetime64[us]")
    if (pa.types.is_integer(kind) or pa.types.is_floating(kind)) and array.null_count:
        return np.asarray(array.cast(pa.float64()).to_numpy(zero_copy_only=False))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text: Values = array.to_pandas().array  # pandas' Arrow-backed text: no Python string per value
        return text
    return np.asarray(array.to_numpy(zero_copy_only=False))


def _rechunk(reader: pa.RecordBatchReader, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """The reader's batches re-cut to ``chunk_rows`` rows (the last may be shorter)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in reader:
        pending.append(batch)
        count += batch.num_rows
        while count >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, chunk_rows).combine_chunks().to_batches()[0]
            rest = table.slice(chunk_rows)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


def _lines(f: io.BufferedReader | Any, n: int) -> Iterator[bytes]:
    """Up to ``n`` non-blank lines."""
    taken = 0
    while taken < n:
        line = f.readline()
        if not line:
            return
        if line.strip():
            taken += 1
            yield line


def _record(line: bytes, row: int, path: Path) -> dict[str, Any]:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: row {row} is not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise InvalidInput(f'{path}: row {row} is not a JSON object like {{"column": value}}')
    return record


def _kept_array(values: list[Any], name: str, kind: pa.DataType, row0: int) -> pa.Array:
    """A kept JSON Lines column as ``kind``: text as JSON when that is the type; a value of
    another type (a word among numbers) names its row."""
    if pa.types.is_string(kind):
        return pa.array([v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values], kind)
    try:
        return pa.array(values, kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        for i, value in enumerate(values):
            try:
                pa.array([value], kind)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                raise InvalidInput(
                    f"kept column {name!r} row {row0 + i}: {value!r} is not {kind}, like the first rows' values"
                ) from None
        raise


def partial_name(target: Path) -> Path:
    """The hidden name a file is written under until it is complete: ``.NAME.<host>.<pid>.partial``."""
    return target.with_name(f".{target.name}.{_HOST}.{os.getpid()}.partial")


def remove_stale_partials(target: Path) -> list[Path]:
    """Remove what killed jobs on this host left while writing ``target`` (their process is
    gone); another host's (a pod on the same volume) is left to that host."""
    removed = []
    for candidate in target.parent.glob(f".{glob_escape(target.name)}.{glob_escape(_HOST)}.*.partial"):
        pid = candidate.name[len(target.name) + len(_HOST) + 3 : -len(".partial")]
        if pid.isdigit() and not alive(int(pid)):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


class Writer:
    """Writes tables of ``schema`` to ``target``'s partial name, created at once (a place
    the job cannot write fails it before any work, not at its end); :meth:`finish`
    completes and fsyncs that file (the caller renames it into place), :meth:`discard`
    removes it. A table of other types is cast to the schema, so a chunk cannot change a
    column's type half way through a file."""

    def __init__(self, target: Path, schema: pa.Schema) -> None:
        self.target = target
        self.kind = format_of(target)
        self.temp = partial_name(target)
        self.schema = schema
        self._parquet: pq.ParquetWriter | None = None
        self._csv: pa_csv.CSVWriter | None = None
        self._file: io.BufferedWriter | None = None
        self.rows = 0
        try:
            if self.kind == PARQUET:
                self._parquet = pq.ParquetWriter(self.temp, schema)
            elif self.kind == CSV:
                self._csv = pa_csv.CSVWriter(self.temp, schema)
            else:
                self._file = self.temp.open("wb")
        except OSError as exc:  # nothing was opened: the one open failed
            reason = os.strerror(exc.errno) if exc.errno else str(exc)  # pyarrow's strerror is its whole message
            raise InvalidInput(f"{target} cannot be written: {reason}") from None

    def write(self, table: pa.Table) -> None:
        if table.schema != self.schema:
            try:
                table = table.cast(self.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise InvalidInput(
                    f"{self.target}: rows {self.rows}+ do not fit the columns of the first ({exc})"
                ) from None
        if self._parquet is not None:
            self._parquet.write_table(table)
        elif self._csv is not None:
            self._csv.write_table(table)
        elif self._file is not None:
            dump = orjson.dumps
            self._file.write(b"".join(dump(row, default=str, option=JSON_OPTIONS) for row in table.to_pylist()))
        self.rows += table.num_rows

    def finish(self, metadata: Mapping[str, str] | None = None) -> None:
        """Complete the file (Parquet: with ``metadata`` as key-value metadata) and fsync it."""
        if self._parquet is not None:
            if metadata:
                self._parquet.add_key_value_metadata(dict(metadata))
            self._parquet.close()
        elif self._csv is not None:
            self._csv.close()
        elif self._file is not None:
            self._file.close()
        with self.temp.open("rb+") as f:
            os.fsync(f.fileno())

    def discard(self) -> None:
        for closer in (self._parquet, self._csv, self._file):
            if closer is not None:
                try:
                    closer.close()
                except Exception:  # noqa: BLE001 - best effort: the file goes anyway
                    pass
        self.temp.unlink(missing_ok=True)


JSON_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC
