"""Open Inference Protocol (v2) tensors: JSON and binary-extension decoding and encoding."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import orjson

from modelswap.core.errors import InvalidInput

DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
# The kinds of array NumPy makes of JSON data that may fill each datatype.
KINDS = {name: "b" if name == "BOOL" else ("iu" if name.startswith(("INT", "UINT")) else "iuf") for name in DTYPES}
NAMES = {dtype: name for name, dtype in DTYPES.items()}
HEADER_LENGTH = "inference-header-content-length"
HEADER_LENGTH_RAW = HEADER_LENGTH.encode()  # as the ASGI scope holds header names


def datatype_of(array: np.ndarray) -> str:
    """The v2 datatype of ``array``'s values, whatever their byte order (BYTES: not numbers)."""
    dtype = array.dtype
    name = NAMES.get(dtype)
    if name is None and not dtype.isnative:
        name = NAMES.get(dtype.newbyteorder("="))
    return name or "BYTES"


def split_body(body: bytes, header_length: str | None) -> tuple[Any, bytes]:
    """(JSON part, binary part) of a request; the whole body is JSON without the header."""
    if header_length is None:
        json_part, binary = body, b""
    else:
        try:
            size = int(header_length)
        except ValueError as exc:
            raise InvalidInput("Inference-Header-Content-Length is not a number") from exc
        if not 0 < size <= len(body):
            raise InvalidInput("Inference-Header-Content-Length does not fit the body")
        json_part, binary = body[:size], body[size:]
    try:
        return orjson.loads(json_part), binary
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the request is not valid JSON: {exc}") from exc


def decode_input(tensor: Any, binary: bytes, offset: int, max_rows: int) -> tuple[str, np.ndarray, int]:
    """One input tensor: (its name, its values shaped as declared, the new binary offset).

    Numbers come back with their declared dtype; BYTES as an object array of strings.
    The usual tensor (FP64 numbers as JSON, shaped [rows, features] or a column's [rows],
    its data no longer than the row limit) is taken in one pass; anything else, every
    error included, goes the long way, which names the problem (and refuses too many rows
    before reading them).
    """
    if type(tensor) is dict and len(tensor) == 4:  # exactly the four keys when all four are found
        name, data, shape = tensor.get("name"), tensor.get("data"), tensor.get("shape")
        if (
            tensor.get("datatype") == "FP64"
            and type(name) is str
            and name
            and type(data) is list
            and len(data) <= max_rows
        ):
            try:  # numbers of the declared shape; reshape refuses what is not a whole number
                array = np.array(data).reshape(shape)
            except (TypeError, ValueError):
                array = None  # the long way names it
            if (
                array is not None
                and 0 < array.ndim <= 2
                and array.dtype.kind in "iuf"
                and list(array.shape) == shape  # not a -1 that NumPy filled in
                and len(array) <= max_rows
            ):
                return name, array, offset
    if not isinstance(tensor, dict):
        raise InvalidInput("each input must be an object with name, shape, datatype and data")
    name, datatype = tensor.get("name"), tensor.get("datatype")
    if not isinstance(name, str) or not name:
        raise InvalidInput("an input tensor needs a 'name'")
    shape = _dims(name, tensor.get("shape"))
    if datatype != "BYTES" and datatype not in DTYPES:
        raise InvalidInput(f"input {name!r}: unknown datatype {datatype!r}; use BYTES or one of {', '.join(DTYPES)}")
    if len(shape) == 2:
        count = shape[0] * shape[1]
    elif len(shape) == 1:
        count = shape[0]
    else:
        raise InvalidInput(f"input {name!r}: shape {shape} must be [rows, features] or [rows]")
    if shape[0] > max_rows:
        raise InvalidInput(f"{shape[0]} rows exceed the limit of {max_rows} per request")
    params = tensor.get("parameters")
    size = params.get("binary_data_size") if params and isinstance(params, dict) else None
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(binary):
            raise InvalidInput(f"input {name!r}: binary_data_size does not fit the binary part of the body")
        chunk = binary[offset : offset + size]
        array = (
            _bytes_from_binary(name, chunk, count)
            if datatype == "BYTES"
            else _numbers_from_binary(name, chunk, datatype, shape)
        )
        offset += size
    else:
        array = _from_json(name, tensor.get("data"), datatype, count)
    return name, array.reshape(shape), offset  # JSON data may be flat or nested


def _dims(name: str, shape: Any) -> list[int]:
    """``shape`` when it is a list of non-negative integers (a bool is not one), else
    InvalidInput. The usual [rows, features] is checked without a generator."""
    if type(shape) is list:
        if len(shape) == 2:
            rows, width = shape
            if type(rows) is int and type(width) is int and rows >= 0 and width >= 0:
                return shape
        elif all(type(d) is int and d >= 0 for d in shape):
            return shape
    raise InvalidInput(f"input {name!r}: 'shape' must be a list of non-negative integers")


def _numbers_from_binary(name: str, chunk: bytes, datatype: str, shape: list[int]) -> np.ndarray:
    dtype = DTYPES[datatype].newbyteorder("<")
    if len(chunk) != math.prod(shape) * dtype.itemsize:
        raise InvalidInput(f"input {name!r}: binary_data_size does not match shape {shape} of {datatype}")
    return np.frombuffer(chunk, dtype=dtype)


def _bytes_from_binary(name: str, chunk: bytes, count: int) -> np.ndarray:
    """The binary BYTES layout: each element a 4-byte little-endian length, then its bytes."""
    values: list[str] = []
    position = 0
    try:
        while position < len(chunk):
            (length,) = struct.unpack_from("<I", chunk, position)
            end = position + 4 + length
            if end > len(chunk):
                raise InvalidInput(f"input {name!r}: a BYTES element runs past the end of its data")
            values.append(chunk[position + 4 : end].decode())
            position = end
    except (struct.error, UnicodeDecodeError) as exc:
        raise InvalidInput(f"input {name!r}: BYTES data is not length-prefixed UTF-8 ({exc})") from exc
    if len(values) != count:
        raise InvalidInput(f"input {name!r}: {len(values)} BYTES elements do not fill its shape ({count})")
    return np.array(values, dtype=object)


def _from_json(name: str, data: Any, datatype: str, count: int) -> np.ndarray:
    if not isinstance(data, list):
        raise InvalidInput(f"input {name!r}: 'data' must be a list (flat or nested)")
    if datatype == "BYTES":
        flat = _flatten(data)
        if len(flat) != count or not all(isinstance(v, str) or v is None for v in flat):
            raise InvalidInput(f"input {name!r}: BYTES data must be {count} strings (or nulls)")
        return np.array(flat, dtype=object)
    try:
        raw = np.array(data)
    except ValueError as exc:
        raise InvalidInput(f"input {name!r}: nested 'data' is ragged") from exc
    if raw.size != count:
        raise InvalidInput(f"input {name!r}: {raw.size} values do not fill its shape ({count} values)")
    if count and raw.dtype.kind not in KINDS[datatype]:
        raise InvalidInput(f"input {name!r}: data does not match datatype {datatype}")
    # FP64 is what the model gets anyway; other types keep their declared precision first
    return raw if datatype == "FP64" else raw.astype(DTYPES[datatype])


def _flatten(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in data:
        if isinstance(item, list):
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out


def encode_outputs(outputs: list[tuple[str, np.ndarray, bool]]) -> tuple[list[dict[str, Any]], bytes]:
    """Output tensors: JSON ``data``, or the binary extension for those asking for it."""
    tensors, chunks = [], []
    for name, array, binary in outputs:
        if not binary:
            tensors.append(json_tensor(name, array))
            continue
        datatype = datatype_of(array)
        raw = _bytes_payload(array) if datatype == "BYTES" else array.astype(array.dtype.newbyteorder("<")).tobytes()
        chunks.append(raw)
        sent = {"binary_data_size": len(raw)}
        tensors.append({"name": name, "datatype": datatype, "shape": list(array.shape), "parameters": sent})
    return tensors, b"".join(chunks)


def json_tensor(name: str, values: Any) -> dict[str, Any]:
    """One output tensor with its values as JSON ``data`` (flattened, as the protocol sends them)."""
    array = np.asarray(values)
    datatype = datatype_of(array)
    flat = (array if array.ndim == 1 else array.reshape(-1)).tolist()
    if datatype == "BYTES":
        flat = [v if v is None or isinstance(v, str) else str(v) for v in flat]
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": flat}


def _bytes_payload(array: np.ndarray) -> bytes:
    out = []
    for value in array.reshape(-1):
        item = value if isinstance(value, bytes) else str(value).encode()
        out.append(struct.pack("<I", len(item)) + item)
    return b"".join(out)
