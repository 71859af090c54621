"""Project rules: the library never imports Prefect."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_library_packages_never_import_prefect():
    files = list((ROOT / "incop_core").rglob("*.py")) + list((ROOT / "deploy").rglob("*.py"))
    assert files
    offenders = [str(f.relative_to(ROOT)) for f in files if "prefect" in _imports(f)]
    assert offenders == []
