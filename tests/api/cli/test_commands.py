"""The ``modelswap`` command as a user runs it: a real process, exit codes, output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelswap.core.store.store import Store
from tests.conftest import ROOT


def run(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelswap", "--root", str(root), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def ok_json(root: Path, *args: str) -> Any:
    result = run(root, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    root = tmp_path_factory.mktemp("cli") / "models"
    first = ok_json(root, "train", "iris", "--deploy")
    second = ok_json(root, "train", "iris", "--estimator", "decision_tree")
    assert first["deployed"] and not second["deployed"]
    return root, first["version"], second["version"]


def test_train_publish_versions_status_deploy_rollback_history(trained: tuple[Path, str, str], iris_file: Path) -> None:
    root, first, second = trained
    published = ok_json(root, "publish", "iris", str(iris_file), "--tag", "src=test")
    third = published["version"]
    assert published["reference"] is False  # said in the answer ...
    text = run(root.with_name("elsewhere"), "publish", "iris", str(iris_file))
    assert text.returncode == 0 and "NoReferenceWarning" not in text.stderr  # ... and not warned besides
    versions = ok_json(root, "versions", "iris")
    assert [v["id"] for v in versions] == [third, second, first]
    assert ok_json(root, "deploy", "iris", second, "--reason", "try")["current"] == second
    table = run(root, "versions", "iris").stdout
    assert "current" in table and "ACCURACY" in table and "previous" in table
    status = ok_json(root, "status", "iris")
    assert (status["current"], status["previous"]) == (second, first)
    back = ok_json(root, "rollback", "iris")
    assert (back["previous"], back["current"]) == (second, first)
    history = ok_json(root, "history", "iris")
    assert [h["action"] for h in history[:3]] == ["rollback", "deploy", "deploy"]
    assert ok_json(root, "models")[0]["current"] == first
    best = ok_json(root, "best", "iris", "--metric", "accuracy")
    assert best["id"] in (first, second)
    assert ok_json(root, "verify")["ok"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("deploy", "iris", "../../etc"), "invalid version id"),
        (("deploy", "../iris", "20261123-000000-abcdef"), "invalid model name"),
        (("deploy", "iris", "20200101-000000-abcdef"), "has no version"),
        (("versions", "nope"), "no model named"),
        (("publish", "iris", "/nonexistent.joblib"), "is not a file"),
        (("train", "iris", "--dataset", "mnist"), "unknown dataset"),
        (("best", "iris", "--metric", "nope"), "no version of iris has a metric"),
    ],
)
def test_errors_are_one_line_on_stderr_with_exit_1(
    trained: tuple[Path, str, str], args: tuple[str, ...], message: str
) -> None:
    result = run(trained[0], *args)
    assert result.returncode == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_bad_usage_exits_2(trained: tuple[Path, str, str]) -> None:
    assert run(trained[0], "deploy").returncode == 2
    assert run(trained[0], "frobnicate").returncode == 2


def test_verify_exits_1_until_repair_mends_a_damaged_store(tmp_path: Path, iris_file: Path) -> None:
    root = tmp_path / "models"
    ok_json(root, "publish", "iris", str(iris_file), "--deploy")
    (root / "iris" / "versions.json").write_text("{ truncated")
    (root / "iris" / "versions" / ".staging-20261123-000000-abcdef-00").mkdir()
    broken = run(root, "versions", "iris")
    assert broken.returncode == 1 and "versions.json" in broken.stderr
    assert run(root, "verify").returncode == 1
    assert run(root, "verify", "--repair").returncode == 0
    clean = run(root, "verify")
    assert clean.returncode == 0 and "no problems" in clean.stdout


def test_gc_dry_run_deletes_nothing(tmp_path: Path, iris_file: Path) -> None:
    root = tmp_path / "models"
    for _ in range(3):
        ok_json(root, "publish", "iris", str(iris_file), "--deploy")
    plan = ok_json(root, "gc", "iris", "--keep", "0", "--dry-run")
    assert len(plan["deleted"]) == 1 and len(list((root / "iris" / "versions").iterdir())) == 3
    assert len(ok_json(root, "gc", "iris", "--keep", "0")["deleted"]) == 1
    assert len(list((root / "iris" / "versions").iterdir())) == 2


def test_delete_removes_one_version_never_a_protected_one(tmp_path: Path, iris_file: Path) -> None:
    root = tmp_path / "models"
    live = ok_json(root, "publish", "iris", str(iris_file), "--deploy")["version"]
    spare = ok_json(root, "publish", "iris", str(iris_file))["version"]
    refused = run(root, "delete", "iris", live)
    assert refused.returncode == 1 and f"iris {live} is protected (live)" in refused.stderr
    assert ok_json(root, "delete", "iris", spare) == {"model": "iris", "deleted": spare}
    assert [v["id"] for v in ok_json(root, "versions", "iris")] == [live]
    assert not (root / "iris" / "versions" / spare).exists()
    assert ok_json(root, "history", "iris")[0]["action"] == "delete"


def test_retrain_script_deploys_only_when_the_metric_beats_live(tmp_path: Path) -> None:
    root = tmp_path / "models"

    def retrain(*args: str) -> dict[str, Any]:
        result = subprocess.run(
            [sys.executable, "scripts/retrain.py", "iris", "--root", str(root), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    first = retrain("--deploy-if-better", "accuracy")
    assert first["deployed"], "nothing live: the first version deploys"
    same = retrain("--deploy-if-better", "accuracy")
    assert not same["deployed"] and "does not beat" in same["reason"]
    assert Store(root).history("iris", limit=1)[0].to_version == first["version"]


def test_a_publish_without_a_reference_says_once_that_drift_monitoring_is_off(tmp_path: Path, iris_file: Path) -> None:
    root = tmp_path / "models"
    result = run(root, "publish", "iris", str(iris_file))
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith("published iris ") and len(lines) == 2
    assert lines[1] == (
        "no reference: drift monitoring is off for this version; pass --reference FILE (the rows it was trained on)"
    )
    assert ok_json(root, "publish", "iris", str(iris_file))["reference"] is False


def test_publish_keeps_the_profile_of_a_reference_file(tmp_path: Path, iris_file: Path) -> None:
    from sklearn.datasets import load_iris

    from modelswap.core.monitoring.profiles import load_reference

    root = tmp_path / "models"
    training = tmp_path / "train.csv"
    training.write_text("a,b,c,d\n" + "\n".join(",".join(map(str, row)) for row in load_iris().data.tolist()))
    published = run(root, "publish", "iris", str(iris_file), "--reference", str(training))
    assert published.returncode == 0 and "no reference" not in published.stdout + published.stderr
    version = published.stdout.split()[2]
    profile = load_reference(root / "iris" / "versions" / version)
    assert profile is not None and profile.rows == 150 and profile.prediction is not None
    assert ok_json(root, "verify")["ok"] is True
    shown = run(root, "show", Store(root).version("iris", version).model_id)
    assert "reference: 150 rows (#0, #1, #2, #3)" in shown.stdout, shown.stderr
    narrow = tmp_path / "narrow.json"
    narrow.write_text("[[5.1, 3.5, 1.4]]")
    result = run(root, "publish", "iris", str(iris_file), "--reference", str(narrow))
    assert result.returncode == 1
    assert "the reference does not fit the signature: expects 4 features per row, got 3" in result.stderr
    assert len(list((root / "iris" / "versions").iterdir())) == 1
