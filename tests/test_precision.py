"""Precision: when bfloat16 autocast is on by default, and how far its Q-values and losses may be from float32's."""

import pytest
import torch

from actormimic_fast.models.networks import build_network
from actormimic_fast.run import precision
from actormimic_fast.run.precision import make_autocast, precision_record, resolve_amp

BF16_UNIT_ROUNDOFF = 2.0 ** -8      # bfloat16 keeps 8 significant bits


@pytest.mark.parametrize("flags, native", [("fpu avx2 avx512f avx512_bf16", True), ("fpu avx2 amx_bf16 amx_tile", True),
                                           ("fpu avx2 avx512f avx512_vnni", False), ("fpu sse2", False)])
def test_auto_amp_follows_the_cpus_native_bfloat16_flags(tmp_path, monkeypatch, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    monkeypatch.setattr(precision, "cpu_bfloat16_flags", lambda: precision._flags_of(cpuinfo))
    enabled, why = resolve_amp(None, torch.device("cpu"))
    assert enabled is native and why.startswith("auto")
    assert resolve_amp(True, torch.device("cpu")) == (True, "set")
    assert resolve_amp(False, torch.device("cpu")) == (False, "set")
    assert resolve_amp(None, torch.device("cuda")) == (False, "auto: off on CUDA")
    record = precision_record(None, torch.device("cpu"))
    assert record["precision"] == ("bfloat16 autocast" if native else "float32")


def test_this_machines_flags_are_read(monkeypatch):
    assert precision.cpu_bfloat16_flags() == ()            # the suite's setting (tests/conftest.py)
    monkeypatch.delenv("ACTORMIMIC_CPU_BF16")
    flags = precision.cpu_bfloat16_flags()
    text = open("/proc/cpuinfo").read()
    assert all(flag in text for flag in flags)
    assert bool(flags) == any(flag in text.split() for flag in precision.NATIVE_BF16_FLAGS)


@pytest.mark.parametrize("architecture", ["nature", "nature_ln"])
def test_bfloat16_q_values_and_td_loss_stay_within_bfloat16s_rounding_of_float32s(architecture):
    """Each of the network's 5 layers rounds its inputs and weights to bfloat16 (relative error <= u each,
    products accumulated in float32): Q-values within 5 x 2u of float32's in norm, and the squared TD error
    L = |Q - G|^2 within 2 |dQ| / |Q - G| of it (relative)."""
    torch.manual_seed(0)
    network = build_network(architecture, 6)
    obs = torch.randint(0, 256, (16, 4, 84, 84), dtype=torch.uint8)
    q32 = network(obs)
    with make_autocast(True, torch.device("cpu")):
        q16 = network(obs).float()
    assert q16.dtype == torch.float32 and not torch.equal(q16, q32)      # autocast did run in bfloat16
    bound = 5 * 2 * BF16_UNIT_ROUNDOFF
    assert (q16 - q32).norm() <= bound * q32.norm()
    returns = q32.detach().max(1).values + torch.randn(16)
    loss32, loss16 = (q32[:, 0] - returns).square().sum(), (q16[:, 0] - returns).square().sum()
    dq = (q16[:, 0] - q32[:, 0]).norm()
    assert (loss16 - loss32).abs() <= loss32 * 2.5 * dq / (q32[:, 0] - returns).norm()
