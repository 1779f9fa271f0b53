"""Architecture rules that a reader can otherwise only hope hold."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

# core never reaches the transports: no web framework, no server, no HTTP client, no api.
FORBIDDEN_IN_CORE = ("starlette", "uvicorn", "httpx", "modelswap.api", "api")


def package_of(path: Path) -> str:
    """The dotted package a repo file installs into (``core/x.py`` -> ``modelswap.core``)."""
    return ".".join(["modelswap", *path.relative_to(ROOT).parts[:-1]])


def imported_modules(source: str, package: str) -> list[str]:
    """Every module an ``import`` or ``from ... import`` in ``source`` names, as an absolute
    dotted name (relative imports are resolved against ``package``)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return names


def is_forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_CORE)


def test_core_never_imports_the_http_layer_or_the_cli() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "core").rglob("*.py"))
        for name in imported_modules(path.read_text(), package_of(path))
        if is_forbidden(name)
    ]
    assert offenders == []


def test_the_boundary_check_sees_nested_and_relative_imports() -> None:
    """The rule must catch ``modelswap.api`` imports, not only a first dotted part."""
    source = "from modelswap.api.http import app\nfrom ..api import client\nimport starlette.routing\n"
    found = [n for n in imported_modules(source, "modelswap.core") if is_forbidden(n)]
    assert "modelswap.api.http" in found
    assert "modelswap.api" in found
    assert "starlette.routing" in found


def test_modules_stay_small() -> None:
    files = [*(ROOT / "core").rglob("*.py"), *(ROOT / "api").rglob("*.py"), *(ROOT / "modelswap").rglob("*.py")]
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in files}
    assert {n: s for n, s in sizes.items() if s > 450} == {}


def test_the_tree_is_lint_clean_and_formatted() -> None:
    ruff = [sys.executable, "-m", "ruff"]
    for args in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([*ruff, *args], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def core_modules() -> dict[str, Path]:
    """Every module of ``core``, by dotted name (``modelswap.core.store.history``)."""
    found = {}
    for path in sorted((ROOT / "core").rglob("*.py")):
        if path.name != "__init__.py":
            found[".".join(["modelswap", *path.relative_to(ROOT).with_suffix("").parts])] = path
    return found


def test_every_core_module_has_its_test_file_or_the_readme_names_the_one_that_covers_it() -> None:
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Development") :]
    missing = []
    for path in core_modules().values():
        relative = path.relative_to(ROOT / "core")
        if (ROOT / "tests" / "core" / relative.parent / f"test_{path.name}").exists():
            continue
        line = next((line for line in layout.splitlines() if line.strip().startswith(path.name)), "")
        covering = line.split("(tested in ", 1)[1].split(")", 1)[0] if "(tested in " in line else None
        if covering is None or not (ROOT / covering).is_file():
            missing.append(
                f"{relative}: no tests/core/{relative.parent}/test_{path.name}, and the README's layout line "
                "does not say '(tested in tests/...py)' naming a test file that exercises it"
            )
    assert not missing, "\n".join(missing)


def test_core_has_no_import_cycle_not_even_for_type_checking() -> None:
    """Imports between core's modules, those under ``if TYPE_CHECKING`` and inside functions
    included, form no cycle: each module can be read knowing only the ones below it."""
    modules = core_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name.rsplit(".", 1)[0]
        graph[name] = {
            target
            for imported in imported_modules(path.read_text(), package)
            for target in (imported, imported.rsplit(".", 1)[0])
            if target in modules and target != name
        }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path_: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path_.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path_[path_.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path_.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    short = [" -> ".join(n.removeprefix("modelswap.core.") for n in c) for c in cycles]
    assert not cycles, "import cycles in core:\n" + "\n".join(short)


def test_every_package_of_core_and_api_is_listed_for_the_wheel() -> None:
    """setuptools installs only the packages pyproject.toml lists: a new one left out
    works from the checkout and is missing from the wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        "modelswap." + ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("core", "api")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found - listed == set()
