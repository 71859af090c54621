"""Project rules: the library never imports Prefect; the core imports neither deploy nor flows; the device side
(deploy/edge) imports nothing of the training side; deploy/ is named by its parts; tests/ mirrors the packages."""

import ast
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = {"export", "measure", "edge", "decisions"}
TRAINING_SIDE = ("torch", "torchvision", "prefect", "flows", "deploy.export", "deploy.measure", "deploy.decisions")
LAZY_ONNX = {"publish.py", "inspect.py", "model_checks.py"}  # publishing reads the model: onnx, inside functions only
SKIPPED_DIRS = {".git", ".venv", "build", "dist", "runs", "__pycache__", ".pytest_cache", "node_modules"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _imported(path: Path) -> list[tuple[str, bool]]:
    """Every module `path` imports, absolute (relative imports resolved), with whether it is at module level."""
    package = _module_name(path).split(".")
    package = package if path.name == "__init__.py" else package[:-1]
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found += [(module, id(node) in top)] if node.module else [(f"{module}.{a.name}", id(node) in top)
                                                                      for a in node.names]
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_library_packages_never_import_prefect():
    files = list((ROOT / "incop_core").rglob("*.py")) + list((ROOT / "deploy").rglob("*.py"))
    assert files
    offenders = [str(f.relative_to(ROOT)) for f in files if "prefect" in _imports(f)]
    assert offenders == []


def test_the_core_imports_neither_deploy_nor_flows():
    files = list((ROOT / "incop_core").rglob("*.py"))
    offenders = {str(f.relative_to(ROOT)): sorted(_imports(f) & {"deploy", "flows"}) for f in files}
    assert {f: names for f, names in offenders.items() if names} == {}


def _edge_offence(path: Path, name: str, top_level: bool) -> bool:
    if any(_within(name, banned) for banned in TRAINING_SIDE):
        return True
    if _within(name, "onnx"):
        return top_level or path.name not in LAZY_ONNX
    return _within(name, "incop_core") and name != "incop_core.foundations.errors"


def test_the_device_side_imports_nothing_of_the_training_side():
    files = list((ROOT / "deploy" / "edge").glob("*.py"))
    assert len(files) > 10
    offenders = [(str(f.relative_to(ROOT)), name) for f in files for name, top in _imported(f)
                 if _edge_offence(f, name, top)]
    assert offenders == []


def test_the_import_resolver_sees_relative_and_lazy_imports(tmp_path):
    assert ("deploy.edge.errors", True) in _imported(ROOT / "deploy" / "edge" / "pull.py")
    assert ("onnx", False) in _imported(ROOT / "deploy" / "edge" / "inspect.py")
    assert ("deploy.measure.runtime", True) in _imported(ROOT / "deploy" / "export" / "exporter.py")
    assert ("deploy.export.filenames", True) in _imported(ROOT / "deploy" / "export" / "exporter.py")  # from . import x


def test_deploy_is_named_by_its_parts():
    entries = {p.name for p in (ROOT / "deploy").iterdir() if p.name != "__pycache__"}
    assert entries == PARTS | {"__init__.py", "errors.py", "transfer.py"}
    for part in PARTS:
        doc = ast.get_docstring(ast.parse((ROOT / "deploy" / part / "__init__.py").read_text()))
        assert doc and "\n" not in doc, f"deploy/{part}/__init__.py needs a one-line docstring"


def _project_files() -> list[Path]:
    found = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        found += [Path(folder) / n for n in names if Path(n).suffix in {".py", ".md", ".toml", ".yaml", ".yml", ".sh"}
                  or n == "Dockerfile"]
    return found


def test_no_project_file_refers_to_the_shared_folder_outside_the_repository():
    needle = "/".join(["..", "shared"])
    files = _project_files()
    assert ROOT / "Dockerfile" in files and ROOT / "scripts" / "bootstrap.sh" in files
    assert [str(f.relative_to(ROOT)) for f in files if needle in f.read_text(errors="replace")] == []


# incop_core's folders, lowest first: a folder imports only from folders before it (and itself)
CORE_LAYERS = ("foundations", "platforms", "datasets", "models", "pruning", "consistency", "criteria", "training",
               "imp", "experiments", "cli")


def _core_modules() -> dict[str, Path]:
    modules = {}
    for path in (ROOT / "incop_core").rglob("*.py"):
        name = _module_name(path)
        modules[name.removesuffix(".__init__")] = path
    return modules


def _core_graph() -> dict[str, set[str]]:
    """Module -> the incop_core modules it imports (lazy imports too; `from pkg import mod` counts as pkg.mod)."""
    modules = _core_modules()

    def known(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {known(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]) if node.level else ""
                module = ".".join(p for p in (base, node.module or "") if p)
                found |= {known(f"{module}.{a.name}") for a in node.names}
        graph[name] = {m for m in found if m and m != name}
    return graph


def test_incop_core_is_named_by_its_concepts_each_folder_saying_what_it_owns():
    entries = {p.name for p in (ROOT / "incop_core").iterdir() if p.name != "__pycache__"}
    assert entries == set(CORE_LAYERS) | {"__init__.py"}
    for folder in CORE_LAYERS:
        doc = ast.get_docstring(ast.parse((ROOT / "incop_core" / folder / "__init__.py").read_text()))
        assert doc and "\n" not in doc, f"incop_core/{folder}/__init__.py needs a one-line docstring"


def test_no_import_circle_inside_incop_core():
    graph, circles = _core_graph(), []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert circles == []


def test_no_folder_of_incop_core_imports_a_folder_above_it():
    def layer(module: str) -> int:
        parts = module.split(".")
        return CORE_LAYERS.index(parts[1]) if len(parts) > 2 or parts[1] in CORE_LAYERS else -1

    upward = [(src, dst) for src, targets in _core_graph().items() for dst in targets
              if layer(dst) > layer(src) >= 0]
    assert upward == []


MAX_MODULE_LINES = 200  # a module longer than this says why in its docstring ("longer than 200 lines because ...")


def test_no_module_of_the_packages_is_over_200_lines_without_saying_why():
    long = [f"{path.relative_to(ROOT)} ({lines} lines)" for package in ("incop_core", "deploy", "flows")
            for path in sorted((ROOT / package).rglob("*.py"))
            if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
            and "longer than 200 lines because" not in (ast.get_docstring(ast.parse(path.read_text())) or "")]
    assert long == []


def test_the_layout_checks_see_a_circle_and_an_upward_import():
    graph = _core_graph()
    assert "incop_core.pruning.masks" in graph["incop_core.pruning.groups"]  # `from incop_core.pruning.masks import`
    assert "incop_core.criteria.accuracy" in graph["incop_core.criteria"]  # `from incop_core.criteria import accuracy`


TESTS = ROOT / "tests"


def _test_import_offences(path: Path) -> list[str]:
    """The test modules `path` imports: `tests.<...>.test_*` or a bare `test_*` (relative imports resolved)."""
    package = _module_name(path).split(".")[:-1]
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names += ([module] if node.module else []) + [f"{module}.{a.name}".lstrip(".") for a in node.names]
    return [name for name in names if name.split(".")[0].startswith("test_")
            or (name.split(".")[0] == "tests" and any(p.startswith("test_") for p in name.split(".")))]


def test_tests_mirror_the_packages_and_no_test_module_imports_another():
    """A test module sits at tests/ (project-wide), or in tests/<package>/<folder>/ when <package>/<folder> is a
    package folder of the project; shared helpers live in tests/support/ (no tests there), never in a test module."""
    files = [f for f in TESTS.rglob("*.py") if "__pycache__" not in f.parts]
    misplaced, helpers, missing_init, imports = [], [], set(), {}
    for f in files:
        folder = f.parent.relative_to(TESTS)
        if f.parent != TESTS and not (f.parent / "__init__.py").is_file():
            missing_init.add(str(folder))
        if f.name.startswith("test_"):
            if folder.parts[:1] == ("support",) or (folder.parts and not (ROOT / folder / "__init__.py").is_file()):
                misplaced.append(str(f.relative_to(ROOT)))
        elif f.name not in {"__init__.py", "conftest.py"} and folder.parts[:1] != ("support",):
            helpers.append(str(f.relative_to(ROOT)))
        if _test_import_offences(f):
            imports[str(f.relative_to(ROOT))] = _test_import_offences(f)
    assert len([f for f in files if f.name.startswith("test_")]) > 50 and (TESTS / "__init__.py").is_file()
    assert misplaced == [], "move these next to the package they test (tests/<package>/<folder>/) or to tests/"
    assert helpers == [], "helpers belong in tests/support/"
    assert missing_init == set(), "every folder under tests/ is a package (an empty __init__.py)"
    assert imports == {}, "a test module imports another one: move what it shares to tests/support/"
