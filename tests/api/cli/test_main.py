"""The command's manners: help that documents every argument, options only where they
act, quiet exits on a closed pipe, one error line for a busy port, readable text."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from modelswap.api.cli.main import build_parser
from modelswap.core.store import history
from modelswap.core.store import registry as reg
from modelswap.core.store.store import Store
from tests.api.cli.test_commands import ok_json, run
from tests.conftest import ROOT, StepClock, publish


def subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every (nested) sub-command parser by its full name, e.g. 'canary start'."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                full = f"{prefix}{name}"
                found[full] = child
                found |= subcommands(child, full + " ")
    return found


def test_every_argument_of_every_command_has_a_help_line() -> None:
    missing = [
        f"{name}: {action.dest}"
        for name, parser in subcommands(build_parser()).items()
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert missing == []


def test_canary_start_help_shows_its_own_options_with_defaults() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "modelswap", "canary", "start", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0
    assert "--fraction" in result.stdout and "--max-error-rate" in result.stdout
    assert "(default: 200)" in result.stdout  # --min-requests
    assert "--keep" not in result.stdout


@pytest.mark.parametrize(
    "args",
    [("verify", "--url", "http://x"), ("serve", "--url", "http://x"), ("demo", "--json")],
)
def test_options_a_command_cannot_use_are_refused_as_bad_usage(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = run(tmp_path, *args)
    assert result.returncode == 2 and "unrecognized arguments" in result.stderr


def test_a_closed_stdout_ends_the_command_quietly(tmp_path: Path, iris_a: object) -> None:
    store = Store(tmp_path / "models", clock=StepClock())
    version = publish(store, iris_a)
    journal = store.paths("iris").history
    entries = [e for _, e in history.read_from(journal)]
    entries += [reg.HistoryEntry(f"2026-11-23T02:{i:06d}", "deploy", "t", None, version, "x") for i in range(3000)]
    history.write_all(journal, entries)  # far more text than a pipe buffer holds
    argv = [sys.executable, "-m", "modelswap", "--root", str(store.root), "history", "iris", "--limit", "3000"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith(b"TIME")
        proc.stdout.close()  # what `| head -1` does
        err = proc.stderr.read()
        assert proc.wait(timeout=60) == 0
    assert err == b""


def test_serve_on_a_busy_port_is_one_error_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(tmp_path / "models", "serve", "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "models" / ".admin-token").exists(), "nothing is written when the port is taken"


def test_gc_says_which_versions_it_kept_and_why(tmp_path: Path, iris_file: Path) -> None:
    root = tmp_path / "models"
    ids = [ok_json(root, "publish", "iris", str(iris_file), "--deploy")["version"] for _ in range(3)]
    ok_json(root, "publish", "iris", str(iris_file))
    text = run(root, "gc", "iris", "--keep", "1").stdout
    assert "deleted 1 version(s), kept 3" in text
    assert f"deleted  {ids[0]}" in text
    assert f"kept  {ids[2]}  (live)" in text
    assert f"kept  {ids[1]}  (rollback target)" in text
    assert "(newest 1)" in text


def test_train_deploy_prints_what_it_deployed_and_canary_status_reads_as_text(tmp_path: Path) -> None:
    root = tmp_path / "models"
    first = run(root, "train", "iris", "--deploy")
    assert first.returncode == 0
    version = first.stdout.split()[2]
    assert f"deployed iris {version}: --deploy" in first.stdout
    other = ok_json(root, "train", "iris", "--estimator", "decision_tree")["version"]
    started = run(root, "canary", "start", "iris", other, "--fraction", "0.05", "--max-error-rate", "0.05")
    assert "guard: max error rate 5% after 200 requests" in started.stdout, started.stdout + started.stderr
    status = run(root, "canary", "status", "iris").stdout
    assert f"{other} on 5% of traffic" in status and "{" not in status
