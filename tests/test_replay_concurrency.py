"""One writer and several samplers on one ReplayMemory at the same time: no torn transition, ever.

The heavy part runs in C++ (csrc/testing/replay_stress.h: frames whose every 8-byte word encodes
(env, t), a checker with its own copy of the rules); the Python test drives the public API from threads.
"""

import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from actormimic_fast import ReplayMemory, _C

ROOT = Path(__file__).resolve().parents[1]


# Small rings (32..128 records per env) so the writer laps them constantly; the second case uses
# batches large enough (>= 2 x 32 rows) for each sample() call to run on two threads.
@pytest.mark.parametrize("guard, sampler_threads, capacity, batch, min_samples",
                         [(0, 1, 128, 16, 2_000_000), (8, 2, 512, 128, 1_000_000)])
def test_stress_no_torn_samples(guard, sampler_threads, capacity, batch, min_samples):
    r = _C.replay_stress_test(num_envs=4, num_games=2, capacity_per_game=capacity, guard=guard, n_step=3,
                              num_samplers=2, sampler_threads=sampler_threads, batch_size=batch,
                              min_samples=min_samples, max_seconds=90.0, seed=guard)
    assert r["torn"] == 0, r["first_error"]
    assert r["samples"] >= min_samples, r
    assert r["records_written"] > 50 * capacity   # the writer lapped every ring many times meanwhile
    if guard == 0:
        # Samplers did copy records while the writer overwrote them, and the seqlock check caught it.
        assert r["overwrite_redraws"] > 0, r


def test_stress_checker_sees_torn_rows_without_the_seqlock_check():
    """The same run with the check disabled must report torn rows, so the test above can fail."""
    torn = 0
    for attempt in range(5):
        r = _C.replay_stress_test(num_envs=4, num_games=2, capacity_per_game=128, guard=0, n_step=3,
                                  num_samplers=2, batch_size=16, min_samples=300_000, max_seconds=60.0,
                                  skip_overwrite_check=True, seed=attempt)
        torn += r["torn"]
        if torn:
            break
    assert torn > 0


def test_stress_life_loss_terminal_and_one_frame_stacks():
    r = _C.replay_stress_test(num_envs=3, num_games=3, capacity_per_game=64, guard=1, stack=1, n_step=5,
                              life_loss_terminal=True, min_samples=200_000, max_seconds=60.0, seed=3)
    assert r["torn"] == 0 and r["samples"] >= 200_000, r


def test_python_writer_and_samplers_threads():
    """Through the Python API: a writer thread adds tagged frames while two threads sample (GIL released)."""
    num_envs, capacity = 4, 4 * 48
    memory = ReplayMemory(capacity, [0] * num_envs, guard=0, num_threads=1)

    def tags(envs, t):   # every 8-byte word of frame (env, t) holds (env + 1) << 32 | (t + 1)
        words = ((envs.astype(np.uint64) + 1) << np.uint64(32)) | np.uint64(t + 1)
        return np.repeat(words[:, None], 84 * 84 // 8, axis=1).view(np.uint8).reshape(-1, 84, 84)

    envs = np.arange(num_envs, dtype=np.int32)
    zeros = np.zeros(num_envs, bool)

    def add(t):
        memory.add(envs, tags(envs, t), np.full(num_envs, t % 18), np.ones(num_envs, np.float32), zeros, zeros,
                   zeros, np.full(num_envs, t == 0))

    for t in range(16):       # 60 transitions before the samplers start: more than a batch
        add(t)
    stop, errors, checked = threading.Event(), [], [0, 0]

    def writer():
        t = 16
        while not stop.is_set():
            add(t)
            t += 1

    def sampler(k):
        try:
            out = memory.empty_batch(32)
            for call in range(300):
                memory.sample(32, seed=1000 * k + call, out=out)
                env = out.env_id.numpy().astype(np.uint64)
                t = out.index.numpy()
                words = out.obs.numpy().reshape(32, 4, -1).view(np.uint64)
                nexts = out.next_obs.numpy().reshape(32, 4, -1).view(np.uint64)
                for j in range(4):   # one episode per env: frame t - 3 + j, zero before t = 0
                    position = t - 3 + j
                    expected = np.where(position >= 0, ((env + 1) << np.uint64(32)) | (position + 1).astype(np.uint64), 0)
                    assert (words[:, j] == expected[:, None]).all(), "torn obs"
                    expected_next = ((env + 1) << np.uint64(32)) | (position + 2).astype(np.uint64)
                    assert (nexts[:, j] == np.where(position + 1 >= 0, expected_next, 0)[:, None]).all(), "torn next_obs"
                np.testing.assert_array_equal(out.action.numpy(), (t + 1) % 18)
                checked[k] += 32
        except Exception as e:  # noqa: BLE001  (reported on the test's thread)
            errors.append(e)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=sampler, args=(k,)) for k in range(2)]
    for th in threads:
        th.start()
    for th in threads[1:]:
        th.join()
    stop.set()
    threads[0].join()
    assert not errors, errors[0]
    assert sum(checked) == 2 * 300 * 32
    assert memory.env_written(0) > 16 + 48   # the writer lapped the rings while samplers ran


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_thread_sanitizer_build(tmp_path, request):
    """Builds the stress driver with -fsanitize=thread and runs it (TSan exits 66 on a data race)."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("about a minute: run with -m slow")
    binary = tmp_path / "replay_stress_tsan"
    sources = sorted(str(p) for p in (ROOT / "csrc" / "replay").glob("*.cpp"))
    sources.append(str(ROOT / "csrc" / "testing" / "replay_stress.cpp"))
    subprocess.run(["g++", "-std=c++20", "-O1", "-g", "-fsanitize=thread", "-pthread", f"-I{ROOT / 'csrc'}",
                    *sources, str(ROOT / "tests" / "cpp" / "replay_stress_main.cpp"), "-o", str(binary)],
                   check=True)
    result = subprocess.run([str(binary), "20000"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING: ThreadSanitizer" not in result.stderr, result.stderr
