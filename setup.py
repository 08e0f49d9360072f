"""Build actormimic_fast._C: the multi-game ALE engine, the replay memory and the fused ops.

Metadata, dependencies and the build system are in pyproject.toml; this file holds what must be code, the
extension's sources and flags. Install with `pip install --no-build-isolation .` (or `-e .`) into an environment
that already has torch, so that the extension is built against the torch it runs with.
C++ is always built; everything under a cuda/ folder (the .cu kernels and their torch-glue .cpp) only
when torch was built with CUDA and nvcc is found (or FORCE_CUDA=1), for the architectures in
TORCH_CUDA_ARCH_LIST (torch's default: the visible GPUs, else all it supports). ALE's emulator core is
compiled from the pinned ale-py source release (tools/ale_source.py) with hidden symbol visibility, so
it cannot clash with ale-py's own copy.
Environment: ACTORMIMIC_ALE_SOURCE (offline ALE source), FORCE_CUDA, TORCH_CUDA_ARCH_LIST,
ACTORMIMIC_DEBUG=1 (-O0 -g), ACTORMIMIC_TSAN=1 (ThreadSanitizer build), MAX_JOBS (parallel compiles).
"""

import os
import sys
from pathlib import Path

import setuptools
from setuptools import setup

# pyproject.toml's [project] table is read by setuptools 61 and later only; an older one (possible with
# --no-build-isolation, which skips the [build-system] requirements) would build a package without name or dependencies.
if int(setuptools.__version__.split(".")[0]) < 64:
    sys.exit(f"actormimic_fast needs setuptools>=64 to build (found {setuptools.__version__}): "
             "pip install --upgrade setuptools")

ROOT = Path(__file__).parent.resolve()
sys.path.insert(0, str(ROOT / "tools"))
import ale_source  # noqa: E402

from torch.utils import cpp_extension  # noqa: E402


def relative(paths):
    return [os.path.relpath(p, ROOT) for p in paths]


def use_cuda():
    if os.environ.get("FORCE_CUDA") == "1":
        return True
    import torch
    return torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None


def extension():
    ale_source.check_zlib()
    cache = ROOT / "build" / "_deps"
    ale_root = ale_source.ale_source_root(cache)
    generated = ale_source.write_version_header(ale_root, cache / "generated")

    own_cpp = sorted(p for p in (ROOT / "csrc").rglob("*.cpp") if "cuda" not in p.relative_to(ROOT).parts)
    own_cuda = sorted(p for p in (ROOT / "csrc").rglob("cuda/*") if p.suffix in (".cu", ".cpp"))
    sources = relative(own_cpp + ale_source.ale_core_sources(ale_root))

    debug = os.environ.get("ACTORMIMIC_DEBUG") == "1"
    tsan = os.environ.get("ACTORMIMIC_TSAN") == "1"
    # -ffp-contract=off keeps the area resize bit-identical to OpenCV's (no fused multiply-add);
    # -fno-math-errno lets lrint compile to one instruction.
    cxx = ["-std=c++20", "-fvisibility=hidden", "-fvisibility-inlines-hidden", "-ffp-contract=off", "-fno-math-errno",
           "-O0" if debug else "-O3", "-g" if debug or tsan else "-g0"]
    link = ["-lz", "-Wl,--exclude-libs,ALL"]
    # at::parallel_for (the fused ops' CPU kernels) is header code that runs serially unless compiled with
    # OpenMP; the libgomp.so.1 it links is the one torch has already loaded.
    cxx += ["-fopenmp"]
    link += ["-fopenmp"]
    if tsan:
        cxx += ["-fsanitize=thread"]
        link += ["-fsanitize=thread"]
    kwargs = dict(
        name="actormimic_fast._C",
        sources=sources,
        include_dirs=[str(ROOT / "csrc"), str(ale_root / "src"), str(ale_root / "src" / "ale"), str(generated)],
        # setuptools rebuilds only when a listed file is newer than the library: our headers count too
        # (ninja then recompiles exactly the objects that include a changed header)
        depends=relative(sorted((ROOT / "csrc").rglob("*.h"))),
        extra_compile_args={"cxx": cxx},
        extra_link_args=link,
    )
    if use_cuda() and own_cuda:
        arch = os.environ.get("TORCH_CUDA_ARCH_LIST", "torch's default")
        print(f"actormimic_fast: building CPU + CUDA (arch: {arch}): {', '.join(relative(own_cuda))}")
        kwargs["sources"] += relative(own_cuda)
        kwargs["extra_compile_args"]["nvcc"] = ["-O3", "-lineinfo"]
        kwargs["define_macros"] = [("ACTORMIMIC_WITH_CUDA", "1")]
        return cpp_extension.CUDAExtension(**kwargs)
    print(f"actormimic_fast: building CPU only (no CUDA torch or no nvcc); skipped: {', '.join(relative(own_cuda))}")
    return cpp_extension.CppExtension(**kwargs)


class BuildExtension(cpp_extension.BuildExtension):
    """torch's BuildExtension (ninja by default) with a fixed object folder: pip builds in a fresh temporary folder
    each time, which would recompile ALE's ~170 files on every `make build`; ninja then skips what is fresh.
    No `with_options(use_ninja=True)`: with setuptools 77 its keyword reaches a Command.__init__ that takes none."""

    def finalize_options(self):
        super().finalize_options()
        self.build_temp = str(ROOT / "build" / "temp")


setup(ext_modules=[extension()], cmdclass={"build_ext": BuildExtension})
