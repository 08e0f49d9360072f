"""The acting helpers every trainer shares (run/acting.py): masked argmax, random legal actions,
epsilon-greedy, the epsilon schedule, and the actor's weight copy."""

import numpy as np
import pytest
import torch

from actormimic_fast import MultiGameEnvPool
from actormimic_fast.run.acting import (ActorWeights, epsilon_at, epsilon_greedy, masked_argmax,
                                        random_legal_actions)
from actormimic_fast.models.networks import build_network


def masks_with_3_to_18_legal_actions(seed=0) -> np.ndarray:
    """16 games, game i with 3 + i legal actions drawn at random from the 18."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((16, 18), bool)
    for g in range(16):
        masks[g, rng.choice(18, size=3 + g, replace=False)] = True
    return masks


def test_epsilon_schedule_hand_values():
    assert epsilon_at(0, 1.0, 0.1, 1_000_000) == 1.0
    assert epsilon_at(250_000, 1.0, 0.1, 1_000_000) == pytest.approx(0.775)
    assert epsilon_at(500_000, 1.0, 0.1, 1_000_000) == pytest.approx(0.55)
    assert epsilon_at(1_000_000, 1.0, 0.1, 1_000_000) == pytest.approx(0.1)
    assert epsilon_at(7_000_000, 1.0, 0.1, 1_000_000) == pytest.approx(0.1)
    assert epsilon_at(5, 1.0, 0.1, 0) == 0.1


def test_random_actions_are_legal_and_cover_every_legal_action_uniformly():
    masks = masks_with_3_to_18_legal_actions()
    rng = np.random.default_rng(1)
    game_ids = np.repeat(np.arange(16), 2_000)
    actions = random_legal_actions(rng, masks[game_ids])
    assert masks[game_ids, actions].all()
    for g in range(16):
        counts = np.bincount(actions[game_ids == g], minlength=18)
        assert set(np.flatnonzero(counts)) == set(np.flatnonzero(masks[g]))
        legal = counts[masks[g]]
        assert legal.min() > 0.6 * legal.mean()        # uniform: 2,000 / (3..18) draws each


def test_random_actions_of_an_all_legal_mask_are_the_generators_integers():
    """An expert's masks are all True: its random action is rng.integers(A) itself, the draw the expert
    trainer made before the shared helper existed (so single-env runs kept their exploration stream)."""
    masks = np.ones((5, 6), bool)
    assert (random_legal_actions(np.random.default_rng(3), masks)
            == np.random.default_rng(3).integers(6, size=5)).all()


def test_greedy_actions_never_pick_an_illegal_action_even_when_its_q_is_largest():
    masks = masks_with_3_to_18_legal_actions(seed=2)
    torch.manual_seed(0)
    game_ids = torch.arange(16).repeat(4)
    q = torch.randn(64, 18)
    q[~torch.from_numpy(masks)[game_ids]] = 1e9       # illegal actions look best
    actions = masked_argmax(q, torch.from_numpy(masks)[game_ids]).numpy()
    for row, g in enumerate(game_ids.tolist()):
        legal = np.flatnonzero(masks[g])
        assert actions[row] == legal[np.argmax(q[row, legal].numpy())]


def test_actions_are_always_legal_for_games_of_3_to_18_actions():
    games = ["skiing", "breakout", "pong", "space_invaders", "boxing"]
    with MultiGameEnvPool(games, envs_per_game=2, seed=0) as pool:
        masks = pool.env_action_masks.copy()
        sizes = dict(zip(games, pool.action_masks.sum(1).tolist()))
    assert sizes == {"skiing": 3, "breakout": 4, "pong": 6, "space_invaders": 6, "boxing": 18}
    rng = np.random.default_rng(0)
    seen = np.zeros_like(masks)
    for epsilon in (0.0, 0.5, 1.0):
        for _ in range(200):
            scores = torch.randn(len(masks), 18)
            scores[~torch.from_numpy(masks)] += 1e9          # illegal outputs dominate: the mask must win
            actions = epsilon_greedy(rng, epsilon, masks, lambda: masked_argmax(scores, torch.from_numpy(masks)))
            assert masks[np.arange(len(masks)), actions].all()
            seen[np.arange(len(masks)), actions] = True
    assert (seen == masks).all()                         # every legal action is drawn, nothing else


def test_epsilon_greedy_skips_the_forward_pass_when_every_row_explores():
    calls = []
    masks = np.ones((4, 3), bool)
    epsilon_greedy(np.random.default_rng(0), 1.0, masks, lambda: calls.append(1))
    assert not calls
    actions = epsilon_greedy(np.random.default_rng(0), 0.0, masks, lambda: torch.tensor([2, 1, 0, 2]))
    assert actions.tolist() == [2, 1, 0, 2]


def test_actor_weights_are_a_copy_refreshed_every_few_updates():
    torch.manual_seed(0)
    online = build_network("nature", 4)
    weights = ActorWeights(online, every=3)
    with torch.no_grad():
        online.head.bias.add_(1.0)
    with weights.reading() as network:
        assert network is not online and not torch.equal(network.head.bias, online.head.bias)
    weights.refresh(updates=2)                  # not a multiple of 3: no copy
    assert not torch.equal(weights.network.head.bias, online.head.bias)
    weights.refresh(updates=3)
    for a, b in zip(weights.network.state_dict().values(), online.state_dict().values()):
        assert torch.equal(a, b)
    assert not any(p.requires_grad for p in weights.network.parameters())


def test_the_prefix_shortcut_draws_what_random_legal_actions_draws():
    masks = np.zeros((7, 18), bool)
    masks[:, :5] = True                          # an expert of 5 actions padded to 18 columns
    for seed in range(3):
        full = epsilon_greedy(np.random.default_rng(seed), 1.0, masks, None)
        short = epsilon_greedy(np.random.default_rng(seed), 1.0, masks, None, num_legal=5)
        assert (full == short).all()
