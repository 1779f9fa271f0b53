from pathlib import Path

import pytest

from modelswap.core.errors import InvalidName
from modelswap.core.store.layout import model_paths, version_from_link_target


def test_paths_stay_under_the_root(tmp_path: Path) -> None:
    paths = model_paths(tmp_path, "iris")
    version_dir = paths.version_dir("20261123-024512-3f9a1c")
    assert version_dir.resolve().is_relative_to(tmp_path.resolve())
    assert paths.version_link_target("20261123-024512-3f9a1c") == "versions/20261123-024512-3f9a1c"


@pytest.mark.parametrize("name", ["..", "../x", "/etc"])
def test_a_traversing_model_name_never_becomes_a_path(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidName):
        model_paths(tmp_path, name)


def test_a_traversing_version_never_becomes_a_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidName):
        model_paths(tmp_path, "iris").version_dir("../../etc")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("versions/20261123-024512-3f9a1c", "20261123-024512-3f9a1c"),
        ("versions/20261123-024512-3f9a1c/", "20261123-024512-3f9a1c"),
        ("/abs/versions/20261123-024512-3f9a1c", None),
        ("../other/versions/20261123-024512-3f9a1c", None),
        ("versions/nope", None),
        ("versions/../../20261123-024512-3f9a1c", None),
    ],
)
def test_only_the_exact_relative_link_form_names_a_version(target: str, expected: str | None) -> None:
    assert version_from_link_target(target) == expected
