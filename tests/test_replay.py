"""ReplayMemory (C++) against ReplayReference (numpy), hand-computed transitions, a real pool, errors."""

import io
import threading
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from actormimic_fast import MultiGameEnvPool, ReplayMemory, TransitionBatch
from actormimic_fast.reference.replay_reference import FIELDS, ReplayReference


# -- helpers ---------------------------------------------------------------------------------------
def frame_of(env: int, t: int) -> np.ndarray:
    """A frame that names its (env, t): every pixel is the same byte, the two bytes of row 0 differ."""
    f = np.full((84, 84), (7 * env + 3 * t + 1) % 251 + 1, dtype=np.uint8)
    f[0, 0], f[0, 1] = env, t % 256
    return f


class Stream:
    """Random per-env episodes fed to several memories at once; envs step in random subsets (async)."""

    def __init__(self, num_envs, seed, p_step=0.8, p_term=0.08, p_trunc=0.05, p_life=0.1, p_cut=0.02):
        self.rng = np.random.default_rng(seed)
        self.num_envs = num_envs
        self.p = (p_step, p_term, p_trunc, p_life, p_cut)
        self.done = np.ones(num_envs, bool)   # every env starts with a reset
        self.t = np.zeros(num_envs, np.int64)

    def step(self, *memories):
        p_step, p_term, p_trunc, p_life, p_cut = self.p
        rng = self.rng
        envs = np.flatnonzero(rng.random(self.num_envs) < p_step).astype(np.int32)
        rng.shuffle(envs)
        n = len(envs)
        start = self.done[envs] | (rng.random(n) < p_cut)       # p_cut: a reset with no done before it
        term = (rng.random(n) < p_term) & ~start
        trunc = (rng.random(n) < p_trunc) & ~start & ~term
        life = (rng.random(n) < p_life) & ~start
        frames = np.stack([frame_of(e, t) for e, t in zip(envs, self.t[envs])]) if n else np.zeros((0, 84, 84), np.uint8)
        actions = rng.integers(0, 18, n)
        rewards = np.where(start, 0, rng.integers(-3, 4, n) * 0.75).astype(np.float32)
        for m in memories:
            m.add(envs, frames, actions, rewards, term, trunc, life, start)
        self.done[envs] = term | trunc
        self.t[envs] += 1

    def run(self, steps, *memories):
        for _ in range(steps):
            self.step(*memories)


def as_numpy(batch: TransitionBatch) -> dict:
    return {f: getattr(batch, f).numpy() for f in FIELDS}


def assert_same(got: dict, expected: dict):
    for f in FIELDS:
        np.testing.assert_array_equal(got[f], expected[f], err_msg=f"field {f}")


def assert_matches_reference(memory: ReplayMemory, reference: ReplayReference, reward_clip=None):
    for g in range(memory.num_games):
        envs, idx = memory.valid_indices(g)
        ref_envs, ref_idx = reference.valid_indices(g)
        np.testing.assert_array_equal(envs, ref_envs)
        np.testing.assert_array_equal(idx, ref_idx)
        assert memory.num_transitions(g) == len(ref_idx)   # the writer's incremental count is exact
        if len(idx):
            assert_same(as_numpy(memory.gather(envs, idx, reward_clip=reward_clip)),
                        reference.gather(ref_envs, ref_idx, reward_clip=reward_clip))


def single_env_memory(records, capacity=100, **kwargs):
    """A one-env memory (and reference) fed records (frame_value, action, reward, flags-string)."""
    memory = ReplayMemory(capacity, [0], **kwargs)
    reference = ReplayReference(capacity, [0], **{k: v for k, v in kwargs.items() if k not in ("num_threads", "guard")})
    for value, action, reward, flags in records:
        args = ([0], np.full((1, 84, 84), value, np.uint8), [action], [reward], ["T" in flags], ["X" in flags],
                ["L" in flags], ["S" in flags])
        memory.add(*args)
        reference.add(*args)
    return memory, reference


# -- exact agreement with the reference ------------------------------------------------------------
@pytest.mark.parametrize("n_step", [1, 3])
@pytest.mark.parametrize("life_loss_terminal", [False, True])
def test_matches_reference_many_games_envs_and_wraparound(n_step, life_loss_terminal):
    ids = [0, 0, 1, 1, 1, 2]
    kw = dict(stack=4, n_step=n_step, gamma=0.9, life_loss_terminal=life_loss_terminal)
    memory = ReplayMemory([40, 61, 13], ids, **kw)
    reference = ReplayReference([40, 61, 13], ids, **kw)
    stream = Stream(len(ids), seed=n_step + 10 * life_loss_terminal)
    for _ in range(6):              # checked while filling, at the first wrap and after many laps
        stream.run(40, memory, reference)
        assert_matches_reference(memory, reference)
    assert_matches_reference(memory, reference, reward_clip=1.0)
    assert all(memory.env_written(e) > memory._m.env_capacity(e) for e in range(len(ids)))  # wrapped


@settings(max_examples=40, deadline=None)
@given(games=st.integers(1, 3), envs_per_game=st.integers(1, 3), share=st.integers(0, 12), stack=st.integers(1, 4),
       n_step=st.integers(1, 4), llt=st.booleans(), steps=st.integers(0, 60), seed=st.integers(0, 2**16),
       p_end=st.sampled_from([0.0, 0.1, 0.4]), p_cut=st.sampled_from([0.0, 0.1]))
def test_matches_reference_property(games, envs_per_game, share, stack, n_step, llt, steps, seed, p_end, p_cut):
    ids = [g for g in range(games) for _ in range(envs_per_game)]
    capacity = [envs_per_game * (stack + n_step + share) + g for g in range(games)]  # uneven splits too
    kw = dict(stack=stack, n_step=n_step, gamma=0.95, life_loss_terminal=llt)
    memory = ReplayMemory(capacity, ids, guard=seed % 3, **kw)
    reference = ReplayReference(capacity, ids, **kw)
    Stream(len(ids), seed, p_term=p_end, p_trunc=p_end / 2, p_cut=p_cut).run(steps, memory, reference)
    assert_matches_reference(memory, reference)


def test_sample_rows_are_the_gathered_transitions_and_match_reference():
    ids = [0, 0, 1]
    memory = ReplayMemory([60, 30], ids, n_step=2, gamma=0.8)
    reference = ReplayReference([60, 30], ids, n_step=2, gamma=0.8)
    Stream(3, seed=5).run(120, memory, reference)
    batch = as_numpy(memory.sample(64, seed=11, reward_clip=1.0))
    assert_same(batch, reference.gather(batch["env_id"], batch["index"], reward_clip=1.0))


# -- hand-computed transitions (expected values derived here, not by either implementation) ----------
def test_n_step_returns_truncation_termination_and_life_loss_by_hand():
    g = 0.5
    # index:  0 start, 1, 2 (life loss), 3 truncated | 4 start, 5, 6 terminated | 7 start, 8
    records = [(10, 0, 0.0, "S"), (11, 1, 1.0, ""), (12, 2, 2.0, "L"), (13, 3, 4.0, "X"),
               (20, 4, 0.0, "S"), (21, 5, 8.0, ""), (22, 6, 16.0, "T"),
               (30, 7, 0.0, "S"), (31, 8, 32.0, "")]
    memory, reference = single_env_memory(records, n_step=3, gamma=g)
    envs, idx = memory.valid_indices(0)
    # 3 and 6 end their episodes; 7 and 8 wait for records 9 and 10 (n = 3, no episode end yet).
    np.testing.assert_array_equal(idx, [0, 1, 2, 4, 5])
    b = as_numpy(memory.gather(envs, idx))
    np.testing.assert_array_equal(b["action"], [1, 2, 3, 5, 6])
    np.testing.assert_allclose(b["reward"], [1 + g * 2 + g * g * 4, 2 + g * 4, 4, 8 + g * 16, 16])
    # 0: three rewards -> g^3 (the life loss at 2 does not end it); 1, 2: the truncation at 3 ends them,
    # bootstrapping with g^2 and g^1; 4, 5: the termination at 6 -> 0.
    np.testing.assert_allclose(b["discount"], [g ** 3, g ** 2, g, 0, 0])
    np.testing.assert_array_equal(b["done"], [False, False, False, True, True])
    np.testing.assert_array_equal(b["next_obs"][:, -1, 0, 0], [13, 13, 13, 22, 22])
    assert_matches_reference(memory, reference)


def test_n_step_pending_until_enough_records():
    records = [(10, 0, 0.0, "S"), (11, 1, 1.0, ""), (12, 2, 1.0, "")]
    memory, _ = single_env_memory(records, n_step=3)
    assert memory.num_transitions() == 0
    memory.add([0], np.full((1, 84, 84), 13, np.uint8), [3], [1.0], [False], [False], [False], [False])
    np.testing.assert_array_equal(memory.valid_indices(0)[1], [0])


def test_life_loss_terminal_ends_return_but_not_the_stack():
    records = [(10 + t, t, 0.0 if t == 0 else 1.0, "S" if t == 0 else "L" if t == 2 else "") for t in range(7)]
    memory, reference = single_env_memory(records, n_step=3, gamma=0.5, life_loss_terminal=True)
    b = as_numpy(memory.gather([0, 0, 0], [0, 1, 3]))
    np.testing.assert_allclose(b["reward"], [1.5, 1.0, 1.75])
    np.testing.assert_allclose(b["discount"], [0.0, 0.0, 0.125])      # 0 and 1 end at the life loss at 2
    np.testing.assert_array_equal(b["done"], [True, True, False])
    np.testing.assert_array_equal(b["obs"][2, :, 0, 0], [10, 11, 12, 13])  # the stack goes across it
    assert_matches_reference(memory, reference)


def test_reset_without_done_cuts_the_return_as_a_truncation():
    records = [(10, 0, 0.0, "S"), (11, 1, 1.0, ""), (12, 2, 1.0, ""), (20, 3, 0.0, "S"), (21, 4, 1.0, "")]
    memory, reference = single_env_memory(records, n_step=3, gamma=0.5)
    envs, idx = memory.valid_indices(0)
    np.testing.assert_array_equal(idx, [0, 1])          # 2 is followed by a reset: no transition
    b = as_numpy(memory.gather(envs, idx))
    np.testing.assert_allclose(b["discount"], [0.25, 0.5])
    np.testing.assert_array_equal(b["next_obs"][:, -1, 0, 0], [12, 12])
    assert_matches_reference(memory, reference)


def test_stacks_are_zero_before_the_episode_start_like_the_pool():
    records = [(10, 0, 0.0, "S"), (11, 1, 0.0, ""), (12, 1, 0.0, "T"), (20, 0, 0.0, "S"), (21, 1, 0.0, "")]
    memory, _ = single_env_memory(records, stack=4)
    b = as_numpy(memory.gather([0, 0, 0], [0, 1, 3]))
    np.testing.assert_array_equal(b["obs"][:, :, 5, 5], [[0, 0, 0, 10], [0, 0, 10, 11], [0, 0, 0, 20]])
    np.testing.assert_array_equal(b["next_obs"][:, :, 5, 5], [[0, 0, 10, 11], [0, 10, 11, 12], [0, 0, 20, 21]])


def test_overwritten_history_is_never_sampled():
    # capacity 6 (guard 0): after 9 continuing records, indices 3..8 are kept; 3..5 need frames 0..2.
    records = [(10 + t, 0, 1.0, "S" if t == 0 else "") for t in range(9)]
    memory, reference = single_env_memory(records, capacity=6, guard=0)
    np.testing.assert_array_equal(memory.valid_indices(0)[1], [6, 7])
    with pytest.raises(IndexError, match="needs frames of its stack that were overwritten"):
        memory.gather([0], [5])
    with pytest.raises(IndexError, match=r"was overwritten \(env 0 keeps indices \[3, 9\)\)"):
        memory.gather([0], [2])
    assert_matches_reference(memory, reference)


def test_envs_of_one_game_never_mix_in_a_stack():
    ids = [0, 0, 0, 0]
    memory = ReplayMemory(400, ids, stack=4)
    stream = Stream(4, seed=3, p_step=0.6, p_term=0.0, p_trunc=0.0, p_cut=0.0)
    stream.run(60, memory)
    b = as_numpy(memory.sample(64, seed=1))
    for obs, env, t in zip(b["obs"], b["env_id"], b["index"]):
        for k in range(4):
            position = t - 3 + k
            if position >= 0:   # one episode per env: zeros only before the env's first frame
                np.testing.assert_array_equal(obs[k], frame_of(env, position))


# -- sampling --------------------------------------------------------------------------------------
def filled(num_threads=2, seed=0, **kwargs):
    memory = ReplayMemory([80, 50], [0, 0, 1], num_threads=num_threads, seed=seed, **kwargs)
    Stream(3, seed=42).run(90, memory)
    return memory


def test_sample_is_deterministic_per_seed_and_independent_of_threads():
    a, b = filled(num_threads=1), filled(num_threads=3)
    assert_same(as_numpy(a.sample(64, seed=7)), as_numpy(b.sample(64, seed=7)))
    assert_same(as_numpy(a.sample(per_game=9, seed=8)), as_numpy(b.sample(per_game=9, seed=8)))
    # Without a seed, calls follow the memory's seed sequence.
    c, d = filled(seed=5), filled(seed=5)
    assert_same(as_numpy(c.sample(64)), as_numpy(d.sample(64)))
    assert not np.array_equal(c.sample(64).index.numpy(), c.sample(64).index.numpy())


def test_sample_is_uniform_over_valid_transitions():
    memory = ReplayMemory([24, 40], [0, 0, 1], num_threads=2)
    Stream(3, seed=8, p_term=0.15).run(40, memory)
    valid = {(int(e), int(t)) for g in range(2) for e, t in zip(*memory.valid_indices(g))}
    counts = dict.fromkeys(valid, 0)
    batch = len(valid)   # as many rows as there are transitions (asking for more is refused)
    out = memory.empty_batch(batch)
    draws = 0
    for seed in range(2000):
        memory.sample(batch, seed=seed, out=out)
        for e, t in zip(out.env_id.tolist(), out.index.tolist()):
            counts[(e, t)] += 1          # KeyError if an invalid transition were drawn
        draws += batch
    expected = draws / len(valid)
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    dof = len(valid) - 1
    assert chi2 < dof + 5 * np.sqrt(2 * dof), (chi2, dof)   # about 5 sigma


def test_per_game_rows_are_grouped_and_games_can_be_chosen():
    memory = filled()
    b = memory.sample(per_game=8, seed=2)
    np.testing.assert_array_equal(b.game_id.numpy(), [0] * 8 + [1] * 8)
    b = memory.sample(per_game=5, games=[1, 0], seed=2)
    np.testing.assert_array_equal(b.game_id.numpy(), [1] * 5 + [0] * 5)
    assert set(memory.sample(32, games=1, seed=3).game_id.tolist()) == {1}


def test_uniform_mode_weights_games_by_their_transitions():
    memory = filled()
    share = memory.num_transitions(0) / memory.num_transitions()
    game = np.concatenate([memory.sample(64, seed=s).game_id.numpy() for s in range(400)])
    assert abs((game == 0).mean() - share) < 0.02


def test_sample_into_preallocated_batch():
    memory = filled()
    out = memory.empty_batch(32)
    b = memory.sample(32, seed=1, out=out)
    assert b is out and out.obs.data_ptr() == b.obs.data_ptr()
    assert_same(as_numpy(out), as_numpy(memory.gather(out.env_id.numpy(), out.index.numpy())))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory needs CUDA")
def test_pinned_batch_and_transfer():
    memory = filled()
    out = memory.empty_batch(16, pin_memory=True)
    memory.sample(16, seed=1, out=out)
    assert out.obs.is_pinned()
    torch.testing.assert_close(out.to("cuda", non_blocking=True).obs.cpu(), out.obs)


# -- a real pool -----------------------------------------------------------------------------------
@pytest.mark.parametrize("n_step", [1, 3])
def test_pool_steps_rebuild_the_pools_own_stacks(n_step):
    """Feed MultiGameEnvPool steps (sync, then async) and compare sampled obs with the pool's own obs."""
    pool = MultiGameEnvPool(["pong", "breakout"], envs_per_game=2, num_threads=2, batch_size=2,
                            max_episode_frames=160, seed=n_step)
    memory = ReplayMemory.for_pool(pool, capacity=120, n_step=n_step, gamma=0.9)  # 60 per env: wraps
    reference = ReplayReference(120, pool.game_ids, n_step=n_step, gamma=0.9)
    seen = {}   # (env, index) -> the pool's stacked obs of that record
    legal = [pool.legal_actions(g) for g in range(pool.num_games)]
    rng = np.random.default_rng(0)
    sent = np.zeros(pool.num_envs, np.int64)   # the action last sent to each env

    def record(out, actions):
        memory.add_step(out, actions)
        reference.add(out.env_id, out.obs[:, -1], actions, out.reward, out.terminated, out.truncated,
                      out.life_loss, out.episode_start)
        for i, e in enumerate(out.env_id):
            seen[(int(e), memory.env_written(int(e)) - 1)] = out.obs[i].copy()

    record(pool.reset(), np.zeros(pool.num_envs, np.int64))
    for _ in range(100):
        actions = np.array([rng.choice(legal[g]) for g in pool.game_ids])
        record(pool.step(actions), actions)
    pool.async_reset()          # resets every env mid-episode: episode starts without a done
    out = pool.recv()
    record(out, np.zeros(len(out.env_id), np.int64))
    for _ in range(200):
        actions = np.array([rng.choice(legal[pool.game_ids[e]]) for e in out.env_id])
        sent[out.env_id] = actions
        pool.send(actions, out.env_id)
        out = pool.recv()       # may return other envs than the ones just sent to
        record(out, sent[out.env_id])
    pool.close()

    assert_matches_reference(memory, reference)
    assert memory.num_records() == 120 * 2                # every ring wrapped
    ends = 0
    for g in range(pool.num_games):
        envs, idx = memory.valid_indices(g)
        b = as_numpy(memory.gather(envs, idx))
        for i, (e, t) in enumerate(zip(envs, idx)):
            end, _ = reference.walk(int(e), int(t))
            np.testing.assert_array_equal(b["obs"][i], seen[(e, t)])
            np.testing.assert_array_equal(b["next_obs"][i], seen[(e, end)])
            slot = reference._slot(int(e), end)
            ends += bool(reference.terminated[e, slot] or reference.truncated[e, slot])
    assert ends > 0                                       # some returns end at an episode end


# -- sizes and checkpoints -------------------------------------------------------------------------
def test_bytes_per_transition_at_paper_scale():
    memory = ReplayMemory(100_000, [0] * 4)   # allocated, not touched
    assert memory.bytes_per_transition <= 7_100, memory.bytes_per_transition
    assert memory.nbytes >= 100_000 * 84 * 84


def test_state_dict_round_trip_through_torch_save():
    memory = filled(n_step=3)
    state = memory.state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    restored = ReplayMemory([80, 50], [0, 0, 1], n_step=3)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    for g in range(2):
        for a, b in zip(memory.valid_indices(g), restored.valid_indices(g)):
            np.testing.assert_array_equal(a, b)
        assert memory.num_transitions(g) == restored.num_transitions(g)
    assert_same(as_numpy(memory.sample(64, seed=3)), as_numpy(restored.sample(64, seed=3)))
    assert_same(as_numpy(memory.sample(64)), as_numpy(restored.sample(64)))   # seed sequence restored
    # Both go on identically.
    Stream(3, seed=9).run(30, memory, restored)
    assert_same(as_numpy(memory.sample(64, seed=4)), as_numpy(restored.sample(64, seed=4)))


def test_state_dict_loads_into_a_memory_with_other_n_step():
    three, one = ReplayMemory([80, 50], [0, 0, 1], n_step=3), ReplayMemory([80, 50], [0, 0, 1], n_step=1)
    Stream(3, seed=4).run(90, three, one)
    loaded = ReplayMemory([80, 50], [0, 0, 1], n_step=1)
    loaded.load_state_dict(three.state_dict())
    for g in range(2):
        for a, b in zip(one.valid_indices(g), loaded.valid_indices(g)):
            np.testing.assert_array_equal(a, b)
        assert loaded.num_transitions(g) == one.num_transitions(g)
    assert_same(as_numpy(one.sample(64, seed=1)), as_numpy(loaded.sample(64, seed=1)))


# -- errors ----------------------------------------------------------------------------------------
def test_constructor_errors():
    with pytest.raises(ValueError, match=r"capacity of game 0 is 10; with 2 envs it must be >= 12"):
        ReplayMemory(10, [0, 0], stack=4, n_step=2)
    with pytest.raises(ValueError, match="game 1 has no env"):
        ReplayMemory(100, [0, 2])
    with pytest.raises(ValueError, match=r"stack must be in \[1, 64\], got 0"):
        ReplayMemory(100, [0], stack=0)
    with pytest.raises(ValueError, match=r"n_step must be in \[1, 1000\], got 0"):
        ReplayMemory(100, [0], n_step=0)
    with pytest.raises(ValueError, match="gamma must be a number in"):
        ReplayMemory(100, [0], gamma=1.5)
    with pytest.raises(TypeError, match="env_game_ids must be a non-empty 1-D integer array"):
        ReplayMemory(100, [])
    with pytest.raises(ValueError, match="env_game_ids must be >= 0, got -1"):
        ReplayMemory(100, [-1])
    with pytest.raises(ValueError, match=r"capacity must have one entry per game \(2\), got 1"):
        ReplayMemory([100], [0, 1])
    with pytest.raises(ValueError, match=r"capacity must be in \[1, 1099511627776\], got 0"):
        ReplayMemory(0, [0])


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(num_threads=0), ValueError, r"num_threads must be in \[1, 1024\], got 0"),
    (dict(guard=-1), ValueError, r"guard must be in \[0, 1048576\], got -1"),
    (dict(seed=-1), ValueError, r"seed must be in \[0, 18446744073709551615\], got -1"),
    (dict(n_step=1.5), TypeError, "n_step must be an int, got 1.5"),
])
def test_constructor_argument_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        ReplayMemory(100, [0], **kwargs)


def test_for_pool_uses_the_pools_envs_and_checks_stack():
    pool = MultiGameEnvPool(["pong", "breakout"], envs_per_game=2, num_threads=1, stack=3)
    memory = ReplayMemory.for_pool(pool, capacity=[40, 60])
    assert memory.stack == 3 and memory.num_envs == 4
    np.testing.assert_array_equal(memory.env_game_ids, pool.game_ids)
    with pytest.raises(ValueError, match="stack=4 differs from the pool's stack 3"):
        ReplayMemory.for_pool(pool, capacity=100, stack=4)
    pool.close()


def add_args(n=1, **override):
    args = dict(env_ids=np.zeros(n, np.int32), frames=np.zeros((n, 84, 84), np.uint8), actions=np.zeros(n, np.int64),
                rewards=np.zeros(n, np.float32), terminated=np.zeros(n, bool), truncated=np.zeros(n, bool),
                life_loss=np.zeros(n, bool), episode_start=np.ones(n, bool))
    args.update(override)
    return args


def test_add_errors():
    memory = ReplayMemory(100, [0, 0])
    with pytest.raises(IndexError, match=r"env_ids: env id 2 is out of range \[0, 2\)"):
        memory.add(**add_args(env_ids=np.array([2])))
    with pytest.raises(IndexError, match=r"env id -1 is out of range"):
        memory.add(**add_args(env_ids=np.array([-1])))
    with pytest.raises(TypeError, match="env_ids must be an integer array, got dtype float64"):
        memory.add(**add_args(env_ids=np.array([0.0])))
    with pytest.raises(TypeError, match="frames must have dtype uint8, got float32"):
        memory.add(**add_args(frames=np.zeros((1, 84, 84), np.float32)))
    with pytest.raises(ValueError, match=r"frames must have shape \(1, 84, 84\), got \(1, 84, 83\)"):
        memory.add(**add_args(frames=np.zeros((1, 84, 83), np.uint8)))
    with pytest.raises(TypeError, match="actions must be an integer array, got dtype float64"):
        memory.add(**add_args(actions=np.zeros(1)))
    with pytest.raises(ValueError, match=r"actions\[0\] = -1 is not in \[0, 2\^31\)"):
        memory.add(**add_args(actions=np.array([-1])))
    with pytest.raises(TypeError, match="rewards must be a float or integer array, got dtype bool"):
        memory.add(**add_args(rewards=np.zeros(1, bool)))
    with pytest.raises(TypeError, match="terminated must be a bool array, got dtype int64"):
        memory.add(**add_args(terminated=np.zeros(1, np.int64)))
    with pytest.raises(ValueError, match=r"episode_start must have shape \(1,\), got \(2,\)"):
        memory.add(**add_args(episode_start=np.ones(2, bool)))
    assert memory.env_written(0) == 0   # nothing was stored by a failed call
    # A strided, non-contiguous frames view is accepted and read in place.
    stacked = np.arange(2 * 4 * 84 * 84, dtype=np.int64).astype(np.uint8).reshape(2, 4, 84, 84)
    memory.add(**add_args(2, env_ids=np.array([0, 1]), frames=stacked[:, -1]))
    memory.add(**add_args(2, env_ids=np.array([0, 1]), frames=stacked[:, -1], episode_start=np.zeros(2, bool)))
    np.testing.assert_array_equal(memory.gather([1], [0]).obs[0, -1].numpy(), stacked[1, -1])


def test_sample_errors():
    memory = ReplayMemory([100, 100], [0, 1])
    with pytest.raises(ValueError, match=r"game 0 has no transitions to sample yet \(it holds 0 records\)"):
        memory.sample(1)
    Stream(2, seed=1, p_step=1.0, p_term=0, p_trunc=0, p_cut=0).run(6, memory)  # 5 transitions per game
    with pytest.raises(ValueError, match=r"batch_size = 11 is more than the 10 transitions"):
        memory.sample(11)
    with pytest.raises(ValueError, match=r"per_game = 6 is more than the 5 transitions game 0 holds"):
        memory.sample(per_game=6)
    with pytest.raises(ValueError, match="give exactly one of batch_size and per_game"):
        memory.sample(4, per_game=2)
    with pytest.raises(ValueError, match="give exactly one of batch_size and per_game"):
        memory.sample()
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        memory.sample(0)
    with pytest.raises(ValueError, match="per_game must be >= 1, got 0"):
        memory.sample(per_game=0)
    with pytest.raises(ValueError, match=r"seed must be in \[0, 18446744073709551615\], got -2"):
        memory.sample(1, seed=-2)
    with pytest.raises(IndexError, match=r"games\[0\] = 2 is out of range \[0, 2\)"):
        memory.sample(1, games=[2])
    with pytest.raises(ValueError, match="game 1 is requested twice"):
        memory.sample(1, games=[1, 1])
    with pytest.raises(ValueError, match="reward_clip must be None or a number > 0, got 0"):
        memory.sample(1, reward_clip=0)
    with pytest.raises(ValueError, match="out holds 4 rows, this call writes 2"):
        memory.sample(2, out=memory.empty_batch(4))
    with pytest.raises(TypeError, match="out must be a TransitionBatch"):
        memory.sample(2, out={})
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="pin_memory=True needs a CUDA device"):
            memory.empty_batch(2, pin_memory=True)
    # The raw extension checks output tensors too.
    out = memory.empty_batch(2)
    with pytest.raises(TypeError, match="out.reward must have dtype Float, got Double"):
        memory._m.sample_into([0], 0, 2, 0, None, out.obs, out.next_obs, out.action, out.reward.double(),
                              out.discount, out.done, out.game_id, out.env_id, out.index)


def test_gather_errors():
    memory, _ = single_env_memory([(10, 0, 0.0, "S"), (11, 1, 1.0, ""), (12, 1, 1.0, "T")])
    with pytest.raises(IndexError, match=r"\(env 0, index 3\) is not written yet \(env 0 has 3 records\)"):
        memory.gather([0], [3])
    with pytest.raises(IndexError, match=r"\(env 0, index 2\) ends its episode"):
        memory.gather([0], [2])
    with pytest.raises(IndexError, match=r"\(env 0, index -1\) has a negative index"):
        memory.gather([0], [-1])
    with pytest.raises(IndexError, match=r"env id 1 is out of range \[0, 1\)"):
        memory.gather([1], [0])
    memory2, _ = single_env_memory([(10, 0, 0.0, "S"), (11, 1, 1.0, "")], n_step=3)
    with pytest.raises(IndexError, match="has no complete n-step transition yet"):
        memory2.gather([0], [0])


def test_state_dict_errors():
    memory = filled()
    state = memory.state_dict()
    with pytest.raises(ValueError, match=r"state capacity \(80, 50\) differs from this memory's \(80, 51\)"):
        ReplayMemory([80, 51], [0, 0, 1]).load_state_dict(state)
    with pytest.raises(ValueError, match=r"state env_game_ids \[0, 0, 1\] differ"):
        ReplayMemory([80, 50], [0, 1, 1]).load_state_dict(state)
    with pytest.raises(ValueError, match="state stack 4 differs from this memory's 2"):
        ReplayMemory([80, 50], [0, 0, 1], stack=2).load_state_dict(state)
    with pytest.raises(ValueError, match="not a ReplayMemory state_dict"):
        memory.load_state_dict({"frames": state["frames"]})
    bad = dict(state, frames=state["frames"][1:])
    with pytest.raises(ValueError, match=r"state\['frames'\] must have shape"):
        ReplayMemory([80, 50], [0, 0, 1]).load_state_dict(bad)


def test_two_concurrent_writers_are_refused():
    memory = ReplayMemory(4096, [0] * 8, guard=0)
    big = add_args(512, env_ids=np.arange(512, dtype=np.int32) % 8)
    errors, stop = [], threading.Event()

    def writer():
        while not stop.is_set():
            memory.add(**big)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not errors and time.monotonic() < deadline:
            try:
                memory.add(**add_args(1))
            except RuntimeError as e:
                errors.append(e)
    finally:
        stop.set()
        thread.join()
    assert errors and "the memory has a single writer" in str(errors[0])
