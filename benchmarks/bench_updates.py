"""Each expert trainer's update in float32, under bfloat16 autocast and compiled, as GFLOP/s next to the same
run's matrix-product ceiling of each precision (the physical limit of this CPU), all in one run.

    python -m pytest benchmarks/bench_updates.py --benchmark-only --benchmark-columns=min,median,rounds

The updates are the trainers' own (not a reference's), on random data of the shapes they train on:
- dqn: ExpertDQN.update on a 32-row minibatch with the fastest DQN settings (Adam, 3-step, Double DQN):
  online forward + backward on s_t, target and online forwards on s_{t+n}: 5 forward passes' worth of
  multiply-adds per row but for the first convolution's input gradient (the frames need none);
- pqn: ExpertPQN.update on one whole default rollout (64 envs x 32 steps: Q(lambda) returns, 2 epochs x 16
  minibatches of 128 rows, RAdam, clip): 3 forward passes' worth per row and epoch, the same exception.
FLOPs are counted from the layers' shapes (update_flops: each convolution's and linear layer's multiply-adds
x 2); LayerNorms, ReLUs, the loss and the optimiser's elementwise steps are not counted (memory-bound, under
1%). The ceiling is a 1024^3 matrix product in each dtype (operands cast beforehand), with the same threads.
A CPU without native bfloat16 (run/precision.py) emulates it ~10x slower than float32: the bfloat16 updates
are skipped there (their target is for CPUs that have it); the bfloat16 ceiling is still read.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from torch import nn

from actormimic_fast.agents.dqn import DQNConfig, ExpertDQN
from actormimic_fast.agents.pqn import ExpertPQN, PQNConfig
from actormimic_fast.models.networks import build_network
from actormimic_fast.native.replay import TransitionBatch
from actormimic_fast.run.context import default_env_threads
from actormimic_fast.run.precision import cpu_bfloat16_flags
from actormimic_fast.run.rollouts import Rollout, RolloutBuffer

from conftest import register_ratio
from steady_state import mode_torch_threads

DEVICE = os.environ.get("ACTORMIMIC_BENCH_DEVICE", "cpu")
NUM_ACTIONS = 6                                         # Pong's minimal set
MODES = ("float32", "bfloat16", "compiled")
ROUNDS = {"dqn": 20, "pqn": 3}
MATMUL_SIZE, MATMUL_ROUNDS = 1024, 10
NATIVE_BF16 = DEVICE != "cpu" or bool(cpu_bfloat16_flags())

for _trainer in ROUNDS:
    for _mode in MODES:
        register_ratio(f"{_trainer} update ({_mode}) / {MATMUL_SIZE}^3 matmul ({_mode.replace('compiled', 'float32')})"
                       ", GFLOP/s", f"{_trainer}_update_{_mode}_gflops",
                       f"matmul_{_mode.replace('compiled', 'float32')}_gflops",
                       0.4 if (_trainer, _mode) == ("pqn", "bfloat16") and NATIVE_BF16 else None)
    register_ratio(f"{_trainer} update, bfloat16 / float32 (time)", f"{_trainer}_update_bfloat16_gflops",
                   f"{_trainer}_update_float32_gflops", 1.6 if NATIVE_BF16 else None)


def synchronize() -> None:
    if DEVICE != "cpu":
        torch.cuda.synchronize()


def forward_macs(network: nn.Module) -> tuple[int, int]:
    """(multiply-adds of one row's forward pass, those of the first convolution)."""
    macs: list[int] = []

    def count(module, inputs, output) -> None:
        per_output = (module.in_features if isinstance(module, nn.Linear)
                      else module.in_channels // module.groups * math.prod(module.kernel_size))
        macs.append(output[0].numel() * per_output)

    handles = [m.register_forward_hook(count) for m in network.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            network(torch.zeros(1, 4, 84, 84, dtype=torch.uint8, device=DEVICE))
    finally:
        for handle in handles:
            handle.remove()
    return sum(macs), macs[0]


def update_flops(trainer: str, network: nn.Module) -> int:
    forward, first = forward_macs(network)
    if trainer == "dqn":      # 32 rows: forward + backward (2x, less the frames' gradient) + 2 bootstrap forwards
        return 32 * 2 * (5 * forward - first)
    cfg = PQNConfig()
    rows = cfg.rollout_steps * cfg.envs_per_game
    return cfg.epochs * rows * 2 * (3 * forward - first)


def test_update_flops_are_the_nature_networks():
    per_row = 20 * 20 * 32 * 8 * 8 * 4 + 9 * 9 * 64 * 4 * 4 * 32 + 7 * 7 * 64 * 3 * 3 * 64 + 3136 * 512 + 512 * 6
    assert forward_macs(build_network("nature_ln", 6)) == (per_row, 20 * 20 * 32 * 8 * 8 * 4)
    assert update_flops("dqn", build_network("nature", 6)) == 32 * 2 * (5 * per_row - 20 * 20 * 32 * 256)


def make_update(trainer: str, mode: str, tmp_path):
    """(one update call, the network it trains) on fixed random data."""
    rng = np.random.default_rng(0)
    settings = dict(device=DEVICE, amp=mode == "bfloat16", compile=mode == "compiled", progress=False,
                    tensorboard=False, out=str(tmp_path))
    device = torch.device(DEVICE)
    legal = [np.arange(NUM_ACTIONS)]
    frames = lambda *shape: torch.from_numpy(rng.integers(0, 256, (*shape, 4, 84, 84), dtype=np.uint8))
    if trainer == "dqn":
        cfg = DQNConfig(optimizer="adam", n_step=3, double_dqn=True, **settings)
        algo = ExpertDQN(cfg, ["pong"], legal, 1, device, None, [tmp_path], {})
        b = cfg.batch_size
        batch = TransitionBatch(obs=frames(b), action=torch.from_numpy(rng.integers(0, NUM_ACTIONS, b)),
                                reward=torch.from_numpy(rng.random(b, dtype=np.float32)), next_obs=frames(b),
                                discount=torch.full((b,), 0.99 ** 3), done=torch.zeros(b, dtype=torch.bool),
                                game_id=torch.zeros(b, dtype=torch.int64), env_id=torch.zeros(b, dtype=torch.int64),
                                index=torch.zeros(b, dtype=torch.int64))
        batch = TransitionBatch(**{k: v.to(device) for k, v in vars(batch).items()})
        return (lambda: algo.update(batch)), algo.online
    cfg = PQNConfig(**settings)
    t, n = cfg.rollout_steps, cfg.envs_per_game
    buffer = RolloutBuffer(n, t + 1, reward_clip=1.0, life_loss_terminal=True)
    algo = ExpertPQN(cfg, ["pong"], legal, device, buffer, [tmp_path])
    rollout = Rollout(obs=frames(t, n), action=torch.from_numpy(rng.integers(0, NUM_ACTIONS, (t, n))),
                      reward=torch.from_numpy(rng.random((t, n), dtype=np.float32)),
                      cut=torch.from_numpy(rng.random((t, n)) < 0.01), truncated=torch.zeros(t, n, dtype=torch.bool),
                      valid=torch.ones(t, n, dtype=torch.bool),
                      q_next=torch.from_numpy(rng.random((t, n), dtype=np.float32)))
    return (lambda: algo.update(rollout)), algo.online


def trainer_threads(trainer: str):
    envs = PQNConfig().envs_per_game if trainer == "pqn" else 1
    return mode_torch_threads(DEVICE, True, default_env_threads(envs, os.cpu_count() or 1))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("trainer", list(ROUNDS))
def test_update(benchmark, rates, tmp_path, trainer, mode):
    if mode == "bfloat16" and not NATIVE_BF16:
        pytest.skip("this CPU has no native bfloat16 (emulated: ~10x slower than float32; run/precision.py)")
    with trainer_threads(trainer):
        update, network = make_update(trainer, mode, tmp_path)
        update()                 # warm-up: allocator, oneDNN, and the compilation (reported by the run, not here)
        synchronize()

        def step() -> None:
            update()
            synchronize()

        benchmark.pedantic(step, rounds=ROUNDS[trainer], iterations=1, warmup_rounds=1)
    rates[f"{trainer}_update_{mode}_gflops"] = update_flops(trainer, network) / benchmark.stats.stats.median / 1e9


ACTING_ROWS = {"dqn": 1, "pqn": 64}        # one env (the DQN preset) or every env of the pool (PQN)
for _trainer in ACTING_ROWS:
    register_ratio(f"{_trainer} acting pass ({ACTING_ROWS[_trainer]} rows), bfloat16 / float32 (rate)",
                   f"{_trainer}_act_bfloat16_per_s", f"{_trainer}_act_float32_per_s")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("trainer", list(ACTING_ROWS))
def test_acting_pass(benchmark, rates, tmp_path, trainer, mode):
    """The act step's forward pass alone (inference mode, the trainer's autocast): with one env, a bfloat16
    pass pays the weights' cast (no weight cache: see run/precision.py) for one row's arithmetic, which is
    where a faster bfloat16 update can be lost in the DQN trainer's learning phase (one pass per agent step,
    one update per 4)."""
    if mode == "bfloat16" and not NATIVE_BF16:
        pytest.skip("this CPU has no native bfloat16 (emulated: ~10x slower than float32; run/precision.py)")
    _, network = make_update(trainer, mode, tmp_path)
    algo_autocast = torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=mode == "bfloat16", cache_enabled=False)
    forward = torch.compile(network) if mode == "compiled" else network
    obs = torch.randint(0, 256, (ACTING_ROWS[trainer], 4, 84, 84), dtype=torch.uint8, device=DEVICE)
    with trainer_threads(trainer), torch.inference_mode():
        def act() -> None:
            with algo_autocast:
                forward(obs).float().argmax(1)
            synchronize()

        act()
        benchmark.pedantic(act, rounds=50, iterations=1, warmup_rounds=3)
    rates[f"{trainer}_act_{mode}_per_s"] = 1 / benchmark.stats.stats.median


@pytest.mark.parametrize("dtype", ("float32", "bfloat16"))
def test_matmul_ceiling(benchmark, rates, dtype):
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(MATMUL_SIZE, MATMUL_SIZE, generator=generator).to(DEVICE, getattr(torch, dtype))
            for _ in range(2))
    with trainer_threads("pqn"):
        def product() -> None:
            a @ b
            synchronize()

        benchmark.pedantic(product, rounds=MATMUL_ROUNDS, iterations=1, warmup_rounds=1)
    rates[f"matmul_{dtype}_gflops"] = 2 * MATMUL_SIZE ** 3 / benchmark.stats.stats.median / 1e9


# The update's three convolutions on their own (a PQN minibatch: 128 rows, channels last), forward and
# forward + backward, in each precision: where bfloat16 pays and where it does not (benchmarks/RESULTS.md).
CONVOLUTIONS = {"conv1": ((4, 84, 84), (32, 4, 8, 8), 4, False),     # the frames need no gradient
                "conv2": ((32, 20, 20), (64, 32, 4, 4), 2, True),
                "conv3": ((64, 9, 9), (64, 64, 3, 3), 1, True)}
CONV_ROWS = 128
for _conv in CONVOLUTIONS:
    for _pass in ("forward", "backward"):
        register_ratio(f"{_conv} {_pass if _pass == 'forward' else 'forward + backward'}, bfloat16 / float32 (rate)",
                       f"{_conv}_{_pass}_bfloat16_gflops", f"{_conv}_{_pass}_float32_gflops")


@pytest.mark.parametrize("direction", ("forward", "backward"))
@pytest.mark.parametrize("dtype", ("float32", "bfloat16"))
@pytest.mark.parametrize("conv", list(CONVOLUTIONS))
def test_convolution(benchmark, rates, conv, dtype, direction):
    if dtype == "bfloat16" and not NATIVE_BF16:
        pytest.skip("this CPU has no native bfloat16 (emulated: ~10x slower than float32; run/precision.py)")
    in_shape, w_shape, stride, input_grad = CONVOLUTIONS[conv]
    generator = torch.Generator().manual_seed(0)
    cast = lambda t: t.to(DEVICE, getattr(torch, dtype)).contiguous(memory_format=torch.channels_last)
    x = cast(torch.randn(CONV_ROWS, *in_shape, generator=generator)).requires_grad_(input_grad)
    w = cast(torch.randn(*w_shape, generator=generator)).requires_grad_(True)
    out = torch.nn.functional.conv2d(x, w, stride=stride)
    grad_out = torch.randn_like(out)
    macs = out.numel() * math.prod(w_shape[1:])
    passes = 1 if direction == "forward" else 3 if input_grad else 2     # forward, weight and input gradients

    def run() -> None:
        if direction == "forward":
            with torch.no_grad():
                torch.nn.functional.conv2d(x, w, stride=stride)
        else:
            torch.nn.functional.conv2d(x, w, stride=stride).backward(grad_out)
        synchronize()

    with trainer_threads("pqn"):
        run()
        benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=1)
    rates[f"{conv}_{direction}_{dtype}_gflops"] = 2 * macs * passes / benchmark.stats.stats.median / 1e9
