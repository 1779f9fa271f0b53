"""The shell examples of README.md and docs/*.md that are marked runnable run as written.

A fenced ```bash block is marked by the line before its fence (an HTML comment, which
GitHub does not show)::

    <!-- runnable -->
    <!-- runnable: given my_model.skops metrics.json -->

Each marked block runs in bash under ``set -euo pipefail``, in a fresh directory that
stands for a checkout: ``MODELSWAP_ROOT`` is its ``models``, this venv's ``bin`` is first
on ``PATH``, ``.venv`` links to this venv (the README's examples activate it), and no
other ``MODELSWAP_*`` variable is set. ``given`` names files the example calls the
reader's own; they are made there first (``GIVEN`` says what each holds). A block that
exits non-zero fails, naming its file and line. Nothing here starts a server: an example
that needs one, or a store it does not make itself, is not marked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
MARKER = re.compile(r"<!--\s*runnable(?::\s*given\s+(?P<given>[^>]*?))?\s*-->")
FENCE = re.compile(r"```(?P<info>.*)")
VENV = Path(sys.prefix)
BIN = Path(sys.executable).parent
BLOCK_TIMEOUT = 600  # a guard against a hung example, not a measure of speed


def _iris() -> tuple[object, object]:
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True)


def _my_model_skops(path: Path) -> None:
    """Your own iris classifier, saved with skops (a linear model: only types skops trusts)."""
    import skops.io
    from sklearn.linear_model import LogisticRegression

    X, y = _iris()
    skops.io.dump(LogisticRegression(max_iter=1000).fit(X, y), path)


def _churn_rows() -> list[dict[str, object]]:
    import numpy as np

    rng = np.random.default_rng(0)
    plans = rng.choice(["basic", "pro", "enterprise"], size=240)
    tenure = rng.integers(1, 60, size=240)
    spend = np.round(rng.gamma(2.0, 20.0, size=240), 2)
    return [{"plan": str(p), "tenure": int(t), "spend": float(s)} for p, t, s in zip(plans, tenure, spend, strict=True)]


def _churn_model(path: Path) -> None:
    """The churn pipeline of docs/python-api.md (strings and numbers, a DataFrame), joblib."""
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = pd.DataFrame(_churn_rows())
    labels = np.where(((frame.plan == "basic") & (frame.tenure < 20)) | (frame.spend > 80), "churned", "stayed")
    pipeline = make_pipeline(
        ColumnTransformer(
            [("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]), ("num", StandardScaler(), ["tenure", "spend"])]
        ),
        LogisticRegression(max_iter=1000),
    ).fit(frame, labels)
    joblib.dump(pipeline, path)


def _churn_train_csv(path: Path) -> None:
    rows = _churn_rows()
    lines = ["plan,tenure,spend", *(f"{r['plan']},{r['tenure']},{r['spend']}" for r in rows)]
    path.write_text("\n".join(lines) + "\n")


GIVEN: dict[str, Callable[[Path], None]] = {
    "my_model.skops": _my_model_skops,
    "metrics.json": lambda path: path.write_text(json.dumps({"accuracy": 0.97})),
    "model.joblib": _churn_model,
    "example.json": lambda path: path.write_text(json.dumps(_churn_rows()[:5])),
    "train.csv": _churn_train_csv,
}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    code: str
    given: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path}:{self.line}"


def marked(path: Path) -> tuple[list[Block], list[str]]:
    """The runnable blocks of one Markdown file, and what is wrong with its markers."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    problems: list[str] = []
    for i, text in enumerate(lines):
        mark = MARKER.fullmatch(text.strip())
        if mark is None:
            continue
        where = f"{path.name}:{i + 1}"
        fence = FENCE.fullmatch(lines[i + 1]) if i + 1 < len(lines) else None
        if fence is None or fence.group("info").split()[:1] != ["bash"]:
            problems.append(f"{where}: a runnable marker must stand on the line before a ```bash fence")
            continue
        end = next((j for j in range(i + 2, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            problems.append(f"{where}: the block after the runnable marker is never closed")
            continue
        given = tuple((mark.group("given") or "").split())
        problems += [
            f"{where}: no way to make the given file {name!r} (tests/test_docs_examples.py GIVEN)"
            for name in given
            if name not in GIVEN
        ]
        blocks.append(Block(path, i + 2, "\n".join(lines[i + 2 : end]) + "\n", given))
    return blocks, problems


def all_marked() -> list[Block]:
    return [block for path in DOCS for block in marked(path)[0]]


def run(block: Block, directory: Path) -> str | None:
    """Run ``block`` in ``directory``; None when it exits 0, else why it failed."""
    for name in block.given:
        GIVEN[name](directory / name)
    (directory / ".venv").symlink_to(VENV, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSWAP_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("VIRTUAL_ENV", None)
    env["MODELSWAP_ROOT"] = str(directory / "models")
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    try:
        done = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + block.code],
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else (exc.output or "")
        return f"{block.where}: the example did not finish in {BLOCK_TIMEOUT} s\n{output[-3000:]}"
    if done.returncode != 0:
        return f"{block.where}: the example exited {done.returncode}\n{done.stdout[-3000:]}"
    return None


def test_every_runnable_marker_stands_before_a_bash_block_with_givens_it_can_make() -> None:
    problems = [problem for path in DOCS for problem in marked(path)[1]]
    assert not problems, "\n".join(problems)
    assert any(block.path.name == "README.md" for block in all_marked()), "the README's tour is no longer marked"


@pytest.mark.parametrize("block", all_marked(), ids=lambda block: block.where)
def test_a_runnable_example_runs_as_written(block: Block, tmp_path: Path) -> None:
    failure = run(block, tmp_path)
    if failure is not None:
        pytest.fail(failure, pytrace=False)


def test_a_failing_example_fails_naming_its_file_and_line(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "\n".join(
            [
                "# Examples",
                "<!-- runnable -->",
                "```bash",  # line 3
                "false | cat",
                "echo not reached",
                "```",
                "<!-- runnable -->",
                "```bash",  # line 8
                "echo $UNSET_IN_THIS_TEST",
                "```",
                "<!-- runnable: given metrics.json -->",
                "```bash",  # line 12
                "test -f metrics.json",
                f'test "$MODELSWAP_ROOT" = "$PWD/models" && test "$(command -v modelswap)" = "{BIN}/modelswap"',
                "```",
                "<!-- runnable -->",  # line 16
                "not a fence",
                "<!-- runnable: given nowhere.bin -->",  # line 18
                "```bash",
                "true",
                "```",
            ]
        )
        + "\n"
    )
    blocks, problems = marked(doc)
    assert [b.line for b in blocks] == [3, 8, 12, 19]
    assert problems == [
        "doc.md:16: a runnable marker must stand on the line before a ```bash fence",
        "doc.md:18: no way to make the given file 'nowhere.bin' (tests/test_docs_examples.py GIVEN)",
    ]
    outcomes = []
    for block in blocks[:3]:
        directory = tmp_path / f"run-{block.line}"
        directory.mkdir()
        outcomes.append(run(block, directory))
    piped, unset, fine = outcomes
    assert piped is not None and piped.startswith(f"{doc}:3: the example exited 1") and "not reached" not in piped
    assert unset is not None and unset.startswith(f"{doc}:8: the example exited 1")
    assert "UNSET_IN_THIS_TEST: unbound variable" in unset
    assert fine is None
