"""Replay memory benchmarks: bytes per transition, sampling throughput and copy bandwidth.

    python -m pytest benchmarks/bench_replay.py --benchmark-only --benchmark-columns=min,median,rounds

Compares, in one run on one machine: the C++ ReplayMemory (default threads and 1 thread), the numpy
reference it is tested against (actormimic_fast/reference/replay_reference.py) and the common layout
that stores whole stacks per transition (reference/stacked_replay.py), all filled with the same
single-env stream of random frames. Every benchmark checks its output against another implementation.
A summary with the ratios and GB/s (bytes written into obs and next_obs per second, against numpy's
memcpy bandwidth measured in the same run) is printed at the end of the module and written to
.benchmarks/replay_summary.txt.

ACTORMIMIC_BENCH_CAPACITY (default 50,000 records, about 353 MB per frame-once memory) sets the size;
the stacked peer keeps 10,000 transitions (565 MB). Both are far larger than the L3 cache.
"""

from __future__ import annotations

import copy
import os
import platform
from pathlib import Path

import numpy as np
import pytest
import torch

from actormimic_fast import ReplayMemory
from actormimic_fast.reference.replay_reference import ReplayReference
from actormimic_fast.reference.stacked_replay import StackedReplay

CAPACITY = int(os.environ.get("ACTORMIMIC_BENCH_CAPACITY", 50_000))
STACKED_CAPACITY = 10_000
GAMMA = 0.99
FRAME_BYTES = 84 * 84
RESULTS: dict = {}
SUMMARY_PATH = Path(__file__).resolve().parents[1] / ".benchmarks" / "replay_summary.txt"


def fill_stream(memories, records: int, seed: int = 0, chunk: int = 1000):
    """Episodes of 100..1000 records of random frames, ended by a termination (70%) or a truncation."""
    rng = np.random.default_rng(seed)
    left_in_episode, start = 0, True
    for begin in range(0, records, chunk):
        n = min(chunk, records - begin)
        frames = rng.integers(0, 256, (n, 84, 84), dtype=np.uint8)
        actions = rng.integers(0, 18, n)
        rewards = rng.integers(-1, 2, n).astype(np.float32)
        life_loss = rng.random(n) < 0.01
        for i in range(n):
            if start:
                left_in_episode = int(rng.integers(100, 1000))
            end = left_in_episode == 1
            terminated = end and rng.random() < 0.7
            row = ([0], frames[i:i + 1], actions[i:i + 1], [0.0 if start else rewards[i]], [terminated],
                   [end and not terminated], [bool(life_loss[i]) and not start], [start])
            for m in memories:
                m.add(*row)
            start, left_in_episode = end, left_in_episode - 1


@pytest.fixture(scope="module")
def memories(request):
    cpp = {n: ReplayMemory(CAPACITY, [0], n_step=n, gamma=GAMMA) for n in (1, 3)}
    cpp_single = {n: ReplayMemory(CAPACITY, [0], n_step=n, gamma=GAMMA, num_threads=1) for n in (1, 3)}
    reference = ReplayReference(CAPACITY, [0], n_step=1, gamma=GAMMA)
    fill_stream([reference, cpp[1]], CAPACITY + 5_000)  # wraps
    state = cpp[1].state_dict()
    for m in (cpp[3], cpp_single[1], cpp_single[3]):
        m.load_state_dict(state)
    references = {1: reference, 3: copy.copy(reference)}  # shares the arrays; the rules read n_step
    references[3].n_step, references[3]._valid_cache = 3, {}
    for r in references.values():   # its one-time scan of valid transitions stays out of the timings
        r.num_transitions(0)

    stacked = StackedReplay(STACKED_CAPACITY, n_step=1, gamma=GAMMA)
    envs, idx = reference.valid_indices(0)
    for begin in range(len(idx) - STACKED_CAPACITY, len(idx), 1000):
        part = reference.gather(envs[begin:begin + 1000], idx[begin:begin + 1000])
        for j in range(len(part["index"])):
            t = int(part["index"][j])
            reference_end = reference.walk(0, t)[0]
            s = reference._slot(0, reference_end)
            stacked.add(part["obs"][j], part["action"][j], part["reward"][j], part["next_obs"][j],
                        reference.terminated[0, s], reference.truncated[0, s], index=t)
    stacked_peers = {1: stacked, 3: copy.copy(stacked)}
    stacked_peers[3].n_step = 3
    yield {"cpp": cpp, "cpp_1thread": cpp_single, "reference": references, "stacked": stacked_peers}
    report(request)


def median(benchmark) -> float:
    return benchmark.stats.stats.median


def check_rows(got: dict, expected: dict, exact: bool = True):
    for f in ("obs", "next_obs", "action"):
        np.testing.assert_array_equal(got[f], expected[f], err_msg=f)
    for f in ("reward", "discount"):
        if exact:
            np.testing.assert_array_equal(got[f], expected[f], err_msg=f)
        else:
            np.testing.assert_allclose(got[f], expected[f], rtol=1e-5, atol=1e-6, err_msg=f)  # float64 sums


def as_numpy(batch) -> dict:
    return {f: getattr(batch, f).numpy() for f in ("obs", "next_obs", "action", "reward", "discount", "env_id", "index")}


def test_bytes_per_transition(benchmark):
    memory = benchmark.pedantic(lambda: ReplayMemory(1_000_000, [0] * 8), rounds=3, iterations=1)
    per = memory.bytes_per_transition
    peer = StackedReplay(16)
    RESULTS["bytes"] = {"frame-once (this memory, 1M transitions, 8 envs)": per,
                        "stack-once (obs only)": 4 * FRAME_BYTES,
                        "obs + next_obs stacks (measured StackedReplay)": peer.nbytes / peer.capacity}
    assert per <= 7_100, per


def test_memcpy_bandwidth(benchmark):
    src = np.random.default_rng(0).integers(0, 256, 256 << 20, dtype=np.uint8)
    dst = np.empty_like(src)
    benchmark(np.copyto, dst, src)
    assert np.array_equal(dst[::4096], src[::4096])
    RESULTS["memcpy_gbps"] = src.nbytes / median(benchmark) / 1e9


@pytest.mark.parametrize("n_step", [1, 3])
@pytest.mark.parametrize("batch", [32, 256])
@pytest.mark.parametrize("impl", ["cpp", "cpp_1thread", "reference", "stacked"])
def test_sample(benchmark, memories, impl, batch, n_step):
    memory = memories[impl][n_step]
    reference, cpp = memories["reference"][n_step], memories["cpp"][n_step]
    rng = np.random.default_rng(1)
    if impl.startswith("cpp"):
        out = memory.empty_batch(batch)
        result = benchmark(lambda: memory.sample(batch, out=out))
        got = as_numpy(result)
        check_rows(got, reference.gather(got["env_id"], got["index"]))
    elif impl == "reference":
        got = benchmark(lambda: reference.sample(batch, rng=rng))
        check_rows(got, as_numpy(cpp.gather(got["env_id"], got["index"])))
    else:
        got = benchmark(lambda: memory.sample(batch, rng))
        check_rows(got, as_numpy(cpp.gather(np.zeros(batch, np.int64), got["index"])), exact=False)
    RESULTS.setdefault("sample", {})[(impl, batch, n_step)] = median(benchmark)


@pytest.mark.parametrize("impl", ["cpp", "reference"])
def test_sample_per_game(benchmark, impl):
    """Actor-Mimic's batch: 8 transitions from each of 8 games (8 envs, 4,000 records per game)."""
    key = "per_game_memories"
    if key not in RESULTS:
        ids = list(range(8))
        cpp, reference = ReplayMemory(4_000, ids, gamma=GAMMA), ReplayReference(4_000, ids, gamma=GAMMA)
        fill_stream([_OneGame(cpp, g) for g in ids] + [_OneGame(reference, g) for g in ids], 4_500, seed=3)
        for g in ids:
            reference.num_transitions(g)
        RESULTS[key] = (cpp, reference)
    cpp, reference = RESULTS[key]
    if impl == "cpp":
        out = cpp.empty_batch(64)
        got = as_numpy(benchmark(lambda: cpp.sample(per_game=8, out=out)))
        check_rows(got, reference.gather(got["env_id"], got["index"]))
    else:
        rng = np.random.default_rng(2)
        got = benchmark(lambda: reference.sample(per_game=8, rng=rng))
        check_rows(got, as_numpy(cpp.gather(got["env_id"], got["index"])))
    RESULTS.setdefault("per_game", {})[impl] = median(benchmark)


class _OneGame:
    """Routes a single-env stream to env `env` of a multi-env memory (the same stream for every game)."""

    def __init__(self, memory, env):
        self.memory, self.env = memory, env

    def add(self, env_ids, *rest):
        self.memory.add([self.env], *rest)


def report(request):
    lines = []
    write = lines.append
    write(f"== Replay memory summary ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, capacity {CAPACITY}) ==")
    for name, value in RESULTS.get("bytes", {}).items():
        write(f"bytes/transition  {name}: {value:,.0f}")
    memcpy = RESULTS.get("memcpy_gbps")
    if memcpy:
        write(f"numpy memcpy (256 MiB): {memcpy:.1f} GB/s")
    sample = RESULTS.get("sample", {})
    if sample:
        write("batch n | C++ us | C++ 1-thread us | reference us | stacked us | C++ vs reference | "
              "C++ vs stacked | C++ GB/s | of memcpy")
        for batch in (32, 256):
            for n in (1, 3):
                t = {impl: sample.get((impl, batch, n)) for impl in ("cpp", "cpp_1thread", "reference", "stacked")}
                if None in t.values():
                    continue
                gbps = batch * 2 * 4 * FRAME_BYTES / t["cpp"] / 1e9
                write(f"{batch:5d} {n} | {t['cpp'] * 1e6:6.0f} | {t['cpp_1thread'] * 1e6:15.0f} | "
                      f"{t['reference'] * 1e6:12.0f} | {t['stacked'] * 1e6:10.0f} | "
                      f"{t['reference'] / t['cpp']:15.1f}x | {t['stacked'] / t['cpp']:13.2f}x | {gbps:8.1f} | "
                      + (f"{gbps / memcpy:8.0%}" if memcpy else "   n/a"))
    per_game = RESULTS.get("per_game", {})
    if len(per_game) == 2:
        write(f"per_game=8 x 8 games: C++ {per_game['cpp'] * 1e6:.0f} us, reference "
              f"{per_game['reference'] * 1e6:.0f} us ({per_game['reference'] / per_game['cpp']:.1f}x)")
    SUMMARY_PATH.parent.mkdir(exist_ok=True)
    SUMMARY_PATH.write_text("\n".join(lines) + "\n")
    with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        print("\n" + "\n".join(lines) + f"\n(also in {SUMMARY_PATH})")
