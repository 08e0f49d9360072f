"""MultiGameEnvPool's colour screens: equal to ale-py's getScreenRGB on the same actions, no effect on the
observations, errors."""

import numpy as np
import pytest

from actormimic_fast import MultiGameEnvPool
from actormimic_fast.native.games import rom_path


def random_legal_actions(pool, steps, seed=0):
    rng = np.random.default_rng(seed)
    legal = [np.flatnonzero(m) for m in pool.env_action_masks]
    return np.stack([rng.choice(l, size=steps) for l in legal], axis=1)


def ale_screens(game, actions, frame_skip=4):
    """ale-py's own RGB screen after a reset and after each agent step of `actions`, with the pool's
    conventions: frame_skip frames per step (stopping at a game over) and next-step autoreset."""
    from ale_py import Action, ALEInterface, LoggerMode

    ALEInterface.setLoggerMode(LoggerMode.Error)
    ale = ALEInterface()
    ale.setFloat("repeat_action_probability", 0.0)
    ale.loadROM(rom_path(game))
    ale.reset_game()
    screens, ends = [ale.getScreenRGB()], 0
    done = False
    for a in actions:
        if done:
            ale.reset_game()
            done = False
        else:
            for _ in range(frame_skip):
                ale.act(Action(int(a)))
                if ale.game_over():
                    done, ends = True, ends + 1
                    break
        screens.append(ale.getScreenRGB())
    return np.stack(screens), ends


def rollout(pool, actions, capture=None):
    """Copies of every per-env output (and of the screens of `capture`) after reset and each step."""
    keys = ("obs", "reward", "terminated", "truncated", "life_loss", "episode_start", "lives",
            "episode_return", "episode_length")
    if capture is not None:
        pool.capture_screens(capture)
    out = pool.reset()
    trace = {k: [getattr(out, k).copy()] for k in keys}
    screens = [pool.screens[capture].copy()] if capture else []
    for a in actions:
        out = pool.step(a)
        for k in keys:
            trace[k].append(getattr(out, k).copy())
        if capture:
            screens.append(pool.screens[capture].copy())
    return {k: np.stack(v) for k, v in trace.items()}, (np.stack(screens) if capture else None)


def test_screens_equal_ale_get_screen_rgb_for_chosen_envs_including_episode_ends():
    pool = MultiGameEnvPool(["pong", "breakout"], envs_per_game=2, noop_max=0, seed=5)
    actions = random_legal_actions(pool, 400, seed=1)
    capture = [1, 2]                                  # pong's second copy, breakout's first
    _, screens = rollout(pool, actions, capture)
    assert screens.shape == (401, 2, 210, 160, 3) and screens.dtype == np.uint8
    for column, env in enumerate(capture):
        game = pool.games[pool.game_ids[env]]
        expected, ends = ale_screens(game, actions[:, env])
        if game == "breakout":
            assert ends >= 1                          # a game over inside a frame skip, then a reset
        np.testing.assert_array_equal(screens[:, column], expected, err_msg=game)


def test_capture_leaves_observations_and_every_output_unchanged():
    games, seed = ["breakout", "seaquest"], 3
    actions = random_legal_actions(MultiGameEnvPool(games, envs_per_game=2), 300, seed=2)
    off, _ = rollout(MultiGameEnvPool(games, envs_per_game=2, seed=seed), actions)
    on, _ = rollout(MultiGameEnvPool(games, envs_per_game=2, seed=seed), actions, capture=[0, 1, 2, 3])
    some, _ = rollout(MultiGameEnvPool(games, envs_per_game=2, seed=seed, num_threads=1), actions, capture=[3])
    assert off["episode_start"][1:].any()             # covers an autoreset
    for key in off:
        np.testing.assert_array_equal(on[key], off[key], err_msg=key)
        np.testing.assert_array_equal(some[key], off[key], err_msg=key)


def test_switching_capture_on_shows_the_current_screen_and_off_freezes_the_row():
    pool = MultiGameEnvPool(["pong", "breakout"], noop_max=0)
    actions = random_legal_actions(pool, 40, seed=3)
    pool.reset()
    for a in actions[:20]:
        pool.step(a)
    assert not pool.capturing.any()
    pool.capture_screens([1])
    np.testing.assert_array_equal(pool.capturing, [False, True])
    expected, _ = ale_screens("breakout", actions[:, 1])
    np.testing.assert_array_equal(pool.screens[1], expected[20])      # at once, before the next step
    assert not pool.screens[0].any()                                   # never captured
    pool.step(actions[20])
    np.testing.assert_array_equal(pool.screens[1], expected[21])
    pool.capture_screens([])
    frozen = pool.screens[1].copy()
    pool.step(actions[21])
    np.testing.assert_array_equal(pool.screens[1], frozen)
    assert not pool.screens.flags.writeable


def test_async_capture_gives_each_recv_its_screen():
    pool = MultiGameEnvPool(["pong", "breakout"], noop_max=0, batch_size=1, seed=4)
    steps = 30
    actions = random_legal_actions(pool, steps, seed=4)
    expected = [ale_screens(g, actions[:, e])[0] for e, g in enumerate(pool.games)]
    pool.capture_screens([0, 1])
    pool.async_reset()
    done, in_flight = [0, 0], 2
    while in_flight:
        e = int(pool.recv().env_id[0])
        in_flight -= 1
        np.testing.assert_array_equal(pool.screens[e], expected[e][done[e]], err_msg=f"env {e} step {done[e]}")
        if done[e] < steps:
            pool.send([actions[done[e], e]], [e])
            in_flight += 1
        done[e] += 1
    assert done == [steps + 1, steps + 1]


def test_capture_errors():
    pool = MultiGameEnvPool(["pong"], envs_per_game=3, batch_size=2)
    with pytest.raises(RuntimeError, match=r"screens: no env has captured its screen yet; call capture_screens"):
        pool.screens
    with pytest.raises(IndexError, match=r"env_ids: env id 3 is out of range \[0, 3\)"):
        pool.capture_screens([0, 3])
    with pytest.raises(IndexError, match=r"env_ids: env id -1 is out of range \[0, 3\)"):
        pool.capture_screens([-1])
    with pytest.raises(TypeError, match=r"env_ids must be a 1-D sequence of integer env ids, got \[0.5\]"):
        pool.capture_screens([0.5])
    with pytest.raises(TypeError, match="env_ids must be a 1-D sequence of integer env ids"):
        pool.capture_screens([True, False, True])
    assert not pool.capturing.any()                   # failed calls change nothing
    pool.capture_screens([2])
    pool.async_reset()
    with pytest.raises(ValueError, match="env_ids: env 0 has an action in flight; recv"):
        pool.capture_screens([0, 2])
    pool.capture_screens([2])                         # no change for in-flight envs: allowed
    pool.recv()
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.capture_screens([0])
