"""Architecture rules that a reader can otherwise only hope hold."""

import ast

from tests.conftest import ROOT

FORBIDDEN_IN_CORE = ("starlette", "uvicorn", "api", "httpx")


def test_core_never_imports_the_http_layer() -> None:
    offenders = []
    for path in sorted((ROOT / "core").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN_IN_CORE]
    assert offenders == []


def test_modules_stay_small() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "core").glob("*.py")}
    sizes |= {p.name: len(p.read_text().splitlines()) for p in (ROOT / "api").glob("*.py")}
    assert {n: s for n, s in sizes.items() if s > 450} == {}
