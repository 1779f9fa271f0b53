"""The package as a user installs it: a wheel built from the repo, installed into a fresh
virtual environment, used from Python and served, with nothing but ``modelswap`` on top."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.server import free_port


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


PACKAGED = ("pyproject.toml", "README.md", "modelswap", "core", "api")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of what the package is made of (the build leaves
    build/ and egg-info behind, which belong in no checkout)."""
    source = tmp_path_factory.mktemp("source")
    for name in PACKAGED:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, source, cwd=out)
    (built,) = out.glob("modelswap-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the wheel installed. Its dependencies come from this test run's
    environment through a plain path entry (a .pth line adds a directory without running
    that directory's own .pth hooks, so the editable install of the repo stays out)."""
    env_dir = tmp_path_factory.mktemp("venv") / "fresh"
    run(sys.executable, "-m", "venv", env_dir, cwd=env_dir.parent)
    python = env_dir / "bin" / "python"
    packages = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=env_dir).strip())
    (packages / "zz-test-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel, cwd=env_dir)
    yield env_dir


def test_the_wheel_holds_one_top_level_package_and_its_type_marker(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert archive.read(top_level).decode().split() == ["modelswap"]
    tops = {name.split("/", 1)[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"modelswap"}
    assert "modelswap/py.typed" in names
    assert "modelswap/core/store/store.py" in names and "modelswap/api/http/app.py" in names
    assert not any(n.startswith(("modelswap/tests", "modelswap/scripts")) for n in names)


def test_the_installed_package_is_imported_from_the_venv_not_the_repo(venv: Path, tmp_path: Path) -> None:
    probe = "import modelswap, modelswap.core.store.store, modelswap.api.http.app; print(modelswap.__file__)"
    where = run(venv / "bin" / "python", "-c", probe, cwd=tmp_path).strip()
    assert where.startswith(str(venv)), where
    assert "Store" in modelswap_all(venv, tmp_path) and "Client" in modelswap_all(venv, tmp_path)


def modelswap_all(venv: Path, cwd: Path) -> list[str]:
    out = run(venv / "bin" / "python", "-c", "import modelswap; print(' '.join(modelswap.__all__))", cwd=cwd)
    return out.split()


def test_mypy_strict_passes_on_the_installed_package(venv: Path, tmp_path: Path) -> None:
    out = run(
        sys.executable, "-m", "mypy", "-p", "modelswap",
        "--python-executable", venv / "bin" / "python",
        "--config-file", ROOT / "pyproject.toml",
        "--cache-dir", tmp_path / "mypy-cache",
        cwd=tmp_path,
    )  # fmt: skip
    assert "Success" in out


PUBLIC_API_SCRIPT = textwrap.dedent(
    """
    import sys, time, subprocess, urllib.request
    import modelswap
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    root, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    X, y = load_iris(return_X_y=True)
    store = modelswap.Store(root)
    first = store.publish("churn", LogisticRegression(max_iter=500).fit(X, y), metrics={"accuracy": 0.9},
                          example=X[:3], tags={"team": "ml"}, description="first")
    second = store.publish("churn", LogisticRegression(C=0.01, max_iter=500).fit(X, y), metrics={"accuracy": 0.8},
                           example=X[:3], parent=first.id)
    assert isinstance(first, modelswap.Version) and first.tags == {"team": "ml"}
    store.deploy("churn", first.id, reason="first deploy")
    assert store.best("churn", "accuracy").id == first.id
    assert [v.id for v in store.versions("churn")] == [second.id, first.id]

    server = subprocess.Popen([sys.executable, "-m", "modelswap", "--root", root, "serve", "--port", str(port)],
                              env={**__import__("os").environ, "MODELSWAP_ADMIN_TOKEN": token})
    try:
        client = modelswap.Client(f"http://127.0.0.1:{port}", token=token)
        for _ in range(300):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        assert client.predict("churn", X[:2].tolist())["version"] == first.id
        assert client.deploy("churn", second.id, reason="try")["current"] == second.id
        assert client.predict("churn", X[:2].tolist())["version"] == second.id
        back = client.rollback("churn", reason="worse")
        assert (back["previous"], back["current"]) == (second.id, first.id)
        assert client.predict("churn", X[:2].tolist())["version"] == first.id
    finally:
        server.terminate()
        server.wait(30)
    assert store.current("churn") == first.id
    assert [h.action for h in store.history("churn")][:3] == ["rollback", "deploy", "deploy"]
    assert store.load("churn").predict(X[:1]).tolist() == [0]
    print("public api ok")
    """
)


def test_publish_deploy_predict_and_roll_back_from_the_installed_package(venv: Path, tmp_path: Path) -> None:
    script = tmp_path / "use_modelswap.py"
    script.write_text(PUBLIC_API_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELSWAP_", "PYTHONPATH"))}
    out = run(venv / "bin" / "python", script, tmp_path / "models", free_port(), "t0ken", cwd=tmp_path, env=env)
    assert "public api ok" in out
