"""history.jsonl: an fsynced append-only journal, read backwards in pages, torn tails cut."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelswap.core.errors import UnsafePath
from modelswap.core.store import history
from modelswap.core.store.history import HistoryEntry


def entry(i: int) -> HistoryEntry:
    return HistoryEntry(f"2026-11-23T02:00:{i:02d}Z", history.DEPLOY, "t", None, f"v{i}", "x" * (i % 9))


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(history, "BLOCK", 97)  # small blocks: lines straddle every block edge
    path = tmp_path / "history.jsonl"
    for i in range(60):
        history.append(path, entry(i))
    return path


def test_entries_come_back_newest_first_across_block_edges(journal: Path) -> None:
    assert [e.to_version for _, e in history.newest_first(journal)] == [f"v{i}" for i in reversed(range(60))]
    assert [e.to_version for _, e in history.read_from(journal)] == [f"v{i}" for i in range(60)]


def test_pages_resume_where_the_last_one_ended(journal: Path) -> None:
    walk = list(history.newest_first(journal))
    first = walk[:25]
    rest = [e.to_version for _, e in history.newest_first(journal, before=first[-1][0])]
    assert rest == [f"v{i}" for i in reversed(range(35))]


def test_a_torn_last_line_is_ignored_then_cut(journal: Path) -> None:
    whole = journal.stat().st_size
    with open(journal, "ab") as handle:
        handle.write(b'{"time": "2026-11-23T03:00:00Z", "action": "dep')  # a crash mid-append
    assert history.size(journal) == whole
    assert history.last(journal) == entry(59)
    assert history.cut_torn_tail(journal) and journal.stat().st_size == whole
    history.append(journal, entry(60))
    assert history.last(journal) == entry(60) and len(history.read_from(journal)) == 61


def test_a_change_that_fails_takes_its_entry_back(journal: Path) -> None:
    before = journal.read_bytes()
    with pytest.raises(OSError), history.journal(journal, entry(99)):
        raise OSError(5, "the rename failed")
    assert journal.read_bytes() == before


def test_the_journal_is_never_read_or_written_through_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside.jsonl"
    history.append(outside, entry(1))
    link = tmp_path / "history.jsonl"
    link.symlink_to(outside)
    with pytest.raises(UnsafePath):
        list(history.newest_first(link))
    with pytest.raises(UnsafePath):
        history.append(link, entry(2))
    assert len(history.read_from(outside)) == 1
