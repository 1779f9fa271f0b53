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
NAMES = {dtype: name for name, dtype in DTYPES.items()}
HEADER_LENGTH = "inference-header-content-length"


def datatype_of(array: np.ndarray) -> str:
    return NAMES.get(array.dtype, "BYTES")


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


def decode_input(tensor: Any, binary: bytes, offset: int, max_rows: int) -> tuple[np.ndarray, int]:
    """One input tensor as a float64 matrix (rows x features); returns it and the new binary offset."""
    if not isinstance(tensor, dict):
        raise InvalidInput("each input must be an object with name, shape, datatype and data")
    name, shape, datatype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
    if not isinstance(name, str) or not name:
        raise InvalidInput("an input tensor needs a 'name'")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise InvalidInput(f"input {name!r}: 'shape' must be a list of non-negative integers")
    if datatype == "BYTES":
        raise InvalidInput(f"input {name!r}: BYTES cannot feed a scikit-learn model; send numbers (FP32, FP64, INT*)")
    if datatype not in DTYPES:
        raise InvalidInput(f"input {name!r}: unknown datatype {datatype!r}; use one of {', '.join(DTYPES)}")
    count = math.prod(shape)
    params = tensor.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is not None:
        dtype = DTYPES[datatype].newbyteorder("<")
        if not isinstance(size, int) or size != count * dtype.itemsize or offset + size > len(binary):
            raise InvalidInput(f"input {name!r}: binary_data_size does not match shape {shape} of {datatype}")
        array = np.frombuffer(binary, dtype=dtype, count=count, offset=offset)
        offset += size
    else:
        array = _from_json(name, tensor.get("data"), datatype, count)
    if len(shape) == 1:
        shape = [1, shape[0]]
    if len(shape) != 2:
        raise InvalidInput(f"input {name!r}: shape {shape} must be [rows, features]")
    if shape[0] > max_rows:
        raise InvalidInput(f"{shape[0]} rows exceed the limit of {max_rows} per request")
    if shape[0] == 0:
        raise InvalidInput(f"input {name!r} has no rows")
    X = array.reshape(shape).astype(np.float64, copy=False)
    if not np.isfinite(X).all():
        raise InvalidInput(f"input {name!r} contains NaN or infinity")
    return X, offset


def _from_json(name: str, data: Any, datatype: str, count: int) -> np.ndarray:
    if not isinstance(data, list):
        raise InvalidInput(f"input {name!r}: 'data' must be a list (flat or nested)")
    try:
        raw = np.array(data)
    except ValueError as exc:
        raise InvalidInput(f"input {name!r}: nested 'data' is ragged") from exc
    if raw.size != count:
        raise InvalidInput(f"input {name!r}: {raw.size} values do not fill its shape ({count} values)")
    kinds = "b" if datatype == "BOOL" else ("iu" if datatype.startswith(("INT", "UINT")) else "iuf")
    if raw.size and raw.dtype.kind not in kinds:
        raise InvalidInput(f"input {name!r}: data does not match datatype {datatype}")
    # FP64 is what the model gets anyway; other types keep their declared precision first
    return raw.reshape(-1) if datatype == "FP64" else raw.reshape(-1).astype(DTYPES[datatype])


def encode_outputs(outputs: list[tuple[str, np.ndarray, bool]]) -> tuple[list[dict[str, Any]], bytes]:
    """Output tensors: JSON ``data``, or the binary extension for those asking for it."""
    tensors, chunks = [], []
    for name, array, binary in outputs:
        datatype = datatype_of(array)
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            raw = (
                _bytes_payload(array) if datatype == "BYTES" else array.astype(array.dtype.newbyteorder("<")).tobytes()
            )
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = [str(v) for v in array.reshape(-1)] if datatype == "BYTES" else array.reshape(-1).tolist()
        tensors.append(tensor)
    return tensors, b"".join(chunks)


def _bytes_payload(array: np.ndarray) -> bytes:
    out = []
    for value in array.reshape(-1):
        item = value if isinstance(value, bytes) else str(value).encode()
        out.append(struct.pack("<I", len(item)) + item)
    return b"".join(out)
