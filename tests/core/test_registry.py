from pathlib import Path

import pytest

from modelswap.core import registry as reg
from modelswap.core.errors import CorruptRegistry

A, B, C, D = (f"20261123-0000{i:02d}-aaaaa{i}" for i in range(4))


def make(
    live: list[tuple[str, str]], statuses: dict[str, str] | None = None, versions: tuple[str, ...] = (A, B, C, D)
) -> reg.Registry:
    r = reg.Registry("iris")
    for v in versions:
        r = r.with_version(reg.Version(v, "t", {}, {}, "", "x", 1, (statuses or {}).get(v, reg.AVAILABLE)))
    previous = None
    for action, to in live:
        r = r.with_event(reg.HistoryEntry("t", action, "test", previous, to))
        previous = to
    return r


def test_rollback_goes_to_the_version_live_before_current() -> None:
    r = make([(reg.DEPLOY, A), (reg.DEPLOY, B), (reg.DEPLOY, C)])
    assert reg.rollback_target(r, C) == B


def test_rollback_skips_versions_marked_rolled_back() -> None:
    r = make([(reg.DEPLOY, A), (reg.DEPLOY, B), (reg.DEPLOY, C), (reg.ROLLBACK, B)], {C: reg.ROLLED_BACK})
    assert reg.rollback_target(r, B) == A


def test_second_rollback_goes_further_back_than_the_first() -> None:
    r = make([(reg.DEPLOY, A), (reg.DEPLOY, B), (reg.DEPLOY, C)])
    first = reg.rollback_target(r, C)
    r = r.with_status(C, reg.ROLLED_BACK).with_event(reg.HistoryEntry("t", reg.ROLLBACK, "x", C, first))
    assert first == B
    assert reg.rollback_target(r, B) == A


def test_redeploying_a_version_makes_it_a_rollback_target_again() -> None:
    r = make([(reg.DEPLOY, A), (reg.DEPLOY, B), (reg.ROLLBACK, A), (reg.DEPLOY, B), (reg.DEPLOY, C)])
    assert reg.rollback_target(r, C) == B


def test_rollback_skips_current_even_when_it_was_live_several_times() -> None:
    r = make([(reg.DEPLOY, A), (reg.DEPLOY, B), (reg.DEPLOY, A), (reg.DEPLOY, B)])
    assert reg.rollback_target(r, B) == A


def test_rollback_skips_deleted_and_corrupt_versions() -> None:
    r = make([(reg.DEPLOY, A), (reg.DEPLOY, B), (reg.DEPLOY, C), (reg.DEPLOY, D)], {C: reg.CORRUPT})
    assert reg.rollback_target(r, D, exists=lambda v: v != B) == A


def test_rollback_target_is_none_without_an_earlier_live_version() -> None:
    assert reg.rollback_target(make([(reg.DEPLOY, A)]), A) is None
    assert reg.rollback_target(make([]), None) is None


def test_canary_events_do_not_count_as_live_unless_promoted() -> None:
    r = make([(reg.DEPLOY, A), (reg.CANARY_START, B), (reg.CANARY_STOP, B), (reg.DEPLOY, C)])
    assert reg.rollback_target(r, C) == A
    r = make([(reg.DEPLOY, A), (reg.PROMOTE, B), (reg.DEPLOY, C)])
    assert reg.rollback_target(r, C) == B


def test_transitions_do_not_mutate_the_original() -> None:
    r = make([(reg.DEPLOY, A)])
    r2 = r.with_status(A, reg.ROLLED_BACK).without([B]).with_event(reg.HistoryEntry("t", reg.DEPLOY, "x", A, C))
    assert r.status_of(A) == reg.AVAILABLE and B in r and len(r.events) == 1
    assert r2.status_of(A) == reg.ROLLED_BACK and B not in r2 and len(r2.events) == 2


def test_registry_round_trips_through_its_file(tmp_path: Path) -> None:
    r = make([(reg.DEPLOY, A), (reg.DEPLOY, B)])
    reg.write_registry(tmp_path / "versions.json", r)
    back = reg.read_registry(tmp_path / "versions.json", "iris")
    assert back.ids() == r.ids() and back.history() == r.history()
    assert back.get(A) == r.get(A)


@pytest.mark.parametrize(
    "content",
    [b'{"versions": [', b"[]", b'{"versions": {}}', b'{"versions": [{"id": "../x"}], "history": []}', b"\x00\xff"],
)
def test_a_damaged_registry_raises_an_error_naming_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "versions.json"
    path.write_bytes(content)
    with pytest.raises(CorruptRegistry, match="versions.json"):
        reg.read_registry(path, "iris")


def test_best_version_picks_the_highest_metric_and_newest_on_ties() -> None:
    r = reg.Registry("iris")
    for v, acc in ((A, 0.9), (B, 0.95), (C, 0.95), (D, 0.5)):
        r = r.with_version(reg.Version(v, "t", {"accuracy": acc, "loss": 1 - acc}, {}, "", "x", 1))
    assert reg.best_version(r.versions(), "accuracy").id == C  # type: ignore[union-attr]
    assert reg.best_version(r.versions(), "loss", lower_is_better=True).id == C  # type: ignore[union-attr]
    assert reg.best_version(r.versions(), "nope") is None
