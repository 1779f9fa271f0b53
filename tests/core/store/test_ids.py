from datetime import datetime, timezone

import pytest

from modelswap.core.errors import InvalidName
from modelswap.core.store.ids import (
    is_version_id,
    new_version_id,
    validate_model_name,
    validate_version_id,
    version_time,
)


@pytest.mark.parametrize("name", ["iris", "a", "churn-v2", "x.y_z", "0model", "a" * 64])
def test_valid_model_names_are_accepted(name: str) -> None:
    assert validate_model_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "../etc", "/abs", "a/b", "Iris", "-lead", ".hidden", "a" * 65, "a b", "a\x00b", "ü", None, 3],
)
def test_hostile_model_names_are_refused(name: object) -> None:
    with pytest.raises(InvalidName):
        validate_model_name(name)


def test_new_version_id_encodes_utc_time_and_random_suffix() -> None:
    now = datetime(2026, 11, 23, 2, 45, 12, tzinfo=timezone.utc)
    assert new_version_id(now, lambda n: "3f9a1c"[: 2 * n]) == "20261123-024512-3f9a1c"
    assert version_time("20261123-024512-3f9a1c") == now


def test_version_ids_sort_by_time() -> None:
    early = new_version_id(datetime(2026, 1, 2, tzinfo=timezone.utc), lambda n: "ffffff")
    late = new_version_id(datetime(2026, 1, 3, tzinfo=timezone.utc), lambda n: "000000")
    assert sorted([late, early]) == [early, late]


@pytest.mark.parametrize(
    "version",
    [
        "",
        "latest",
        "20261123-024512",
        "20261123-024512-3F9A1C",
        "20261123-024512-3f9a1",
        "../20261123-024512-3f9a1c",
        "20261399-024512-3f9a1c",
        "20261123-246060-3f9a1c",
        "20261123-024512-3f9a1c/..",
        20261123,
    ],
)
def test_malformed_version_ids_are_refused(version: object) -> None:
    with pytest.raises(InvalidName):
        validate_version_id(version)
    assert not (isinstance(version, str) and is_version_id(version))
