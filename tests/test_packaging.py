"""Packaging: a wheel built from this tree installs into a fresh virtual environment and runs there; pyproject.toml
agrees with the ALE pin; the package's import graph has no cycle and the report imports matplotlib only to draw."""

import ast
import os
import site
import subprocess
import sys
import sysconfig
import time
import venv
import zipfile
from pathlib import Path

import pytest

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


def test_pyproject_pins_the_ale_py_release_whose_source_is_compiled_in():
    tomllib = pytest.importorskip("tomllib")
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import ale_source
    finally:
        sys.path.remove(str(ROOT / "tools"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert f"ale-py=={ale_source.ALE_PY_VERSION}" in project["dependencies"]
    import actormimic_fast
    assert project["version"] == actormimic_fast.__version__


# Run in the fresh environment from a folder outside the tree, with -I (no PYTHONPATH, no current folder on sys.path).
SMOKE = """
import sys, numpy as np, torch
import actormimic_fast
from actormimic_fast import MultiGameEnvPool, _C
prefix = sys.argv[1]
assert actormimic_fast.__file__.startswith(prefix), actormimic_fast.__file__
assert _C.__file__.startswith(prefix), _C.__file__
pool = MultiGameEnvPool(["pong", "breakout"], envs_per_game=1, seed=0)
out = pool.reset()
assert out.obs.shape == (2, 4, 84, 84), out.obs.shape
for _ in range(20):
    out = pool.step(np.zeros(pool.num_envs, np.int64))
pool.close()
assert out.obs[:, -1].any(), "the frames are blank"
# uniform student and teacher over 18 legal actions: the cross-entropy is log 18
legal = torch.ones(2, 18, dtype=torch.bool)
loss = actormimic_fast.ops.masked_softmax_xent(torch.zeros(2, 18), torch.zeros(2, 18), legal)
assert torch.allclose(loss, torch.full((2,), float(np.log(18)))), loss
print("ok", actormimic_fast.__file__)
"""


def test_wheel_installs_into_a_fresh_venv_and_steps_a_pool(tmp_path):
    """`pip wheel --no-build-isolation` reuses the object cache in build/temp (filled by the editable build that
    `make test` runs first), so only the link runs. The fresh environment gets the wheel, then a .pth file naming
    this environment's site-packages folders: the same torch and run-time dependencies without installing them
    again (`venv --system-site-packages` would not do: from a venv it exposes the base interpreter's packages, not
    this venv's). Folders named in a .pth file are only added to sys.path, their own .pth files are not run, so an
    editable install here cannot leak the source tree in; the smoke run checks where the package came from."""
    start = time.perf_counter()
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index",
                            "-w", str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    built = time.perf_counter() - start
    (wheel,) = (tmp_path / "dist").glob("actormimic_fast-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("actormimic_fast/_C.") and n.endswith(".so") for n in names), names
    assert "actormimic_fast/report/__init__.py" in names and not any(n.startswith("tests/") for n in names)

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    # Installed before the .pth is written, so that pip sees an empty environment.
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                              "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    site_packages = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    paths = sysconfig.get_paths()
    outer = dict.fromkeys([site.getusersitepackages(), *site.getsitepackages(), paths["purelib"], paths["platlib"]])
    Path(site_packages, "outer_environment.pth").write_text("".join(f"{p}\n" for p in outer if os.path.isdir(p)))

    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    smoke = subprocess.run([python, "-I", "-c", SMOKE, str(env_dir)], capture_output=True, text=True, cwd=run_dir,
                           env=environ, timeout=300)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert smoke.stdout.startswith("ok ")
    script = subprocess.run([env_dir / "bin" / "actormimic-fast", "--help"], capture_output=True, text=True,
                            cwd=run_dir, env=environ, timeout=300)
    assert script.returncode == 0 and "train-expert" in script.stdout, script.stdout + script.stderr
    print(f"wheel built in {built:.1f} s, whole test {time.perf_counter() - start:.1f} s")


def import_copy_of_the_package(tmp_path: Path, native_core: bytes | None) -> subprocess.CompletedProcess:
    """Import a copy of the package's Python files, with `native_core` as its _C library (None: none)."""
    copy = tmp_path / "actormimic_fast"
    for source in PACKAGE.rglob("*.py"):
        target = copy / source.relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    if native_core is not None:
        (copy / f"_C{sysconfig.get_config_var('EXT_SUFFIX')}").write_bytes(native_core)
    # -S: no .pth files, so that an editable install's finder cannot supply the source tree's _C.
    site_packages = list(dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]))
    code = f"import sys; sys.path[:0] = [{str(tmp_path)!r}]; sys.path += {site_packages!r}; import actormimic_fast"
    return subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path)


def test_import_says_how_to_build_a_missing_native_core(tmp_path):
    proc = import_copy_of_the_package(tmp_path, None)
    assert proc.returncode != 0
    assert "native core (_C) is not built" in proc.stderr and "--no-build-isolation -e ." in proc.stderr


def test_import_says_a_native_core_that_fails_to_load_must_match_torch(tmp_path):
    import torch
    proc = import_copy_of_the_package(tmp_path, b"not a shared library")
    assert proc.returncode != 0
    assert f"failed to load with torch {torch.__version__}" in proc.stderr, proc.stderr
    assert "built against the torch it runs with" in proc.stderr
