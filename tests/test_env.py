"""MultiGameEnvPool: equality with gymnasium's pipeline, determinism, async mode, errors."""

from pathlib import Path

import numpy as np
import pytest

from actormimic_fast import MultiGameEnvPool
from actormimic_fast.reference.atari_reference import reference_rollout


def random_legal_actions(pool, steps, seed=0):
    """[steps, num_envs] random legal actions of each env's game."""
    rng = np.random.default_rng(seed)
    legal = [np.flatnonzero(m) for m in pool.env_action_masks]
    return np.stack([rng.choice(l, size=steps) for l in legal], axis=1)


def rollout(pool, actions):
    """Copies of every per-env output after reset and after each sync step."""
    keys = ("obs", "reward", "terminated", "truncated", "life_loss", "episode_start", "lives")
    out = pool.reset()
    trace = {k: [getattr(out, k).copy()] for k in keys}
    for a in actions:
        out = pool.step(a)
        for k in keys:
            trace[k].append(getattr(out, k).copy())
    return {k: np.stack(v) for k, v in trace.items()}


# -- equality with gymnasium's AtariPreprocessing + FrameStackObservation ----------------------------

@pytest.mark.parametrize("game,steps", [("pong", 300), ("breakout", 400), ("seaquest", 300),
                                        ("space_invaders", 300), ("boxing", 200)])
def test_pixel_exact_against_gymnasium_reference(game, steps):
    pool = MultiGameEnvPool([game], noop_max=0, seed=3)
    actions = random_legal_actions(pool, steps, seed=1)
    ours = rollout(pool, actions)
    ref = reference_rollout(game, actions[:, 0])
    np.testing.assert_array_equal(ours["obs"][:, 0], ref["obs"])
    np.testing.assert_array_equal(ours["reward"][:, 0], ref["reward"].astype(np.float32))
    np.testing.assert_array_equal(ours["terminated"][:, 0], ref["terminated"])
    np.testing.assert_array_equal(ours["truncated"][:, 0], ref["truncated"])
    np.testing.assert_array_equal(ours["episode_start"][:, 0], ref["episode_start"])


@pytest.mark.parametrize("simd", [False, True], ids=["portable", "avx2"])
def test_pixel_exact_on_both_frame_op_paths(simd):
    from actormimic_fast import _C
    if simd and not _C.simd_enabled():
        pytest.skip("no AVX2 on this CPU")
    before = _C.simd_enabled()
    _C.set_simd_enabled(simd)
    try:
        test_pixel_exact_against_gymnasium_reference("breakout", 200)
    finally:
        _C.set_simd_enabled(before)


def test_episode_end_and_autoreset_match_reference():
    # Breakout under random play loses all lives well within 400 steps: covers the terminal frame
    # (max-pool with the previous step's buffer) and the next-step reset.
    pool = MultiGameEnvPool(["breakout"], noop_max=0)
    actions = random_legal_actions(pool, 400, seed=1)
    ours = rollout(pool, actions)
    ref = reference_rollout("breakout", actions[:, 0])
    assert ref["terminated"].sum() >= 1 and ref["episode_start"][1:].sum() >= 1
    np.testing.assert_array_equal(ours["obs"][:, 0], ref["obs"])


def test_truncation_at_episode_frame_cap_matches_reference():
    pool = MultiGameEnvPool(["pong"], noop_max=0, max_episode_frames=400)
    actions = random_legal_actions(pool, 250, seed=2)
    ours = rollout(pool, actions)
    ref = reference_rollout("pong", actions[:, 0], max_episode_frames=400)
    assert ref["truncated"].sum() >= 2
    for key in ("truncated", "terminated", "episode_start"):
        np.testing.assert_array_equal(ours[key][:, 0], ref[key])
    np.testing.assert_array_equal(ours["obs"][:, 0], ref["obs"])


# -- outputs ------------------------------------------------------------------------------------------

def test_reset_stack_is_zero_padded_and_flags_set():
    pool = MultiGameEnvPool(["pong", "breakout"], envs_per_game=2)
    out = pool.reset()
    assert out.obs.shape == (4, 4, 84, 84) and out.obs.dtype == np.uint8
    assert not out.obs[:, :3].any() and out.obs[:, 3].any()
    assert out.episode_start.all() and not out.reward.any()
    out = pool.step(random_legal_actions(pool, 1)[0])
    assert not out.episode_start.any()
    assert out.obs[:, 2].any()  # the reset frame moved down the stack


def test_action_masks_and_game_ids_match_ale_minimal_sets():
    from ale_py import ALEInterface, roms
    games = ["pong", "breakout", "seaquest", "boxing", "crazy_climber"]
    pool = MultiGameEnvPool(games, envs_per_game=2)
    assert pool.action_masks.shape == (5, 18) and pool.action_masks.dtype == np.bool_
    np.testing.assert_array_equal(pool.game_ids, np.repeat(np.arange(5), 2))
    for g, game in enumerate(games):
        ale = ALEInterface()
        ale.loadROM(roms.get_rom_path(game))
        expected = sorted(a.value for a in ale.getMinimalActionSet())
        assert list(np.flatnonzero(pool.action_masks[g])) == expected
    assert list(pool.action_masks.sum(1)) == [6, 4, 18, 18, 9]


def test_episode_statistics_and_life_loss():
    pool = MultiGameEnvPool(["breakout"], noop_max=0)
    actions = random_legal_actions(pool, 600, seed=4)
    out = pool.reset()
    ret, length, saw_life_loss, saw_end, lives = 0.0, 0, False, False, out.lives[0]
    for a in actions:
        out = pool.step(a)
        if out.episode_start[0]:
            ret, length, lives = 0.0, 0, out.lives[0]
            continue
        ret += out.reward[0]
        length += 1
        if out.life_loss[0]:
            saw_life_loss = True
            assert out.lives[0] < lives
        lives = out.lives[0]
        if out.terminated[0]:
            saw_end = True
            assert out.episode_return[0] == pytest.approx(ret) and out.episode_length[0] == length
    assert saw_life_loss and saw_end


def test_outputs_are_read_only_views():
    pool = MultiGameEnvPool(["pong"])
    out = pool.reset()
    with pytest.raises(ValueError, match="read-only"):
        out.obs[0, 0, 0, 0] = 1


def test_torch_tensors_share_the_pool_buffers():
    import torch
    pool = MultiGameEnvPool(["pong"], envs_per_game=2, batch_size=1)
    out = pool.reset()
    assert pool.env_tensors.obs.dtype == torch.uint8 and pool.env_tensors.obs.shape == (2, 4, 84, 84)
    assert pool.env_tensors.obs.data_ptr() == out.obs.__array_interface__["data"][0]
    pool.step([3, 4])
    assert torch.equal(pool.env_tensors.obs, torch.from_numpy(out.obs.copy()))
    pool.async_reset()
    batch = pool.recv()
    assert torch.equal(pool.batch_tensors.obs, torch.from_numpy(batch.obs.copy()))
    assert int(pool.batch_tensors.env_id[0]) == int(batch.env_id[0])


def test_fire_reset_presses_fire_after_reset():
    import cv2
    from actormimic_fast.reference.atari_reference import make_reference_env
    pool = MultiGameEnvPool(["breakout"], noop_max=0, fire_reset=True)
    newest = pool.reset().obs[0, -1]
    env = make_reference_env("breakout")
    env.reset(seed=0)
    ale = env.unwrapped.ale
    for _ in range(4):
        ale.act(1)
    expected = cv2.resize(ale.getScreenGrayscale(), (84, 84), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(newest, expected)


# -- determinism -------------------------------------------------------------------------------------

def test_multi_game_pool_equals_single_game_pools():
    games = ["pong", "breakout", "boxing"]
    mixed = MultiGameEnvPool(games, envs_per_game=2, seed=11)
    actions = random_legal_actions(mixed, 120, seed=5)
    together = rollout(mixed, actions)
    for g, game in enumerate(games):
        alone = rollout(MultiGameEnvPool([game], envs_per_game=2, seed=11), actions[:, 2 * g:2 * g + 2])
        for key in together:
            np.testing.assert_array_equal(together[key][:, 2 * g:2 * g + 2], alone[key], err_msg=f"{game} {key}")


def test_results_independent_of_thread_count_and_seeded():
    games = ["pong", "seaquest"]
    actions = random_legal_actions(MultiGameEnvPool(games, envs_per_game=3), 80, seed=6)
    one = rollout(MultiGameEnvPool(games, envs_per_game=3, num_threads=1, seed=7), actions)
    three = rollout(MultiGameEnvPool(games, envs_per_game=3, num_threads=3, seed=7), actions)
    for key in one:
        np.testing.assert_array_equal(one[key], three[key])
    other = rollout(MultiGameEnvPool(games, envs_per_game=3, num_threads=2, seed=8), actions)
    assert not np.array_equal(one["obs"], other["obs"])  # different no-op starts


def test_sticky_actions_are_seeded():
    kwargs = dict(envs_per_game=2, repeat_action_probability=0.25, seed=3)
    actions = random_legal_actions(MultiGameEnvPool(["pong"], **kwargs), 60)
    a = rollout(MultiGameEnvPool(["pong"], **kwargs), actions)
    b = rollout(MultiGameEnvPool(["pong"], num_threads=1, **kwargs), actions)
    np.testing.assert_array_equal(a["obs"], b["obs"])


def test_async_send_recv_gives_the_sync_streams():
    games = ["pong", "breakout"]
    sync_pool = MultiGameEnvPool(games, envs_per_game=3, seed=9)
    steps = 40
    actions = random_legal_actions(sync_pool, steps, seed=8)
    expected = rollout(sync_pool, actions)

    pool = MultiGameEnvPool(games, envs_per_game=3, seed=9, batch_size=2)
    n = pool.num_envs
    seen = [[] for _ in range(n)]
    pool.async_reset()
    while min(len(s) for s in seen) <= steps:
        out = pool.recv()
        assert out.obs.shape[0] == 2
        ids = out.env_id.copy()
        for row, e in enumerate(ids):
            seen[e].append(out.obs[row].copy())
            assert out.game_id[row] == pool.game_ids[e]
        todo = [e for e in ids if len(seen[e]) <= steps]
        if todo:
            pool.send([actions[len(seen[e]) - 1, e] for e in todo], todo)
        if sum(len(s) > steps for s in seen) == n:
            break
        if len(todo) < len(ids):  # keep enough envs in flight for the next recv
            idle = [e for e in range(n) if len(seen[e]) > steps]
            if sum(len(seen[e]) <= steps for e in range(n)) < pool.batch_size:
                break
    for e in range(n):
        k = min(len(seen[e]), steps + 1)
        np.testing.assert_array_equal(np.stack(seen[e][:k]), expected["obs"][:k, e])


# -- eager resets ------------------------------------------------------------------------------------
# With background threads, the reset after an episode's end runs ahead of the step that reports it (between
# steps, or while other envs finish a step); the outputs must be those of a pool without background threads.

def full_rollout(pool, actions, pause=0.0, pause_every=1, reset_at=()):
    """rollout() with every output, a pause of `pause` seconds after every `pause_every`-th step (so that
    background resets finish before the next step, or not) and reset() instead of step() at the steps in
    `reset_at`."""
    import time
    keys = ("obs", "reward", "terminated", "truncated", "life_loss", "episode_start", "lives",
            "episode_return", "episode_length")
    out = pool.reset()
    trace = {k: [getattr(out, k).copy()] for k in keys}
    for t, a in enumerate(actions):
        out = pool.reset() if t in reset_at else pool.step(a)
        for k in keys:
            trace[k].append(getattr(out, k).copy())
        if pause and t % pause_every == 0:
            time.sleep(pause)
    return {k: np.stack(v) for k, v in trace.items()}


@pytest.mark.parametrize("threads", [2, 4])
def test_eager_resets_give_the_outputs_of_a_single_thread(threads):
    games = ["pong", "breakout", "seaquest"]
    kwargs = dict(envs_per_game=2, seed=21, max_episode_frames=160)  # an episode end every ~40 steps
    actions = random_legal_actions(MultiGameEnvPool(games, **kwargs), 300, seed=3)
    one = full_rollout(MultiGameEnvPool(games, num_threads=1, **kwargs), actions, reset_at=(100,))
    assert one["truncated"].sum() >= 30 and one["episode_start"][1:].sum() >= 30
    # no pause: resets run in the step's tail or are still running when their env's task comes; 3 ms: some
    # finish in between; 150 ms every 5th step: all finish before the next step
    for pause, every in ((0.0, 1), (0.003, 1), (0.15, 5)):
        many = full_rollout(MultiGameEnvPool(games, num_threads=threads, **kwargs), actions, pause, every, (100,))
        for key in one:
            np.testing.assert_array_equal(many[key], one[key], err_msg=f"{key}, pause {pause} every {every}")


def test_explicit_reset_after_an_episode_end_starts_one_episode():
    # reset() right after the step that ended episodes, once their background resets have finished: it must
    # publish those (the same no-op draws), not start yet another episode
    kwargs = dict(envs_per_game=2, seed=24, max_episode_frames=160)
    games = ["space_invaders", "seaquest"]  # screens that move during the no-ops
    actions = random_legal_actions(MultiGameEnvPool(games, **kwargs), 60, seed=6)
    first_end = int(np.flatnonzero(full_rollout(MultiGameEnvPool(games, num_threads=1, **kwargs),
                                                actions)["truncated"].any(axis=1))[0]) - 1  # its step index
    one = full_rollout(MultiGameEnvPool(games, num_threads=1, **kwargs), actions, reset_at=(first_end + 1,))
    two = full_rollout(MultiGameEnvPool(games, num_threads=2, **kwargs), actions, 0.3, first_end,
                       (first_end + 1,))
    for key in one:
        np.testing.assert_array_equal(two[key], one[key], err_msg=key)


def test_eager_resets_in_async_mode_give_the_sync_streams():
    import time
    games = ["pong", "breakout"]
    kwargs = dict(envs_per_game=3, seed=22, max_episode_frames=120)
    steps = 120
    actions = random_legal_actions(MultiGameEnvPool(games, **kwargs), steps, seed=4)
    expected = full_rollout(MultiGameEnvPool(games, num_threads=1, **kwargs), actions)
    pool = MultiGameEnvPool(games, num_threads=3, batch_size=2, **kwargs)
    n = pool.num_envs
    seen = [[] for _ in range(n)]
    ends = [[] for _ in range(n)]
    pool.async_reset()
    in_flight = n
    while in_flight:
        out = pool.recv()
        in_flight -= 2
        for row, e in enumerate(out.env_id.copy()):
            seen[e].append(out.obs[row].copy())
            ends[e].append(bool(out.truncated[row]))
        todo = [e for e in out.env_id if len(seen[e]) <= steps]
        if len(todo) == 2:  # batches of two: stop sending once an env has all its steps
            time.sleep(0.002 * (len(seen[todo[0]]) % 2))
            pool.send([actions[len(seen[e]) - 1, e] for e in todo], todo)
            in_flight += 2
        elif in_flight < 2:
            break
    for e in range(n):
        k = len(seen[e])
        assert k > 45  # episodes ended and reset on the way
        np.testing.assert_array_equal(np.stack(seen[e]), expected["obs"][:k, e])
        np.testing.assert_array_equal(ends[e], expected["truncated"][:k, e])


def test_capture_switched_on_after_an_episode_end_shows_its_last_screen():
    import time
    kwargs = dict(envs_per_game=2, seed=23, max_episode_frames=80, noop_max=0)  # ends at step 20, resets at 21
    actions = random_legal_actions(MultiGameEnvPool(["breakout"], **kwargs), 22, seed=5)
    screens = []
    for threads in (1, 2):
        pool = MultiGameEnvPool(["breakout"], num_threads=threads, **kwargs)
        pool.reset()
        for a in actions[:20]:
            out = pool.step(a)
        assert out.truncated.all()
        time.sleep(0.05)  # with 2 threads the background resets are done by now
        pool.capture_screens([0, 1])
        last = pool.screens.copy()
        pool.step(actions[20])
        screens.append((last, pool.screens.copy()))
    np.testing.assert_array_equal(screens[1][0], screens[0][0])  # the episodes' last screens
    np.testing.assert_array_equal(screens[1][1], screens[0][1])  # the new episodes' first screens
    assert not np.array_equal(screens[0][0], screens[0][1])


# -- errors ------------------------------------------------------------------------------------------

def test_unknown_game_lists_valid_names():
    with pytest.raises(ValueError, match="unknown game 'not_a_game'; valid names are: .*pong"):
        MultiGameEnvPool(["pong", "not_a_game"])


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(envs_per_game=0), ValueError, "envs_per_game must be >= 1, got 0"),
    (dict(num_threads=0), ValueError, "num_threads must be >= 1, got 0"),
    (dict(batch_size=5), ValueError, r"batch_size must be in \[1, 2\], got 5"),
    (dict(frame_skip=0), ValueError, r"frame_skip must be in \[1, 1000\], got 0"),
    (dict(stack=0), ValueError, r"stack must be in \[1, 64\], got 0"),
    (dict(noop_max=-1), ValueError, r"noop_max must be in \[0, 10000\], got -1"),
    (dict(repeat_action_probability=1.5), ValueError, "repeat_action_probability must be in"),
    (dict(invalid_action="ignore"), ValueError, "invalid_action must be 'error' or 'noop', got 'ignore'"),
    (dict(envs_per_game=1.5), TypeError, "envs_per_game must be an int"),
    (dict(seed=-1), ValueError, "seed must be in"),
])
def test_bad_constructor_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        MultiGameEnvPool(["pong", "breakout"], **kwargs)


def test_bad_game_lists():
    with pytest.raises(ValueError, match="at least one game"):
        MultiGameEnvPool([])
    with pytest.raises(ValueError, match="must not repeat"):
        MultiGameEnvPool(["pong", "Pong"])
    with pytest.raises(TypeError, match="game names must be strings"):
        MultiGameEnvPool(["pong", 3])


def test_bad_actions():
    pool = MultiGameEnvPool(["pong", "breakout"])  # pong: 0,1,3,4,11,12; breakout: 0,1,3,4
    pool.reset()
    with pytest.raises(ValueError, match=r"actions must have shape \(2,\), got \(3,\)"):
        pool.step([0, 0, 0])
    with pytest.raises(TypeError, match="actions must be an integer array, got dtype float64"):
        pool.step([0.0, 1.0])
    with pytest.raises(ValueError, match=r"action 18 for env 1 is outside the full action set \[0, 17\]"):
        pool.step([0, 18])
    with pytest.raises(ValueError, match=r"action 11 for env 1 \(game 'breakout'\) is not in its legal set \[0, 1, 3, 4\]"):
        pool.step([0, 11])
    pool.step([11, 4])  # legal: the failed calls changed nothing


def test_invalid_action_noop_plays_noop():
    strict = MultiGameEnvPool(["breakout"], seed=2)
    lenient = MultiGameEnvPool(["breakout"], seed=2, invalid_action="noop")
    a = rollout(strict, np.zeros((30, 1), np.int64))
    b = rollout(lenient, np.full((30, 1), 11))  # RIGHTFIRE is not a Breakout action
    np.testing.assert_array_equal(a["obs"], b["obs"])


def test_async_misuse_raises_instead_of_hanging():
    pool = MultiGameEnvPool(["pong"], envs_per_game=3, batch_size=2)
    with pytest.raises(RuntimeError, match="only 0 envs are in flight but batch_size is 2"):
        pool.recv()
    pool.async_reset()
    with pytest.raises(ValueError, match="env 1 already has an action in flight"):
        pool.send([0], [1])
    with pytest.raises(RuntimeError, match="still have actions in flight"):
        pool.step([0, 0, 0])
    out = pool.recv()
    done = out.env_id.copy()
    with pytest.raises(IndexError, match=r"env id 3 is out of range \[0, 3\)"):
        pool.send([0], [3])
    with pytest.raises(TypeError, match="env_ids must be a 1-D integer array"):
        pool.send([0], [0.5])
    pool.send([0, 0], done)
    pool.recv()


def test_closed_pool_raises():
    pool = MultiGameEnvPool(["pong"])
    pool.reset()
    pool.close()
    assert pool.closed
    for call in (pool.reset, lambda: pool.step([0]), pool.recv, pool.async_reset):
        with pytest.raises(RuntimeError, match="closed"):
            call()
    pool.close()  # idempotent


def test_bad_rom_fails_in_worker_and_raises_in_python(tmp_path: Path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(RuntimeError, match="could not load game 'breakout' from ROM '.*bad.bin': its MD5"):
        MultiGameEnvPool(["pong", "breakout"], envs_per_game=2, roms={"breakout": str(bad)})
    with pytest.raises(RuntimeError, match="could not load game 'pong' from ROM .*doesn't exist"):
        MultiGameEnvPool(["pong"], roms={"pong": str(tmp_path / "missing.bin")})
    with pytest.raises(ValueError, match="roms names games that are not in games"):
        MultiGameEnvPool(["pong"], roms={"boxing": str(bad)})
