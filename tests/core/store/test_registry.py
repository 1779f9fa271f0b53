from pathlib import Path

import pytest

from modelswap.core.errors import CorruptRegistry
from modelswap.core.store import registry as reg

A, B, C, D = (f"20261123-0000{i:02d}-aaaaa{i}" for i in range(4))


def make(
    live: list[tuple[str, str]], statuses: dict[str, str] | None = None, versions: tuple[str, ...] = (A, B, C, D)
) -> tuple[reg.Registry, list[str]]:
    """An index and the live sequence (newest first) the journal ``live`` would give."""
    r = reg.Registry("iris")
    for v in versions:
        r = r.with_version(reg.Version(v, "t", {}, {}, "", "x", 1, (statuses or {}).get(v, reg.AVAILABLE)))
    return r, [to for action, to in reversed(live) if action in reg.LIVE_ACTIONS]


def target(made: tuple[reg.Registry, list[str]], current: str | None, **kwargs: object) -> str | None:
    return reg.rollback_target(made[0], current, made[1], **kwargs)  # type: ignore[arg-type]


def test_rollback_goes_to_the_version_live_before_current() -> None:
    assert target(make([(reg.DEPLOY, A), (reg.DEPLOY, B), (reg.DEPLOY, C)]), C) == B


def test_rollback_skips_versions_marked_rolled_back() -> None:
    made = make([(reg.DEPLOY, A), (reg.DEPLOY, B), (reg.DEPLOY, C), (reg.ROLLBACK, B)], {C: reg.ROLLED_BACK})
    assert target(made, B) == A


def test_second_rollback_goes_further_back_than_the_first() -> None:
    r, live = make([(reg.DEPLOY, A), (reg.DEPLOY, B), (reg.DEPLOY, C)])
    first = reg.rollback_target(r, C, live)
    assert first == B
    r = r.applied(reg.HistoryEntry("t", reg.ROLLBACK, "x", C, first))
    assert r.status_of(C) == reg.ROLLED_BACK
    assert reg.rollback_target(r, B, [B, *live]) == A


def test_redeploying_a_version_makes_it_a_rollback_target_again() -> None:
    assert target(make([(reg.DEPLOY, A), (reg.DEPLOY, B), (reg.ROLLBACK, A), (reg.DEPLOY, B), (reg.DEPLOY, C)]), C) == B


def test_rollback_skips_current_even_when_it_was_live_several_times() -> None:
    assert target(make([(reg.DEPLOY, A), (reg.DEPLOY, B), (reg.DEPLOY, A), (reg.DEPLOY, B)]), B) == A


def test_rollback_skips_deleted_and_corrupt_versions() -> None:
    made = make([(reg.DEPLOY, A), (reg.DEPLOY, B), (reg.DEPLOY, C), (reg.DEPLOY, D)], {C: reg.CORRUPT})
    assert target(made, D, exists=lambda v: v != B) == A


def test_rollback_target_is_none_without_an_earlier_live_version() -> None:
    assert target(make([(reg.DEPLOY, A)]), A) is None
    assert target(make([]), None) is None


def test_canary_events_do_not_count_as_live_unless_promoted() -> None:
    assert target(make([(reg.DEPLOY, A), (reg.CANARY_START, B), (reg.CANARY_STOP, B), (reg.DEPLOY, C)]), C) == A
    assert target(make([(reg.DEPLOY, A), (reg.PROMOTE, B), (reg.DEPLOY, C)]), C) == B


def test_transitions_do_not_mutate_the_original() -> None:
    r, _ = make([(reg.DEPLOY, A)])
    r2 = (
        r.with_status(A, reg.ROLLED_BACK)
        .without([B])
        .applied(reg.HistoryEntry("t", reg.GC, "x", None, None, "", {"versions": [C]}))
    )
    assert r.status_of(A) == reg.AVAILABLE and B in r and C in r
    assert r2.status_of(A) == reg.ROLLED_BACK and B not in r2 and C not in r2


def test_a_live_move_clears_the_rolled_back_mark_of_its_target() -> None:
    r, _ = make([], {A: reg.ROLLED_BACK})
    assert r.applied(reg.HistoryEntry("t", reg.DEPLOY, "x", B, A)).status_of(A) == reg.AVAILABLE


def test_registry_round_trips_through_its_file(tmp_path: Path) -> None:
    r, _ = make([(reg.DEPLOY, A), (reg.DEPLOY, B)])
    reg.write_registry(tmp_path / "versions.json", r.at(123))
    back = reg.read_registry(tmp_path / "versions.json", "iris")
    assert back.ids() == r.ids() and back.history_bytes == 123 and back.legacy is None
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
