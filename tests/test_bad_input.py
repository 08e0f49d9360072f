"""Hostile input to the public API (issue 16): every bad argument raises a clear error that names it, nothing
hangs, nothing prints pybind11's signature dump, nothing is silently accepted.

Sections: "# -- env" (MultiGameEnvPool, MultiGameVectorEnv), "# -- replay" (ReplayMemory), "# -- op"
(ops.masked_softmax_xent, ops.check_action_masks), "# -- checkpoints" (malformed files name the file and
the key), "# -- training" (a diverging run stops and keeps its last good checkpoint), "# -- command line"
(a user error is one line naming the option, exit status 2, before any slow set-up). Cases are
parametrised and fast: a pool is built only where the case needs a live one. The faults (kill -9 during a
checkpoint write, resumed logs) are in test_faults.py.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from actormimic_fast import MultiGameEnvPool, ReplayMemory, TransitionBatch
from actormimic_fast.native import ops
from actormimic_fast.native.games import rom_path
from actormimic_fast.native.vector_env import MultiGameVectorEnv

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


# -- replay ------------------------------------------------------------------------------------------------------
def small_memory(**kwargs) -> ReplayMemory:
    kwargs.setdefault("num_threads", 1)
    return ReplayMemory(kwargs.pop("capacity", 64), kwargs.pop("env_game_ids", [0, 0, 1]), **kwargs)


def add_args(n=1, **override):
    args = dict(env_ids=np.zeros(n, np.int32), frames=np.zeros((n, 84, 84), np.uint8), actions=np.zeros(n, np.int64),
                rewards=np.zeros(n, np.float32), terminated=np.zeros(n, bool), truncated=np.zeros(n, bool),
                life_loss=np.zeros(n, bool), episode_start=np.zeros(n, bool))
    args.update(override)
    return args


def filled_memory() -> ReplayMemory:
    memory = small_memory()
    rng = np.random.default_rng(0)
    for t in range(30):
        memory.add(**add_args(3, env_ids=np.arange(3, dtype=np.int32),
                              frames=rng.integers(0, 255, (3, 84, 84), dtype=np.uint8),
                              actions=rng.integers(0, 18, 3), rewards=rng.normal(size=3).astype(np.float32),
                              episode_start=np.full(3, t == 0)))
    return memory


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(capacity=2**63), ValueError, r"capacity must be in \[1, 1099511627776\], got 9223372036854775808"),
    (dict(capacity=2.5), TypeError, r"capacity must be an int or a sequence of ints \(one per game\), got 2.5"),
    (dict(capacity="64"), TypeError, r"capacity must be an int or a sequence of ints"),
    (dict(capacity=None), TypeError, r"capacity must be an int or a sequence of ints"),
    (dict(capacity=[64, 2.5]), TypeError, r"capacity\[1\] must be an int, got 2.5"),
    (dict(capacity=[64, 2**64]), ValueError, r"capacity\[1\] must be in \[1, 1099511627776\]"),
    (dict(n_step=2**31), ValueError, r"n_step must be in \[1, 1000\], got 2147483648"),
    (dict(stack=10**6), ValueError, r"stack must be in \[1, 64\], got 1000000"),
    (dict(guard=2**40), ValueError, r"guard must be in \[0, 1048576\], got 1099511627776"),
    (dict(num_threads=10**6), ValueError, r"num_threads must be in \[1, 1024\], got 1000000"),
    (dict(seed=2**64), ValueError, r"seed must be in \[0, 18446744073709551615\]"),
    (dict(gamma=float("nan")), ValueError, r"gamma must be a finite number, got nan"),
    (dict(gamma="0.99"), TypeError, r"gamma must be a real number, got '0.99'"),
    (dict(gamma=True), TypeError, r"gamma must be a real number, got True"),
    (dict(life_loss_terminal="yes"), TypeError, r"life_loss_terminal must be a bool, got 'yes'"),
    (dict(life_loss_terminal=1), TypeError, r"life_loss_terminal must be a bool, got 1"),
    (dict(env_game_ids=[2**40]), ValueError, r"env_game_ids must number the games 0..G-1: game 0 has no env"),
    (dict(env_game_ids=[0, 5]), ValueError, r"game 1 has no env \(the largest game id is 5\)"),
    (dict(env_game_ids=[0.0]), TypeError, r"env_game_ids must be a non-empty 1-D integer array"),
    (dict(env_game_ids=None), TypeError, r"env_game_ids must be a non-empty 1-D integer array"),
    (dict(env_game_ids=torch.zeros(2, dtype=torch.int64, device="meta")), ValueError,
     r"env_game_ids must be on the CPU, got a tensor on device meta"),
])
def test_replay_constructor_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        small_memory(**kwargs)


def test_replay_capacity_too_large_for_memory_names_capacity():
    with pytest.raises(MemoryError, match=r"capacity 1099511627776: could not allocate the .* GiB of frames"):
        ReplayMemory(2**40, [0], num_threads=1)


@pytest.mark.parametrize("reward", [float("nan"), float("inf"), -float("inf"), 1e300])
def test_replay_rejects_non_finite_rewards(reward):
    """NaN / inf rewards used to be stored and returned, even with reward_clip."""
    memory = small_memory()
    rewards = np.array([0.5, reward], np.float64)
    with pytest.raises(ValueError, match=re.escape(f"rewards[1] = {reward!r} for env 2 is not finite (in float32)")):
        memory.add(**add_args(2, env_ids=np.array([0, 2], np.int32), rewards=rewards))
    assert memory.env_written(0) == 0  # nothing was stored


@pytest.mark.parametrize("override, error, match", [
    (dict(frames=torch.zeros(1, 84, 84, dtype=torch.uint8, device="meta")), ValueError,
     r"frames must be on the CPU, got a tensor on device meta"),
    (dict(rewards=torch.zeros(1, device="meta")), ValueError, r"rewards must be on the CPU"),
    (dict(actions=np.array([2**64 - 1], np.uint64)), ValueError, r"actions holds 18446744073709551615, which does "
                                                                  r"not fit in int64"),
    (dict(actions=np.array([2**40])), ValueError, r"actions\[0\] = 1099511627776 is not in \[0, 2\^31\)"),
    (dict(env_ids=np.array([2**40])), IndexError, r"env_ids: env id 1099511627776 is out of range \[0, 3\)"),
    (dict(env_ids=np.array([2**64 - 1], np.uint64)), IndexError, r"env id 18446744073709551615 is out of range"),
    (dict(terminated=np.array([1])), TypeError, r"terminated must be a bool array, got dtype int64"),
    (dict(frames=np.zeros((1, 84, 84), np.float32)), TypeError, r"frames must have dtype uint8, got float32"),
])
def test_replay_add_bad_arguments(override, error, match):
    memory = small_memory()
    with pytest.raises(error, match=match):
        memory.add(**add_args(1, **override))


def test_replay_add_accepts_cpu_tensors_and_empty_steps():
    memory = small_memory()
    memory.add(**add_args(0))
    memory.add(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in add_args(1).items()})
    assert memory.env_written(0) == 1


@pytest.mark.parametrize("edit, error, match", [
    (lambda s: s["flags"].fill_(0xFF), ValueError, r"state\['flags'\]\[0\] = 255 has bits outside 0x0f: add\(\) "
                                                   r"never stores that"),
    (lambda s: s["env_written"].add_(torch.tensor([1, -1, 0])), None, None),   # same total: cannot be detected
    (lambda s: s["env_written"].add_(torch.tensor([1, 0, 0])), ValueError,
     r"state\['frames'\] must have shape \[91, 84, 84\]: it holds 90 records but state\['env_written'\] keeps 91"),
    (lambda s: s["env_written"].fill_(-1), ValueError, r"state\['env_written'\]\[0\] = -1 is not in \[0, 2\^62\]"),
    (lambda s: s["env_written"].fill_(2**63 - 1), ValueError, r"state\['env_written'\]\[0\] = 9223372036854775807"),
    (lambda s: s.pop("flags"), ValueError, r"state is missing key 'flags'"),
    (lambda s: s.pop("seed_calls"), ValueError, r"state is missing key 'seed_calls'"),
    (lambda s: s.update(frames=s["frames"].tolist()), TypeError, r"state\['frames'\] must be a torch.Tensor, got list"),
    (lambda s: s.update(env_written=[30, 30, 30]), TypeError, r"state\['env_written'\] must be a torch.Tensor"),
    (lambda s: s.update(actions=s["actions"].long()), TypeError, r"state\['actions'\] must have dtype torch.int32"),
    (lambda s: s.update(rewards=s["rewards"][:, None]), ValueError, r"state\['rewards'\] must have shape \[N\]"),
    (lambda s: s.update(frames=torch.empty(90, 84, 84, dtype=torch.uint8, device="meta")), ValueError,
     r"state\['frames'\] must be on the CPU, got device meta"),
    (lambda s: s["rewards"].__setitem__(5, math.nan), ValueError, r"state\['rewards'\]\[5\] = nan is not finite"),
    (lambda s: s["actions"].__setitem__(7, -3), ValueError, r"state\['actions'\]\[7\] = -3 is negative"),
    (lambda s: s.update(seed_calls=-1), ValueError, r"state\['seed_calls'\] must be in \[0, 18446744073709551615\]"),
    (lambda s: s.update(stack="4"), TypeError, r"state\['stack'\] must be an int, got '4'"),
    (lambda s: s.update(capacity=[64, 64]), TypeError, r"state\['capacity'\] must be a torch.Tensor"),
])
def test_replay_load_state_dict_validates(edit, error, match):
    state = filled_memory().state_dict()
    edit(state)
    target = small_memory()
    if error is None:
        target.load_state_dict(state)   # documented as not validatable: the records are re-attributed
        assert [target.env_written(e) for e in range(3)] == [31, 29, 30]
        return
    with pytest.raises(error, match=match):
        target.load_state_dict(state)
    assert target.env_written(0) == 0  # nothing was replaced


@pytest.mark.parametrize("state, error, match", [
    (None, TypeError, r"state must be a dict \(a ReplayMemory state_dict\), got NoneType"),
    ([], TypeError, r"state must be a dict"),
    ({}, ValueError, r"state is not a ReplayMemory state_dict"),
])
def test_replay_load_state_dict_not_a_state(state, error, match):
    with pytest.raises(error, match=match):
        small_memory().load_state_dict(state)


@pytest.mark.parametrize("kwargs, error, match", [
    # sample(10**9) used to fail in the allocator before the documented size check
    (dict(batch_size=10**9), ValueError, r"sample: batch_size = 1000000000 is more than the \d+ transitions"),
    (dict(per_game=10**9), ValueError, r"sample: per_game = 1000000000 is more than the \d+ transitions game \d holds"),
    (dict(batch_size=2**63), ValueError, r"batch_size = 9223372036854775808 is more than"),
    (dict(batch_size=2.0), TypeError, r"batch_size must be an int, got 2.0"),
    (dict(batch_size=4, games=None, seed=2**64), ValueError, r"seed must be in \[0, 18446744073709551615\]"),
    (dict(batch_size=4, games="01"), TypeError, r"games must be None, a game index or a sequence of game indices"),
    (dict(batch_size=4, games=[0.5]), TypeError, r"games\[0\] must be an int, got 0.5"),
    (dict(batch_size=4, games=[-1]), IndexError, r"games\[0\] = -1 is out of range \[0, 2\)"),
    (dict(batch_size=4, games=2**40), IndexError, r"games = 1099511627776 is out of range \[0, 2\)"),
    (dict(batch_size=4, reward_clip="1"), TypeError, r"reward_clip must be None or a number > 0, got '1'"),
    (dict(batch_size=4, reward_clip=math.nan), ValueError, r"reward_clip must be None or a number > 0, got nan"),
])
def test_replay_sample_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        filled_memory().sample(**kwargs)


def meta_batch(rows: int, field: str) -> TransitionBatch:
    batch = small_memory().empty_batch(rows)
    return TransitionBatch(**{**batch.__dict__, field: torch.empty_like(getattr(batch, field), device="meta")})


@pytest.mark.parametrize("field", ["obs", "next_obs", "reward", "index"])
def test_replay_out_buffers_on_another_device(field):
    memory = filled_memory()
    with pytest.raises(ValueError, match=rf"out.{field} must be a CPU tensor, got meta"):
        memory.sample(4, out=meta_batch(4, field))
    with pytest.raises(ValueError, match=rf"out.{field} must be a CPU tensor, got meta"):
        memory.gather([0], [5], out=meta_batch(1, field))


@pytest.mark.parametrize("out, error, match", [
    (lambda b: TransitionBatch(**{**b.__dict__, "obs": np.zeros((2, 4, 84, 84), np.uint8)}), TypeError,
     r"out.obs must be a torch.Tensor, got ndarray"),      # used to print pybind11's signature dump
    (lambda b: TransitionBatch(**{**b.__dict__, "done": None}), TypeError, r"out.done must be a torch.Tensor"),
    (lambda b: TransitionBatch(**{**b.__dict__, "obs": torch.zeros(())}), ValueError,
     r"out.obs must have shape \[2, 4, 84, 84\], got \[\]"),
    (lambda b: TransitionBatch(**{**b.__dict__, "reward": torch.zeros(4)[::2]}), ValueError,
     r"out.reward must be contiguous"),
    (lambda b: {"obs": b.obs}, TypeError, r"out must be a TransitionBatch"),
])
def test_replay_bad_out_buffers(out, error, match):
    memory = filled_memory()
    with pytest.raises(error, match=match):
        memory.sample(2, out=out(memory.empty_batch(2)))


def test_replay_huge_empty_batch_names_batch_size():
    with pytest.raises(MemoryError, match=r"empty_batch: batch_size 1099511627776 needs .* GiB of frames"):
        small_memory().empty_batch(2**40)


def test_replay_for_pool_needs_a_pool():
    with pytest.raises(TypeError, match=r"pool must be a MultiGameEnvPool, got NoneType"):
        ReplayMemory.for_pool(None, 100)


@pytest.mark.parametrize("step, got", [(dict(add_args(1)), "dict"), (None, "NoneType"), (add_args(1)["frames"], "ndarray")])
def test_replay_add_step_needs_a_pool_step(step, got):
    """add_step(dict, actions) used to raise AttributeError ('dict' object has no attribute 'env_id')."""
    with pytest.raises(TypeError, match=r"add_step: step must be a pool step result \(a PoolStep from "
                                        rf"MultiGameEnvPool.reset, step or recv\), got {got}; use add\(\)"):
        small_memory().add_step(step, np.zeros(1, np.int64))


def test_replay_add_step_takes_a_pool_step(pong):
    memory = ReplayMemory.for_pool(pong, 100)
    memory.add_step(pong.reset(), np.zeros(1, np.int64))
    assert memory.env_written(0) == 1


def test_replay_capacity_as_numpy_scalar_or_array():
    assert small_memory(capacity=np.array(64)).capacity == (64, 64)
    assert small_memory(capacity=np.array([64, 80])).capacity == (64, 80)


@pytest.mark.parametrize("call, error, match", [
    (lambda m: m.valid_indices(None), TypeError, r"game must be an int, got None"),   # used to return game 0's
    (lambda m: m.valid_indices(-1), IndexError, r"game = -1 is out of range \[0, 2\)"),
    (lambda m: m.num_transitions(2), IndexError, r"game = 2 is out of range \[0, 2\)"),
    (lambda m: m.num_records(1.0), TypeError, r"game must be an int, got 1.0"),
    (lambda m: m.env_written(2**40), IndexError, r"env = 1099511627776 is out of range \[0, 3\)"),
    (lambda m: m.env_written(-1), IndexError, r"env = -1 is out of range"),
    (lambda m: m.gather([0], np.array([2**64 - 1], np.uint64)), ValueError, r"indices holds 18446744073709551615"),
    (lambda m: m.gather([0], [2**40]), IndexError, r"\(env 0, index 1099511627776\) is not written yet"),
    (lambda m: m.gather([0], [5], reward_clip=-1), ValueError, r"reward_clip must be None or a number > 0, got -1"),
    (lambda m: m.empty_batch(4, pin_memory="yes"), TypeError, r"pin_memory must be a bool, got 'yes'"),
    (lambda m: m.empty_batch(0), ValueError, r"batch_size must be >= 1, got 0"),
])
def test_replay_reading_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call(filled_memory())


# -- op ----------------------------------------------------------------------------------------------------------
def op_inputs(rows=4, actions=18, device="cpu"):
    g = torch.Generator().manual_seed(0)
    student = torch.randn(rows, actions, generator=g).to(device)
    teacher = torch.randn(rows, actions, generator=g).to(device)
    table = torch.ones(2, actions, dtype=torch.bool, device=device)
    game_id = torch.tensor([0, 1] * (rows // 2), device=device)
    return student, teacher, table, game_id


@pytest.mark.parametrize("tau, error, match", [
    (1e-300, ValueError, r"tau must be a positive finite number in \[1.17549e-38, 3.40282e\+38\] \(a normal float32, "
                         r"so that 1/tau is finite\), got 1e-300"),     # used to return NaN
    (1e-39, ValueError, r"tau must be a positive finite number in"),
    (1e39, ValueError, r"tau must be a positive finite number in"),
    (0.0, ValueError, r"tau must be a positive finite number in"),
    (-1.0, ValueError, r"tau must be a positive finite number in"),
    (math.inf, ValueError, r"tau must be a positive finite number in"),
    (math.nan, ValueError, r"tau must be a finite number, got nan"),
    (10**400, ValueError, r"tau must fit in a float"),
    ("abc", TypeError, r"masked_softmax_xent: tau must be a real number, got 'abc' of type str"),
    (None, TypeError, r"masked_softmax_xent: tau must be a real number, got None"),
    (True, TypeError, r"tau must be a real number, got True"),
    (torch.tensor(1.0), TypeError, r"tau must be a real number"),
])
def test_op_bad_tau(tau, error, match):
    student, teacher, table, game_id = op_inputs()
    with pytest.raises(error, match=match):
        ops.masked_softmax_xent(student, teacher, table, tau, game_id=game_id)


def test_op_smallest_and_largest_tau_stay_finite():
    student, teacher, table, game_id = op_inputs()
    for tau in (ops.TAU_MIN, 1e-30, ops.TAU_MAX, np.float32(0.5), 2):
        s = student.clone().requires_grad_()
        loss = ops.masked_softmax_xent(s, teacher, table, tau, game_id=game_id, reduction="sum")
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(s.grad).all(), tau


@pytest.mark.parametrize("which", ["student_logits", "teacher_q", "action_mask", "game_id", "all"])
def test_op_meta_tensors_raise_value_error(which):
    """Meta inputs used to return a meta tensor (the fake kernel serves the Meta key) instead of an error."""
    args = dict(zip(("student_logits", "teacher_q", "action_mask", "game_id"), op_inputs()))
    for name in args if which == "all" else [which]:
        args[name] = args[name].to("meta")
    with pytest.raises(ValueError, match=r"masked_softmax_xent: \w+ is on (the meta device|meta)"):
        ops.masked_softmax_xent(args["student_logits"], args["teacher_q"], args["action_mask"],
                                game_id=args["game_id"])
    with pytest.raises(ValueError, match=r"is on (the meta device|meta)"):
        s = args["student_logits"].clone().requires_grad_()
        ops.masked_softmax_xent(s, args["teacher_q"], args["action_mask"], game_id=args["game_id"])


def test_backward_ops_refuse_meta_tensors():
    student, teacher, table, game_id = op_inputs()
    with pytest.raises(ValueError, match=r"masked_softmax_xent_backward: grad_loss is on the meta device; the op "
                                         r"needs its values"):
        torch.ops.actormimic_fast.masked_softmax_xent_backward(torch.ones(4, device="meta"), student, teacher, table,
                                                               game_id, 1.0, False)
    with pytest.raises(ValueError, match=r"masked_softmax_xent_scale_grad: dloss_dlogits is on the meta device"):
        torch.ops.actormimic_fast.masked_softmax_xent_scale_grad(torch.ones(4, 18, device="meta"),
                                                                 torch.ones(4, device="meta"), "none", torch.float32)


@pytest.mark.parametrize("check", [v for v in NOT_BOOLS if v is not None] + [np.array([True])])
def test_op_check_must_be_a_bool(check):   # or None, the device's default
    student, teacher, table, game_id = op_inputs()
    with pytest.raises(TypeError, match=r"masked_softmax_xent: check must be a bool"):
        ops.masked_softmax_xent(student, teacher, table, game_id=game_id, check=check)


@pytest.mark.parametrize("name, value", [("teacher_q", np.zeros((4, 18), np.float32)), ("action_mask", None),
                                         ("game_id", [0, 1, 0, 1]), ("game_id", np.zeros(4, np.int64))])
def test_op_arguments_must_be_tensors(name, value):
    args = dict(zip(("student_logits", "teacher_q", "action_mask", "game_id"), op_inputs()), **{name: value})
    with pytest.raises(TypeError, match=rf"masked_softmax_xent: {name} must be a torch.Tensor"):
        ops.masked_softmax_xent(args["student_logits"], args["teacher_q"], args["action_mask"],
                                game_id=args["game_id"])


@pytest.mark.parametrize("reduction", [None, "MEAN", ["mean"], 0])
def test_op_bad_reduction(reduction):
    student, teacher, table, game_id = op_inputs()
    with pytest.raises(ValueError, match=r"reduction must be one of \('none', 'mean', 'sum'\)"):
        ops.masked_softmax_xent(student, teacher, table, game_id=game_id, reduction=reduction)


@pytest.mark.parametrize("teacher_grad", [False, True])
def test_op_double_backward_raises(teacher_grad):
    """A double backward used to return a gradient without grad_fn, silently dropping the second order."""
    student, teacher, table, game_id = op_inputs()
    s, t = student.clone().requires_grad_(), teacher.clone().requires_grad_(teacher_grad)
    loss = ops.masked_softmax_xent(s, t, table, game_id=game_id, reduction="sum")
    with pytest.raises(NotImplementedError, match=r"double backward \(create_graph=True\) is not supported"):
        torch.autograd.grad(loss, s, create_graph=True)
    (grad,) = torch.autograd.grad(ops.masked_softmax_xent(s, t, table, game_id=game_id, reduction="sum"), s)
    assert grad.grad_fn is None and torch.isfinite(grad).all()   # first order still works


@pytest.mark.parametrize("student, error, match", [
    (np.zeros((4, 18), np.float32), TypeError, r"masked_softmax_xent: student_logits must be a torch.Tensor, got "
                                               r"ndarray"),
    (torch.zeros(4, 18, dtype=torch.int64), TypeError, r"student_logits must be float32, float16, bfloat16 or "
                                                       r"float64, got Long"),
    (torch.zeros(4, 18, dtype=torch.complex64), TypeError, r"student_logits must be float32"),
    (torch.zeros(4, 18, 1), ValueError, r"student_logits must be 2-D \[B, A\], got shape \[4, 18, 1\]"),
    (torch.zeros(4, 2**20), ValueError, r"1 to 32 actions \(columns\)"),
])
def test_op_bad_student_logits(student, error, match):
    _, _, table, game_id = op_inputs()
    teacher = torch.zeros(4, 18) if isinstance(student, np.ndarray) else torch.zeros_like(student)
    with pytest.raises(error, match=match):
        ops.masked_softmax_xent(student, teacher, table, game_id=game_id)


def test_op_empty_and_non_contiguous_inputs_in_check_mode():
    student, teacher, table, game_id = op_inputs(rows=8)
    empty = ops.masked_softmax_xent(student[:0], teacher[:0], table, game_id=game_id[:0], check=True)
    assert empty.shape == (0,)
    assert torch.isnan(ops.masked_softmax_xent(student[:0], teacher[:0], table, game_id=game_id[:0],
                                               reduction="mean"))  # mean of nothing, as torch's mean
    strided = ops.masked_softmax_xent(student.t().contiguous().t()[::2], teacher[::2], table, game_id=game_id[::2],
                                      check=True)
    expected = ops.masked_softmax_xent(student[::2].contiguous(), teacher[::2].contiguous(), table,
                                       game_id=game_id[::2].contiguous())
    torch.testing.assert_close(strided, expected, rtol=0, atol=0)


@pytest.mark.parametrize("mask, error, match", [
    (np.ones((2, 18), bool), TypeError, r"check_action_masks: action_mask must be a torch.Tensor, got ndarray"),
    (torch.ones(2, 18, dtype=torch.uint8), TypeError, r"action_mask must be bool, got torch.uint8"),
    (torch.ones(18, dtype=torch.bool), ValueError, r"action_mask must be 2-D \[G, A\] with 1 <= A <= 32, got shape "
                                                   r"\[18\]"),
    (torch.ones(2, 33, dtype=torch.bool), ValueError, r"got shape \[2, 33\]"),
    (torch.ones(2, 18, dtype=torch.bool, device="meta"), ValueError, r"action_mask is on the meta device"),
    (torch.tensor([[True] * 18, [False] * 18]), ValueError, r"check_action_masks: row 1 of action_mask has no "
                                                            r"legal action \(all False\)"),
])
def test_check_action_masks_errors(mask, error, match):
    with pytest.raises(error, match=match):
        ops.check_action_masks(mask)


def test_check_action_masks_returns_a_valid_table(pong):
    table = torch.from_numpy(pong.action_masks.copy())
    assert ops.check_action_masks(table) is table


@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_op_checks_rows_by_default_on_the_cpu(requires_grad, reduction):
    """A row without a legal action or a game_id out of range used to give a silent NaN loss unless
    check=True. On the CPU the check costs nothing and is the default; check=False keeps the NaN."""
    student, teacher, table, game_id = op_inputs(rows=4)
    student = student.clone().requires_grad_(requires_grad)
    mask = table[game_id].clone()
    mask[2] = False
    with pytest.raises(ValueError, match=r"masked_softmax_xent: row 2 has no legal action: action_mask\[2\] is all "
                                         r"False"):
        ops.masked_softmax_xent(student, teacher, mask, reduction=reduction)
    bad_ids = game_id.clone()
    bad_ids[1] = 5
    with pytest.raises(IndexError, match=r"masked_softmax_xent: game_id\[1\] = 5 is out of range for an action_mask "
                                         r"table of 2 games"):
        ops.masked_softmax_xent(student, teacher, table, game_id=bad_ids, reduction=reduction)
    empty_game = table.clone()
    empty_game[1] = False
    with pytest.raises(ValueError, match=r"row 1 has no legal action: its game, game_id\[1\] = 1, has an all-False"):
        ops.masked_softmax_xent(student, teacher, empty_game, game_id=game_id, reduction=reduction)
    assert torch.isnan(ops.masked_softmax_xent(student, teacher, mask, reduction=reduction, check=False)).any()
    assert torch.isnan(ops.masked_softmax_xent(student, teacher, table, game_id=bad_ids, reduction=reduction,
                                               check=False)).any()


@pytest.mark.parametrize("name", ["student_logits", "teacher_q", "action_mask", "game_id"])
@pytest.mark.parametrize("layout", ["sparse_coo", "sparse_csr"])
def test_op_sparse_inputs_name_the_argument(name, layout):
    """A sparse input used to get the dispatcher's "Could not run ... with arguments from the 'SparseCPU'
    backend"."""
    args = dict(zip(("student_logits", "teacher_q", "action_mask", "game_id"), op_inputs()))
    if layout == "sparse_csr" and args[name].dim() != 2:
        pytest.skip("CSR tensors are 2-D")
    args[name] = args[name].to_sparse() if layout == "sparse_coo" else args[name].to_sparse_csr()
    with pytest.raises(TypeError, match=rf"masked_softmax_xent: {name} must be a dense \(strided\) tensor, got "
                                        rf"layout torch.{layout}"):
        ops.masked_softmax_xent(args["student_logits"], args["teacher_q"], args["action_mask"],
                                game_id=args["game_id"])


# -- checkpoints -------------------------------------------------------------------------------------------------
def _expert_checkpoint(path, **edits):
    from actormimic_fast.files.checkpoint import save_checkpoint
    from actormimic_fast.models.networks import build_network

    torch.manual_seed(0)
    state = {"online": build_network("nature", 6).state_dict()}
    meta = {"kind": "expert", "game": "pong", "actions": [0, 1, 3, 4, 11, 12], "architecture": "nature",
            "num_actions": 6}
    for key, value in edits.items():
        target, name = (meta, key[5:]) if key.startswith("meta_") else (state, key)
        if value is None:
            target.pop(name)
        else:
            target[name] = value
    save_checkpoint(path, state, meta)
    return path


@pytest.mark.parametrize("edits, match", [
    ({"online": None}, r"has no 'online'"),
    ({"online": [1, 2, 3]}, r"'online' is malformed \(expected weights, got list\)"),
    ({"meta_architecture": None}, r"its meta has no 'architecture'"),
    ({"meta_num_actions": None}, r"its meta has no 'num_actions'"),
    ({"meta_num_actions": 4}, r"'online' does not fit this run's NatureDQN"),      # a size mismatch names the file
])
def test_malformed_expert_checkpoints_name_the_file_and_the_key(tmp_path, edits, match):
    from actormimic_fast.agents.dqn import load_expert

    path = _expert_checkpoint(tmp_path / "bad.pt", **edits)
    with pytest.raises(ValueError, match=re.escape(repr(str(path))) + ".*" + match):
        load_expert(path)


def test_a_folder_is_not_a_checkpoint(tmp_path):
    from actormimic_fast.agents.dqn import load_expert

    with pytest.raises(ValueError, match=r"is a folder, not a checkpoint file .*checkpoint\.pt"):
        load_expert(tmp_path)


@pytest.mark.parametrize("drop", ["optimizer", "config", "target", "counters", "rng"])
def test_a_resumed_run_names_what_its_checkpoint_lacks(tmp_path, drop):
    from actormimic_fast.agents.dqn import DQNConfig, train_expert
    from actormimic_fast.files.checkpoint import load_checkpoint, save_checkpoint

    cfg = DQNConfig(game="pong", frames_per_game=200, learning_starts=10**6, test_epoch_frames=0, out=str(tmp_path),
                    device="cpu", progress=False, tensorboard=False)
    train_expert(cfg)
    payload = load_checkpoint(tmp_path / "checkpoint.pt")
    del payload[drop]
    meta = payload.pop("meta")
    payload.pop("format")
    save_checkpoint(tmp_path / "checkpoint.pt", payload, meta)
    with pytest.raises(ValueError, match=f"checkpoint '{tmp_path / 'checkpoint.pt'}' has no {drop!r}"):
        train_expert(cfg.replace(frames_per_game=400), resume=True)


def test_other_loaders_name_the_file_and_key(tmp_path):
    from actormimic_fast.agents.multitask_dqn import load_multitask_dqn
    from actormimic_fast.agents.transfer import init_from_amn
    from actormimic_fast.files.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "mdqn.pt", {"online": {}}, {"kind": "mdqn"})
    with pytest.raises(ValueError, match=r"mdqn\.pt'.*its meta has no 'games'"):
        load_multitask_dqn(tmp_path / "mdqn.pt")
    save_checkpoint(tmp_path / "amn.pt", {}, {"kind": "amn", "architecture": "nature", "num_actions": 18})
    with pytest.raises(ValueError, match=r"amn\.pt' has no 'online'"):
        init_from_amn(tmp_path / "amn.pt", [0, 1, 3, 4])


# -- training ----------------------------------------------------------------------------------------------------
TINY_RUN = dict(frames_per_game=1_600, replay_capacity=1_000, learning_starts=200, batch_size=8, test_epoch_frames=0,
                checkpoint_every=400, log_every=400, device="cpu", progress=False, tensorboard=False,
                torch_threads=1)


@pytest.mark.parametrize("trainer", ["expert", "experts together", "mdqn", "distill"])
def test_a_diverging_run_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path, trainer):
    """--lr inf: the first update makes every weight non-finite. The run must stop at the next progress row,
    before writing a checkpoint, and the one written before learning started must still be there, finite."""
    from actormimic_fast.agents.distill import DistillConfig, distill
    from actormimic_fast.agents.dqn import DQNConfig, train_expert, train_experts
    from actormimic_fast.agents.multitask_dqn import MultitaskDQNConfig, train_multitask_dqn
    from actormimic_fast.files.checkpoint import load_checkpoint, save_checkpoint
    from actormimic_fast.models.networks import build_network
    from actormimic_fast.run.loop import TrainingDiverged

    out = tmp_path / "run"
    if trainer == "expert":
        run, folder = lambda: train_expert(DQNConfig(game="pong", lr=math.inf, out=str(out), **TINY_RUN)), out
    elif trainer == "experts together":
        run = lambda: train_experts(DQNConfig(lr=math.inf, out=str(out), **TINY_RUN), ["pong", "breakout"])
        folder = out / "breakout"
    elif trainer == "mdqn":
        run = lambda: train_multitask_dqn(MultitaskDQNConfig(games="pong,breakout", lr=math.inf, out=str(out),
                                                             **TINY_RUN))
        folder = out
    else:
        torch.manual_seed(0)
        network = build_network("nature", 6)
        expert = save_checkpoint(tmp_path / "pong.pt", {"online": network.state_dict()},
                                 {"kind": "expert", "game": "pong", "actions": [0, 1, 3, 4, 11, 12],
                                  "architecture": "nature", "num_actions": 6})
        run = lambda: distill(DistillConfig(experts=str(expert), frames_per_game=1_600, replay_capacity=1_000,
                                            learning_starts=50, per_game=4, lr=math.inf, test_epoch_frames=0,
                                            checkpoint_every=100, log_every=400, out=str(out), device="cpu",
                                            progress=False, tensorboard=False, torch_threads=1))
        folder = out
    with pytest.raises(TrainingDiverged, match=r"training diverged at frame \d+ .*(nan|inf|not finite).*the last good checkpoint "
                                               r"is kept: .*checkpoint\.pt.*--lr"):
        run()
    payload = load_checkpoint(folder / "checkpoint.pt")
    assert all(torch.isfinite(t).all() for t in payload["online"].values())


# -- command line -------------------------------------------------------------------------------------------------
@pytest.fixture
def no_slow_setup(monkeypatch):
    """A user error must be reported before any env starts: building a pool fails the test."""
    from actormimic_fast.run import context

    def refuse(*args, **kwargs):
        raise AssertionError("the command started its envs before reporting the user error")

    monkeypatch.setattr(context, "MultiGameEnvPool", refuse)


def _cli_error(capsys, *argv) -> str:
    from actormimic_fast.cli import main

    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err, err
    return err.strip().splitlines()[-1]


@pytest.fixture
def pong_run(tmp_path_factory):
    """A finished train-expert run folder (pong) and a distill one, for the --resume cases."""
    from actormimic_fast.agents.dqn import DQNConfig, train_expert

    folder = tmp_path_factory.mktemp("pong_run")
    train_expert(DQNConfig(game="pong", frames_per_game=200, learning_starts=10**6, test_epoch_frames=0, out=str(folder),
                           device="cpu", progress=False, tensorboard=False))
    return folder


COMMANDS = {"train-expert": ["--game", "pong"], "train-multitask-dqn": ["--games", "pong,breakout"],
            "transfer": ["--game", "pong", "--init", "random"]}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_bad_device_is_one_line_naming_the_option(capsys, tmp_path, no_slow_setup, command):
    line = _cli_error(capsys, command, *COMMANDS[command], "--out", tmp_path, "--device", "foo")
    assert "--device" in line and "'foo'" in line


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_unwritable_out_is_one_line_naming_the_option(capsys, tmp_path, no_slow_setup, command):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    line = _cli_error(capsys, command, *COMMANDS[command], "--out", blocker / "run", "--device", "cpu")
    assert "--out" in line and "a_file" in line


def test_resuming_another_game_is_one_line(capsys, pong_run, no_slow_setup):
    line = _cli_error(capsys, "train-expert", "--game", "breakout", "--out", pong_run, "--resume", "--device", "cpu")
    assert "was made for game='pong', not game='breakout'" in line


def test_resuming_another_commands_run_folder_says_so(capsys, pong_run, no_slow_setup):
    line = _cli_error(capsys, "train-multitask-dqn", "--games", "pong,breakout", "--out", pong_run, "--resume")
    assert "is a checkpoint of a 'expert' run, not of this command's" in line


@pytest.mark.parametrize("argv, words", [
    (["--epsilon", "2"], ["--epsilon", "2"]),
    (["--episodes", "0"], ["--episodes"]),
    (["--envs", "0"], ["--envs"]),
    (["--device", "foo"], ["--device", "'foo'"]),
])
def test_evaluate_user_errors_are_one_line(capsys, pong_run, argv, words):
    line = _cli_error(capsys, "evaluate", pong_run / "checkpoint.pt", *argv)
    assert all(w in line for w in words), line


def test_evaluate_a_folder_says_where_the_checkpoint_is(capsys, pong_run):
    line = _cli_error(capsys, "evaluate", pong_run)
    assert "is a folder, not a checkpoint file" in line


# issue 23: the last command lines that ended in a traceback
def test_a_replay_too_small_for_the_env_rings_is_one_line(capsys, tmp_path, no_slow_setup):
    line = _cli_error(capsys, "train-expert", "--game", "pong", "--out", tmp_path, "--device", "cpu",
                      "--replay-capacity", 3, "--batch-size", 2)
    assert "replay_capacity must be >= 5" in line and "got 3" in line, line


def test_a_seed_out_of_range_is_one_line(capsys, tmp_path, no_slow_setup):
    line = _cli_error(capsys, "train-expert", "--game", "pong", "--out", tmp_path, "--device", "cpu",
                      "--seed", 2**64)
    assert "seed must be in [0, 9223372036854775807]" in line and "got 18446744073709551616" in line, line


def test_resuming_a_checkpoint_without_optimizer_state_is_one_line(capsys, pong_run, no_slow_setup):
    from actormimic_fast.files.checkpoint import load_checkpoint, save_checkpoint

    payload = load_checkpoint(pong_run / "checkpoint.pt")
    del payload["optimizer"]
    meta = payload.pop("meta")
    payload.pop("format")
    save_checkpoint(pong_run / "checkpoint.pt", payload, meta)
    line = _cli_error(capsys, "train-expert", "--game", "pong", "--out", pong_run, "--resume", "--device", "cpu")
    assert "--resume" in line and "checkpoint.pt' has no 'optimizer'" in line, line


def test_evaluate_record_into_a_file_is_refused_before_the_episode(capsys, pong_run, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    line = _cli_error(capsys, "evaluate", pong_run / "checkpoint.pt", "--record", blocker / "dir" / "x.gif")
    assert "--record" in line and "a_file" in line, line


def test_distill_an_expert_with_the_wrong_action_set_names_the_file(capsys, tmp_path, no_slow_setup):
    expert = _expert_checkpoint(tmp_path / "wrong.pt", meta_actions=[0, 1, 2, 3, 4, 5])
    line = _cli_error(capsys, "distill", "--experts", expert, "--out", tmp_path / "run", "--device", "cpu")
    assert "--experts" in line and "wrong.pt" in line and "[0, 1, 2, 3, 4, 5]" in line, line


def test_report_out_that_is_a_file_is_one_line(capsys, pong_run, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    line = _cli_error(capsys, "report", pong_run, "--out", blocker)
    assert "--out" in line and "a_file" in line, line
