"""Expert PQN training frames/s in the steady state against a CleanRL-style loop, and its minibatch update
alone as GFLOP/s next to the matrix-product ceiling, all in one run.

    python -m pytest benchmarks/bench_pqn.py --benchmark-only --benchmark-columns=min,median,rounds

Training: this trainer (train_pqn_expert with its defaults: 64 envs x 32 steps, 2 epochs x 16 minibatches)
and the CleanRL-style loop (reference/cleanrl_pqn.py with CleanRL's published shape: 8 envs x 128 steps,
4 epochs x 4 minibatches) each train nature_ln on Pong for ACTORMIMIC_BENCH_PQN_FRAMES emulator frames
(default 131,072; a multiple of this trainer's 8,192-frame rollout) on ACTORMIMIC_BENCH_DEVICE (default
cpu), with the same hyperparameters (RAdam 2.5e-4, gamma 0.99, lambda 0.65, clip 10, epsilon 1 -> 0.01
over 10% of the frames). The two published shapes differ in learning work: CleanRL's 4 epochs put every
step through 4 forward and backward passes, this trainer's 2 epochs through 2 (on a CPU the update is most
of the time), so the reference also runs with this trainer's epochs and minibatch rows ("same work": 8 envs
x 128 steps, 2 epochs x 8 minibatches of 128 rows); that ratio is the loop's own speed-up. Rates are steady
state: the trainer's own progress rows after the first interval (a whole number of rollouts each), the
reference timed from the same frame (a rollout boundary).

Update: one minibatch step (forward, backward, gradient clip, RAdam step) of nature_ln on the rows a PQN
minibatch holds by default (32 x 64 / 16 = 128), in float32 and with the forward pass under bfloat16
autocast, with the trainer's torch threads. FLOPs are counted from the layers' shapes (update_flops): each
convolution's and linear layer's multiply-adds x 2 forward, and the backward pass 2x that (the gradients of
the weights and of the inputs, as many multiply-adds each) but for the first convolution's input gradient,
which the frames do not need: 18.7 MFLOP forward, 49.5 MFLOP per row in all. LayerNorms, ReLUs, biases, the
loss and RAdam's elementwise step are not counted (under 1% of that: memory-bound work). The ceiling is a
1024 x 1024 x 1024 matrix product (2 x 1024^3 FLOPs) in each dtype, bfloat16 operands cast beforehand,
with the same threads.
"""

from __future__ import annotations

import math
import os
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from actormimic_fast.agents.pqn import PQNConfig, train_pqn_expert
from actormimic_fast.run.context import default_env_threads
from actormimic_fast.reference.cleanrl_pqn import train_cleanrl_pqn, update_only

from conftest import register_ratio
from steady_state import mode_torch_threads, steady_fps

DEFAULTS = PQNConfig()
ROLLOUT_FRAMES = DEFAULTS.rollout_steps * DEFAULTS.envs_per_game * 4        # this trainer's rollout: 8,192
FRAMES = int(os.environ.get("ACTORMIMIC_BENCH_PQN_FRAMES", 16 * ROLLOUT_FRAMES))
DEVICE = os.environ.get("ACTORMIMIC_BENCH_DEVICE", "cpu")
if FRAMES % ROLLOUT_FRAMES or FRAMES < 2 * ROLLOUT_FRAMES:
    raise ValueError(f"ACTORMIMIC_BENCH_PQN_FRAMES must be a multiple of {ROLLOUT_FRAMES} (a rollout of "
                     f"every env) and >= {2 * ROLLOUT_FRAMES}, got {FRAMES}")
MINIBATCH_ROWS = DEFAULTS.rollout_steps * DEFAULTS.envs_per_game // DEFAULTS.minibatches    # 128
LOG_EVERY = max(ROLLOUT_FRAMES, FRAMES // 8 // ROLLOUT_FRAMES * ROLLOUT_FRAMES)    # whole rollouts per row
# CleanRL's published shape, and the same with this trainer's learning per frame (its epochs, minibatch rows)
REFERENCES = {"cleanrl": dict(num_envs=8, num_steps=128, epochs=4, minibatches=4),
              "same_work": dict(num_envs=8, num_steps=128, epochs=DEFAULTS.epochs,
                                minibatches=8 * 128 // MINIBATCH_ROWS)}
TRAINER_ROUNDS = 3
NUM_ACTIONS = 6                                                                     # Pong's minimal set
DTYPES = ("float32", "bfloat16")
UPDATE_ROUNDS, MATMUL_ROUNDS, MATMUL_SIZE = 10, 10, 1024

register_ratio("pqn training, this trainer / CleanRL-style", "pqn_train", "pqn_train_cleanrl", 3.0)
register_ratio("pqn training, this trainer / CleanRL-style, same work", "pqn_train",
               "pqn_train_same_work")
for _dtype in DTYPES:
    register_ratio(f"pqn update / {MATMUL_SIZE}^3 matmul, GFLOP/s ({_dtype})",
                   f"pqn_update_{_dtype}_gflops", f"matmul_{_dtype}_gflops")


def synchronize() -> None:
    if DEVICE != "cpu":
        torch.cuda.synchronize()


def trainer_threads():
    """Torch's threads as the lockstep trainer sets them (every core on a CPU)."""
    return mode_torch_threads(DEVICE, True, default_env_threads(DEFAULTS.envs_per_game, os.cpu_count() or 1))


# -- training -----------------------------------------------------------------------------------------
def test_trainer(benchmark, rates, tmp_path):
    cfg = PQNConfig(game="pong", frames_per_game=FRAMES, test_epoch_frames=0, checkpoint_every=10 ** 9,
                    log_every=LOG_EVERY, progress=False, tensorboard=False, device=DEVICE, out=str(tmp_path / "run"))
    loop_steps = FRAMES // 4 // cfg.envs_per_game
    fps = []

    def one_run() -> None:
        shutil.rmtree(cfg.out, ignore_errors=True)
        result = train_pqn_expert(cfg)
        # credit from loop step 2: one update per rollout_steps loop steps
        assert result["frames"] == FRAMES and result["updates"] == (loop_steps - 1) // cfg.rollout_steps
        fps.append(steady_fps(cfg.out, LOG_EVERY))

    benchmark.pedantic(one_run, rounds=TRAINER_ROUNDS, iterations=1)
    rates["pqn_train"] = float(np.median(fps))


@pytest.mark.parametrize("shape", list(REFERENCES))
def test_cleanrl_reference(benchmark, rates, shape):
    settings = REFERENCES[shape]
    result = benchmark.pedantic(lambda: train_cleanrl_pqn("pong", frames=FRAMES, device=DEVICE,
                                                          timed_from_frame=LOG_EVERY, **settings),
                                rounds=1, iterations=1)
    rollout_frames = settings["num_envs"] * settings["num_steps"] * 4
    assert result["frames"] == FRAMES and result["updates"] == FRAMES // rollout_frames
    rates["pqn_train_cleanrl" if shape == "cleanrl" else f"pqn_train_{shape}"] = result["steady_fps"]


# -- the minibatch update alone ------------------------------------------------------------------------
def update_flops(network: nn.Module, rows: int) -> int:
    """FLOPs of one minibatch step of `network` on `rows` rows (see the module docstring for what counts)."""
    macs: list[int] = []

    def count(module, inputs, output) -> None:
        per_output = (module.in_features if isinstance(module, nn.Linear)
                      else module.in_channels // module.groups * math.prod(module.kernel_size))
        macs.append(output.numel() * per_output)

    layers = [m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    handles = [layer.register_forward_hook(count) for layer in layers]
    try:
        with torch.no_grad():
            network(torch.zeros(rows, 4, 84, 84, dtype=torch.uint8, device=DEVICE))
    finally:
        for handle in handles:
            handle.remove()
    forward = 2 * sum(macs)
    first_input_gradient = 2 * macs[0]         # layers run in module order: macs[0] is the first convolution's
    return forward + 2 * forward - first_input_gradient


def test_update_flop_count_is_the_nature_networks():
    rows = 2
    network = update_flops(update_only(NUM_ACTIONS, rows, DEVICE)[1], rows)
    per_row = 2 * (20 * 20 * 32 * 8 * 8 * 4 + 9 * 9 * 64 * 4 * 4 * 32 + 7 * 7 * 64 * 3 * 3 * 64 + 3136 * 512
                   + 512 * NUM_ACTIONS)
    assert network == rows * (3 * per_row - 2 * 20 * 20 * 32 * 8 * 8 * 4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_update(benchmark, rates, dtype):
    with trainer_threads():
        update, network = update_only(NUM_ACTIONS, MINIBATCH_ROWS, DEVICE, amp=dtype == "bfloat16")

        def step() -> None:
            update()
            synchronize()

        benchmark.pedantic(step, rounds=UPDATE_ROUNDS, iterations=1, warmup_rounds=1)
    rates[f"pqn_update_{dtype}_gflops"] = update_flops(network, MINIBATCH_ROWS) / benchmark.stats.stats.median / 1e9


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_ceiling(benchmark, rates, dtype):
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(MATMUL_SIZE, MATMUL_SIZE, generator=generator).to(DEVICE, getattr(torch, dtype))
            for _ in range(2))
    with trainer_threads():
        def product() -> None:
            a @ b
            synchronize()

        benchmark.pedantic(product, rounds=MATMUL_ROUNDS, iterations=1, warmup_rounds=1)
    rates[f"matmul_{dtype}_gflops"] = 2 * MATMUL_SIZE ** 3 / benchmark.stats.stats.median / 1e9
