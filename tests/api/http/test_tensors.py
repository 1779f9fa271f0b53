"""v2 input tensors: the usual JSON tensor's one-pass decoding agrees with the long way."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelswap.api.http import tensors
from modelswap.api.http.tensors import decode_input
from modelswap.core.errors import InvalidInput

ROW = [5.1, 3.5, 1.4, 0.2]
MAX_ROWS = 3

# (shape, data, name): what a client may put in an FP64 tensor without parameters
TENSORS: list[tuple[Any, Any, Any]] = [
    ([1, 4], ROW, "input-0"),  # the usual
    ([2, 4], ROW + ROW, "x"),
    ([2, 4], [ROW, ROW], "x"),  # nested
    ([1, 4], [[[5.1, 3.5], [1.4, 0.2]]], "x"),  # nested deeper, the same values
    ([1, 4], [1, 2, 3, 4], "x"),  # whole numbers
    ([0, 4], [], "x"),
    ([3, 4], ROW * 3, "x"),  # at the row limit
    ([4, 4], ROW * 4, "x"),  # over it
    ([1, 4], ROW[:3], "x"),  # too few values
    ([1, 4], [ROW[:3], ROW], "x"),  # ragged
    ([1, 4], [True, False, True, False], "x"),
    ([1, 4], ["1", "2", "3", "4"], "x"),
    ([1, 4], [1, None, 3, 4], "x"),
    ([1, 4], [2**70, 1, 2, 3], "x"),
    ([1, 1], 5, "x"),  # data not a list
    ([1, 1], "5", "x"),
    ([1, -4], ROW, "x"),
    ([-1, 4], ROW, "x"),
    ([True, 4], ROW, "x"),
    ([1.0, 4], ROW, "x"),
    ([1, 4, 1], ROW, "x"),
    ([4], ROW, "x"),  # a column
    ([4], [ROW], "x"),
    ([0], [], "x"),
    ([], ROW, "x"),
    ([2**70, 4], ROW, "x"),
    ("1,4", ROW, "x"),
    ([1, 4], ROW, ""),
    ([1, 4], ROW, 7),
]


def decoded(tensor: dict[str, Any]) -> tuple[str, Any, Any, int] | str:
    try:
        name, array, offset = decode_input(tensor, b"", 0, MAX_ROWS)
    except InvalidInput as exc:
        return exc.message
    return name, array.dtype, array.tolist(), offset


@pytest.mark.parametrize(("shape", "data", "name"), TENSORS)
def test_a_json_tensor_decodes_alike_with_and_without_parameters(shape: Any, data: Any, name: Any) -> None:
    """Without ``parameters`` a tensor may take the one-pass way; with empty ones it goes
    the long way. Both give the same array, dtype and shape, or the same error."""
    usual = {"name": name, "shape": shape, "datatype": "FP64", "data": data}
    assert decoded(usual) == decoded({**usual, "parameters": {}})


def test_the_usual_tensor_comes_back_shaped_as_declared() -> None:
    name, array, offset = decode_input(
        {"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": ROW * 2}, b"", 0, 5
    )
    assert (name, array.shape, array.dtype, offset) == ("input-0", (2, 4), np.dtype(np.float64), 0)
    assert array.tolist() == [ROW, ROW]


def test_the_usual_tensor_takes_one_pass_and_a_long_one_is_refused_before_its_data_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The long way checks the shape first (_dims); the usual tensor, a [rows, features]
    one or a column, never gets there.
    A tensor whose data is longer than the row limit goes the long way, which refuses its
    shape without turning the data into an array."""

    def long_way(name: str, shape: Any) -> list[int]:
        raise AssertionError("the long way")

    with monkeypatch.context() as patched:
        patched.setattr(tensors, "_dims", long_way)
        assert decode_input({"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROW}, b"", 0, 5)[0] == "x"
        assert decode_input({"name": "x", "shape": [4], "datatype": "FP64", "data": ROW}, b"", 0, 5)[0] == "x"
        with pytest.raises(AssertionError, match="the long way"):
            decode_input({"name": "x", "shape": [6, 4], "datatype": "FP64", "data": [ROW] * 6}, b"", 0, 5)

    def no_array(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the data was read")

    monkeypatch.setattr(tensors.np, "array", no_array)
    with pytest.raises(InvalidInput, match="6 rows exceed the limit of 5"):
        decode_input({"name": "x", "shape": [6, 4], "datatype": "FP64", "data": [ROW] * 6}, b"", 0, 5)


@pytest.mark.parametrize("missing", ["name", "shape", "datatype", "data"])
def test_four_keys_that_are_not_the_usual_four_go_the_long_way(missing: str) -> None:
    """The one pass takes a tensor of four keys only when they are name, shape, datatype
    and data: one of them swapped for ``parameters`` gets the long way's error, as it does
    with a fifth key beside them."""
    usual = {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROW}
    swapped = {key: value for key, value in usual.items() if key != missing} | {"parameters": {}}
    with pytest.raises(InvalidInput) as four:
        decode_input(swapped, b"", 0, MAX_ROWS)
    with pytest.raises(InvalidInput) as five:
        decode_input(swapped | {"id": "1"}, b"", 0, MAX_ROWS)
    assert four.value.message == five.value.message
