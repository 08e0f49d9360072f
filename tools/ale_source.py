"""Locate, fetch and unpack the ALE C++ sources that `setup.py` compiles into `actormimic_fast._C`.

The emulator core must come from the *same* ale-py release that is a runtime dependency, so that ROM
checksums and emulation match the ROMs shipped in that wheel. Nothing of ALE is committed: the source
release is downloaded from the package index (or taken from ACTORMIMIC_ALE_SOURCE on offline machines)
into a cache under build/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ALE_PY_VERSION = "0.12.1"  # keep equal to the ale-py pin in pyproject.toml (tests/test_packaging.py checks)
SOURCE_ENV_VAR = "ACTORMIMIC_ALE_SOURCE"

# Parts of src/ale that the engine needs; python/, vector/ and wasm/ bindings are left out.
_CORE_DIRS = ("common", "emucore", "environment", "games")
_SOURCE_SUFFIXES = (".cpp", ".cxx")


def _download_sdist(cache: Path) -> Path:
    archive = cache / f"ale_py-{ALE_PY_VERSION}.tar.gz"
    if archive.exists():
        return archive
    print(f"actormimic_fast: downloading the ale-py {ALE_PY_VERSION} source release from the package index")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "ale-py",
               f"ale-py=={ALE_PY_VERSION}", "-d", tmp]
        result = subprocess.run(cmd, capture_output=True, text=True)
        found = list(Path(tmp).glob("ale_py-*.tar.gz"))
        if result.returncode != 0 and not found:
            raise RuntimeError(
                f"could not download the ale-py {ALE_PY_VERSION} source release:\n{result.stderr[-2000:]}\n"
                f"On an offline machine set {SOURCE_ENV_VAR} to a local ale_py-{ALE_PY_VERSION}.tar.gz "
                "or an unpacked source folder.")
        shutil.move(str(found[0]), archive)
    return archive


def _unpack(archive: Path, cache: Path) -> Path:
    root = cache / f"ale_py-{ALE_PY_VERSION}"
    if (root / "src" / "ale" / "ale_interface.cpp").exists():
        return root
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        (unpacked,) = [p for p in Path(tmp).iterdir() if p.is_dir()]
        shutil.move(str(unpacked), root)
    return root


def ale_source_root(cache: Path) -> Path:
    """Return the root of an unpacked ale-py source release, fetching it when needed."""
    cache.mkdir(parents=True, exist_ok=True)
    given = os.environ.get(SOURCE_ENV_VAR)
    if given:
        path = Path(given).expanduser().resolve()
        if path.is_dir():
            root = cache / f"ale_py-{ALE_PY_VERSION}"
            if not root.exists():  # copied so that object files land under build/, not beside the source
                shutil.copytree(path, root, ignore=shutil.ignore_patterns("docs", ".git*", "*.gif"))
        elif path.is_file():
            root = _unpack(path, cache)
        else:
            raise RuntimeError(f"{SOURCE_ENV_VAR}={given!r} is neither an archive nor a folder")
    else:
        root = _unpack(_download_sdist(cache), cache)
    if not (root / "src" / "ale" / "ale_interface.cpp").exists():
        raise RuntimeError(f"{root} does not look like an ale-py source release (no src/ale/ale_interface.cpp)")
    version_file = root / "version.txt"
    if version_file.exists() and version_file.read_text().strip() != ALE_PY_VERSION:
        raise RuntimeError(f"ALE source at {root} is version {version_file.read_text().strip()}, "
                           f"but ale-py=={ALE_PY_VERSION} is pinned; ROM checksums would not match")
    return root


def write_version_header(root: Path, out_dir: Path) -> Path:
    """Fill src/ale/version.hpp.in the way ALE's CMake does; return the folder holding version.hpp."""
    major, minor, patch = ALE_PY_VERSION.split(".")
    text = (root / "src" / "ale" / "version.hpp.in").read_text()
    for key, value in {"ALE_VERSION": ALE_PY_VERSION, "ALE_VERSION_MAJOR": major, "ALE_VERSION_MINOR": minor,
                       "ALE_VERSION_PATCH": patch, "ALE_VERSION_GIT_SHA": "sdist"}.items():
        text = text.replace(f"@{key}@", value)
    out_dir.mkdir(parents=True, exist_ok=True)
    header = out_dir / "version.hpp"
    if not header.exists() or header.read_text() != text:
        header.write_text(text)
    return out_dir


def ale_core_sources(root: Path) -> list[Path]:
    """The emulator-core translation units (ALE's CMake `ale` object library, without SDL)."""
    ale = root / "src" / "ale"
    sources = [ale / "ale_interface.cpp"]
    for sub in _CORE_DIRS:
        sources += sorted(p for p in (ale / sub).rglob("*") if p.suffix in _SOURCE_SUFFIXES)
    return sources


def check_zlib() -> None:
    """ALE reads ROMs through zlib; stop early with an actionable message when its headers are missing."""
    for include in ("/usr/include", "/usr/local/include", os.environ.get("CONDA_PREFIX", "") + "/include"):
        if Path(include, "zlib.h").exists():
            return
    raise RuntimeError("zlib headers (zlib.h) not found: ALE needs them. Install them first, e.g. "
                       "`apt-get install zlib1g-dev` (Debian/Ubuntu), `dnf install zlib-devel` (Fedora) "
                       "or `conda install zlib`.")
