"""The package boundaries, read from the source with `ast`: no import circle, each layer in its place.

The graph has an edge for every import a module makes, at the top or inside a function (a lazy
import still runs), except under `if TYPE_CHECKING:`. `from pkg import name` points at `pkg.name`
when that is a module, else at `pkg` itself.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "labapp"
MAX_LINES = 400
MAX_UNDOCUMENTED_PARAMETERS = 4


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Walk the tree, skipping the bodies of `if TYPE_CHECKING:` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def imports_of(name: str) -> set[str]:
    """Return every module (in labapp or not) that module `name` imports."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
    return found


GRAPH = {name: {target for target in imports_of(name) if target in MODULES} for name in MODULES}


def reachable(start: str) -> set[str]:
    """Return every labapp module that importing `start` runs, by its explicit imports."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in GRAPH[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def externals(start: str) -> set[str]:
    """Return the top-level names of the non-labapp modules `start` imports, itself and through labapp."""
    names = set()
    for module in {start} | reachable(start):
        names |= {target.split(".")[0] for target in imports_of(module) if not target.startswith("labapp")}
    return names


def in_package(module: str, package: str) -> bool:
    return module == f"labapp.{package}" or module.startswith(f"labapp.{package}.")


def cycles() -> list[list[str]]:
    """Return the import circles (Tarjan's strongly connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in GRAPH[node]:
                found.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_anywhere() -> None:
    assert cycles() == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if in_package(m, "sqsd")))
def test_the_daemon_never_imports_the_worker_the_course_or_widgets(module: str) -> None:
    bad = sorted(
        m for m in reachable(module) if any(in_package(m, p) for p in ("worker", "course", "widgets"))
    )
    assert bad == [], f"{module} reaches {bad}"
    assert "ipywidgets" not in externals(module)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if in_package(m, "worker")))
def test_the_worker_never_imports_the_daemon(module: str) -> None:
    bad = sorted(m for m in reachable(module) if in_package(m, "sqsd") or in_package(m, "course"))
    assert bad == [], f"{module} reaches {bad}"


WEBTIER_MAY_IMPORT = (
    "labapp.errors",
    "labapp.sqs",
    "labapp.worker.scenarios",
    "labapp.worker.ledger",
    "labapp.runtime.servers",
)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if in_package(m, "webtier")))
def test_the_web_tier_never_imports_the_daemon_the_course_or_widgets(module: str) -> None:
    # A web tier only enqueues: it shares the worker's business rules, never the daemon's loop.
    direct = sorted(
        target
        for target in GRAPH[module]
        if not in_package(target, "webtier")
        and not any(target == a or target.startswith(f"{a}.") for a in WEBTIER_MAY_IMPORT)
    )
    assert direct == [], f"{module} imports {direct}"
    bad = sorted(m for m in reachable(module) if any(in_package(m, p) for p in ("sqsd", "course", "widgets")))
    assert bad == [], f"{module} reaches {bad}"
    assert "ipywidgets" not in externals(module)


PURE = ("labapp.scaling.policies", "labapp.scaling.simulate")
PURE_EXTERNALS = {"__future__", "bisect", "collections", "dataclasses", "math", "numpy", "typing"}
IO_CALLS = {"open", "print", "input", "sleep"}


@pytest.mark.parametrize("module", PURE)
def test_policies_and_the_simulator_do_no_io(module: str) -> None:
    assert externals(module) <= PURE_EXTERNALS, externals(module) - PURE_EXTERNALS
    for name in {module} | reachable(module):
        assert name in PURE or name in ("labapp.errors", "labapp.scaling.units"), f"{module} reaches {name}"
        tree = ast.parse(MODULES[name].read_text())
        calls = {
            node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
        }
        assert not calls & IO_CALLS, f"{name} calls {calls & IO_CALLS}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if in_package(m, "widgets")))
def test_widgets_use_only_the_public_api_of_other_packages(module: str) -> None:
    private = sorted(
        target
        for target in GRAPH[module]
        if target.count(".") > 1 and not target.startswith("labapp.widgets")
    )
    assert private == [], f"{module} imports {private}; import from the package instead"


RUNTIME = ("runtime", "sqs", "sqsd", "worker", "scaling", "chaos", "widgets", "cli")


def test_the_checks_core_imports_nothing_of_the_runtime() -> None:
    core = "labapp.course.checks.core"
    bad = sorted(m for m in reachable(core) if any(in_package(m, p) for p in RUNTIME))
    assert bad == []
    assert externals(core) & {"boto3", "botocore", "flask", "requests", "ipywidgets", "waitress"} == set()
    # And when it runs: the lazy course API must not pull the runtime in behind its back.
    probe = (
        "import sys, labapp.course.checks.core; "
        "loaded = sorted(m for m in sys.modules if m.startswith(('labapp.runtime', 'labapp.sqs', 'boto3', 'flask')));"
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_longer_than_400_lines(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(ROOT)} has {lines} lines; split it"


def _constructors() -> Iterator[tuple[str, ast.ClassDef, ast.FunctionDef]]:
    for name, path in MODULES.items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                        yield name, node, item


@pytest.mark.parametrize(
    "where, cls, init",
    [(f"{m}.{c.name}", c, i) for m, c, i in _constructors()],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_public_constructors_with_many_parameters_document_them(
    where: str, cls: ast.ClassDef, init: ast.FunctionDef
) -> None:
    arguments = [a.arg for a in [*init.args.args, *init.args.kwonlyargs] if a.arg != "self"]
    if len(arguments) <= MAX_UNDOCUMENTED_PARAMETERS:
        return
    text = (ast.get_docstring(cls) or "") + (ast.get_docstring(init) or "")
    missing = [arg for arg in arguments if f"`{arg}`" not in text and f"{arg}:" not in text]
    assert missing == [], (
        f"{where} takes {len(arguments)} parameters; its docstring does not explain {missing}"
    )


def _readme_map() -> set[str]:
    """Return the files the README's layout block lists under labapp/, as paths."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```text\nlabapp/\n", 1)[1].split("```", 1)[0]
    listed: set[str] = set()
    folders: list[tuple[int, str]] = [(0, "labapp")]
    for line in block.splitlines():
        entry = line.split()[0] if line.strip() else ""
        indent = len(line) - len(line.lstrip())
        if not entry or indent == 0:
            continue
        while folders and folders[-1][0] >= indent:
            folders.pop()
        parent = folders[-1][1] if folders else "labapp"
        if entry.endswith("/"):
            folders.append((indent, f"{parent}/{entry.rstrip('/')}"))
            listed.add(f"{parent}/{entry.rstrip('/')}/__init__.py")
        else:
            listed.add(f"{parent}/{entry}")
    return listed


def test_the_readme_map_lists_every_module_and_no_other() -> None:
    actual = {
        str(path.relative_to(ROOT))
        for path in PACKAGE.rglob("*")
        if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts
    }
    actual -= {"labapp/__init__.py", "labapp/__main__.py"}
    listed = _readme_map()
    assert sorted(actual - listed) == [], "modules missing from the README map"
    assert sorted(listed - actual) == [], "the README map names modules that do not exist"


def test_nothing_cites_a_reference_outside_the_repository() -> None:
    # The brief's REFERENCE.md sits beside the repository; what the kit cites must be in it (docs/).
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    here = Path(__file__).resolve()
    citing = [
        name
        for name in tracked.stdout.split()
        if (ROOT / name).is_file()
        and (ROOT / name).resolve() != here
        and "REFERENCE.md" in (ROOT / name).read_text(errors="replace")
    ]
    assert citing == []
