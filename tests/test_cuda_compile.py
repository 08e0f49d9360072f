"""Compiles the CUDA kernel file with nvcc for sm_80 and sm_90 (compile only), so a broken kernel fails CI on
machines without a GPU. The .cu file must include no torch header: that is what lets it compile here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNEL = ROOT / "csrc" / "kernels" / "cuda" / "masked_softmax_xent_kernel.cu"
# The flags torch's CUDAExtension passes to nvcc, so that this build matches the real one.
TORCH_NVCC_FLAGS = ["-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
                    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__", "--expt-relaxed-constexpr"]


def find_nvcc() -> str | None:
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and (Path(home) / "bin" / "nvcc").is_file():
            return str(Path(home) / "bin" / "nvcc")
    return shutil.which("nvcc")


NVCC = find_nvcc()


def test_kernel_file_includes_no_torch_header():
    includes = re.findall(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', KERNEL.read_text(), flags=re.MULTILINE)
    assert includes, "no #include found: wrong file?"
    torch_headers = [h for h in includes if h.split("/")[0] in ("torch", "ATen", "c10", "caffe2")]
    assert not torch_headers, f"{KERNEL.name} must include only the CUDA runtime, found {torch_headers}"


@pytest.mark.skipif(NVCC is None, reason="nvcc not found (CUDA_HOME, /usr/local/cuda or PATH)")
@pytest.mark.parametrize("arch", ["80", "90"])
def test_kernel_compiles_with_nvcc(arch, tmp_path):
    command = [NVCC, "-std=c++17", "-O3", "-lineinfo", f"-I{ROOT / 'csrc'}", *TORCH_NVCC_FLAGS,
               f"-gencode=arch=compute_{arch},code=sm_{arch}", "-c", str(KERNEL), "-o", str(tmp_path / "kernel.o")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"nvcc failed for sm_{arch}:\n{' '.join(command)}\n{result.stderr}"
    assert (tmp_path / "kernel.o").stat().st_size > 0
