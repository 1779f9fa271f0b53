"""core/store/fsio.py: the serving processes' state files, read fresh and stale ones removed."""

from __future__ import annotations

import json
import os
from pathlib import Path

from modelswap.core.store.fsio import fresh_process_files


def test_fresh_process_files_keeps_the_fresh_removes_the_stale_and_passes_over_the_rest(tmp_path: Path) -> None:
    (tmp_path / "a-1.json").write_text(json.dumps({"time": 100.0, "n": 1}))
    (tmp_path / "b-2.json").write_text(json.dumps({"time": 10.0, "n": 2}))  # its process is long gone
    (tmp_path / "c-3.json").write_text("{half")  # being written, or damaged
    (tmp_path / "d-4.json").write_text(json.dumps({"n": 4}))  # no time
    (tmp_path / "e-5.json.tmp-abc").write_text(json.dumps({"time": 100.0}))  # half of an atomic replace
    os.symlink(tmp_path / "a-1.json", tmp_path / "f-6.json")  # never followed
    assert fresh_process_files(tmp_path, stale_before=50.0) == [{"time": 100.0, "n": 1}]
    assert not (tmp_path / "b-2.json").exists() and (tmp_path / "c-3.json").exists()
    assert fresh_process_files(tmp_path / "missing", stale_before=0.0) == []
