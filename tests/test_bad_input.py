"""Hostile input to the public API (issue 16): every bad argument raises a clear error that names it, nothing
hangs, nothing prints pybind11's signature dump, nothing is silently accepted.

Sections: "# -- env" (MultiGameEnvPool, MultiGameVectorEnv), "# -- replay" (ReplayMemory), "# -- op"
(ops.masked_softmax_xent, ops.check_action_masks). Cases are parametrised and fast: a pool is built only
where the case needs a live one.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from actormimic_fast import MultiGameEnvPool
from actormimic_fast.games import rom_path
from actormimic_fast.vector_env import MultiGameVectorEnv

HUGE = [2**31, 2**40, 2**63, 2**64]
NOT_BOOLS = ["no", "yes", 1, 0, 1.0, None, [True]]


@pytest.fixture(scope="module")
def pong():
    pool = MultiGameEnvPool(["pong"], envs_per_game=1, num_threads=1)
    pool.reset()
    yield pool
    pool.close()


# -- env ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, value, error, match", [
    # counts that drive a loop or an allocation are bounded (noop_max=10**9 used to hang reset())
    ("noop_max", 10**9, ValueError, r"noop_max must be in \[0, 10000\], got 1000000000"),
    ("frame_skip", 10**9, ValueError, r"frame_skip must be in \[1, 1000\], got 1000000000"),
    ("stack", 10**6, ValueError, r"stack must be in \[1, 64\], got 1000000"),
    ("envs_per_game", 2**31, ValueError, r"envs_per_game must be at most 4096 .*got 2147483648"),
    ("max_episode_frames", 2**31, ValueError, r"max_episode_frames must be in \[0, 2147483647\], got 2147483648"),
    ("noop_max", 2**63, ValueError, r"noop_max must be in \[0, 10000\]"),
    ("seed", 2**64, ValueError, r"seed must be in \[0, 18446744073709551615\], got 18446744073709551616"),
    ("batch_size", 2**40, ValueError, r"batch_size must be in \[1, 1\], got 1099511627776"),
    ("num_threads", -1, ValueError, r"num_threads must be >= 1, got -1"),
    ("envs_per_game", 2.5, TypeError, r"envs_per_game must be an int, got 2.5"),
    ("frame_skip", "4", TypeError, r"frame_skip must be an int, got '4'"),
    ("noop_max", None, TypeError, r"noop_max must be an int, got None"),
    ("repeat_action_probability", float("nan"), ValueError, r"repeat_action_probability must be a finite number"),
    ("repeat_action_probability", "0.25", TypeError, r"repeat_action_probability must be a real number"),
    ("repeat_action_probability", True, TypeError, r"repeat_action_probability must be a real number"),
    ("invalid_action", None, ValueError, r"invalid_action must be 'error' or 'noop', got None"),
    ("invalid_action", np.array(["noop"]), ValueError, r"invalid_action must be 'error' or 'noop'"),
])
def test_pool_argument_out_of_range_or_of_wrong_type(name, value, error, match):
    with pytest.raises(error, match=match):
        MultiGameEnvPool(["pong"], **{name: value})


@pytest.mark.parametrize("flag", NOT_BOOLS)
def test_pool_flags_must_be_bools(flag):
    """fire_reset='no' used to act as True (truthiness)."""
    with pytest.raises(TypeError, match="fire_reset must be a bool, got " + re.escape(repr(flag))):
        MultiGameEnvPool(["pong"], fire_reset=flag)


def test_pool_accepts_numpy_bools():
    with MultiGameEnvPool(["pong"], fire_reset=np.True_, noop_max=0) as pool:
        assert pool.reset().obs.shape == (1, 4, 84, 84)


@pytest.mark.parametrize("games, error, match", [
    (None, TypeError, r"games must be a game name or a sequence of names, got None"),
    (5, TypeError, r"games must be a game name or a sequence of names, got 5"),
    ({"pong"}, TypeError, r"games must be a game name or a sequence of names"),
    (b"pong", TypeError, r"games must be a game name or a sequence of names"),
    ([None], TypeError, r"game names must be strings, got None"),
    ((), ValueError, r"games must name at least one game"),
    ([""], ValueError, r"unknown game ''"),
])
def test_pool_bad_games(games, error, match):
    with pytest.raises(error, match=match):
        MultiGameEnvPool(games)


def test_pool_refuses_another_games_rom():
    """roms={'pong': <breakout's ROM>} used to run Breakout under the name pong."""
    with pytest.raises(ValueError, match=r"roms\['pong'\]: ROM '.*breakout.bin' is the ROM of 'breakout' by its MD5 "
                                         r"checksum, not of 'pong'"):
        MultiGameEnvPool(["pong"], roms={"pong": rom_path("breakout")})
    with MultiGameEnvPool(["pong"], roms={"pong": rom_path("pong")}) as pool:  # its own ROM is fine
        assert pool.games == ("pong",)


@pytest.mark.parametrize("roms, error, match", [
    (["pong.bin"], TypeError, r"roms must be a dict \{game: ROM path\}, got list"),
    ({"pong": 5}, TypeError, r"roms\['pong'\] must be a path \(str or os.PathLike\), got 5"),
    ({"pong": None}, TypeError, r"roms\['pong'\] must be a path"),
])
def test_pool_bad_roms(roms, error, match):
    with pytest.raises(error, match=match):
        MultiGameEnvPool(["pong"], roms=roms)


@pytest.mark.parametrize("game, error, match", [
    (-1, IndexError, r"game = -1 is out of range \[0, 1\)"),      # used to wrap to the last game
    (1, IndexError, r"game = 1 is out of range \[0, 1\)"),
    (2**40, IndexError, r"game = 1099511627776 is out of range"),
    (0.0, TypeError, r"game must be an int, got 0.0"),
    (True, TypeError, r"game must be an int, got True"),
    (None, TypeError, r"game must be an int, got None"),
    ("nosuch", ValueError, r"game: 'nosuch' is not a game of this pool, whose games are \['pong'\]"),
    ("breakout", ValueError, r"game: 'breakout' is not a game of this pool"),
])
def test_legal_actions_bad_game(pong, game, error, match):
    with pytest.raises(error, match=match):
        pong.legal_actions(game)


def test_legal_actions_by_index_and_name_agree(pong):
    np.testing.assert_array_equal(pong.legal_actions(0), pong.legal_actions("Pong"))
    np.testing.assert_array_equal(pong.legal_actions(np.int64(0)), np.flatnonzero(pong.action_masks[0]))


@pytest.mark.parametrize("actions, error, match", [
    (torch.zeros(1, dtype=torch.int64, device="meta"), ValueError, r"actions must be on the CPU, got a tensor on "
                                                                    r"device meta"),
    (np.array([2**64 - 1], np.uint64), ValueError, r"actions holds 18446744073709551615, which does not fit in int64"),
    ([2**64], TypeError, r"actions must be an integer array, got dtype object"),
    ([0.0], TypeError, r"actions must be an integer array, got dtype float64"),
    ([True], TypeError, r"actions must be an integer array, got dtype bool"),
    ([], ValueError, r"actions must have shape \(1,\), got \(0,\)"),
    ([[0]], ValueError, r"actions must have shape \(1,\), got \(1, 1\)"),
    (None, TypeError, r"actions must be an integer array, got dtype object"),
    ([2**40], ValueError, r"action 1099511627776 for env 0 is outside the full action set \[0, 17\]"),
    ([-1], ValueError, r"action -1 for env 0 is outside the full action set"),
])
def test_step_bad_actions(pong, actions, error, match):
    with pytest.raises(error, match=match):
        pong.step(actions)
    pong.step([0])  # the pool is still usable


def test_step_accepts_cpu_tensors_and_non_contiguous_arrays(pong):
    pong.step(torch.zeros(1, dtype=torch.int64, requires_grad=False))
    pong.step(np.zeros(2, np.int64)[::2])


@pytest.mark.parametrize("env_ids, error, match", [
    (torch.zeros(1, dtype=torch.int32, device="meta"), ValueError, r"env_ids must be on the CPU"),
    ([2**40], IndexError, r"env_ids: env id 1099511627776 is out of range \[0, 1\)"),
    ([-1], IndexError, r"env id -1 is out of range"),
    ([[0]], TypeError, r"env_ids must be a 1-D integer array"),
])
def test_send_bad_env_ids(env_ids, error, match):
    with MultiGameEnvPool(["pong"], num_threads=1) as pool:
        pool.async_reset()
        pool.recv()
        with pytest.raises(error, match=match):
            pool.send([0], env_ids)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(games=None), TypeError, r"games must be a game name or a sequence of names, got None"),
    (dict(games=["pong"], noop_max=10**9), ValueError, r"noop_max must be in \[0, 10000\]"),
    (dict(games=["pong"], fire_reset="no"), TypeError, r"fire_reset must be a bool"),
    (dict(games=["pong"], envs_per_game=2**31), ValueError, r"envs_per_game must be at most"),
])
def test_vector_env_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        MultiGameVectorEnv(**kwargs)


def test_vector_env_bad_seed_keeps_the_env_usable():
    env = MultiGameVectorEnv(["pong"], noop_max=0)
    try:
        with pytest.raises(ValueError, match=r"seed must be in \[0, 18446744073709551615\], got 18446744073709551616"):
            env.reset(seed=2**64)
        obs, _ = env.reset()          # the old pool was not closed by the failed reseed
        assert obs.shape == (1, 4, 84, 84)
        with pytest.raises(ValueError, match=r"action 99 for env 0 is outside the full action set"):
            env.step(np.array([99]))
    finally:
        env.close()
