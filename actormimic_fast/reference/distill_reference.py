"""A plain Actor-Mimic distillation loop, the benchmark peer of agents/distill.py (and its loss reference).

What one writes today without this package: gymnasium's AsyncVectorEnv of the reference Atari wrappers (one
subprocess per game, one env each, stepped in lockstep as in the authors' code), a numpy replay per game
that stores every state's 4-frame stack, one small expert forward pass per game, the loss in eager PyTorch
(masked log_softmax / softmax), everything in one Python thread, one step after another. Same settings as
the trainer: the AMN acts epsilon-greedily over each game's legal actions, per_game rows of every game
per update, one update per `update_every` steps from step `learning_starts` on, Adam.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
import torch

from ..models.networks import build_network
from ..models.optimizers import fast_optimizer_options
from .atari_reference import make_reference_env
from .masked_softmax_xent import masked_softmax_xent

NUM_ACTIONS = 18


def reference_actor_mimic_loss(student_logits: torch.Tensor, teacher_q: torch.Tensor, row_masks: torch.Tensor,
                               tau: float = 1.0, reduction: str = "sum",
                               predicted_features: torch.Tensor | None = None,
                               expert_features: torch.Tensor | None = None, beta: float = 0.0) -> torch.Tensor:
    """Eq. 6 written plainly: the op's plain reference (reference/masked_softmax_xent.py) for L_policy, plus
    beta * ||predicted - expert||^2, summed or averaged over rows. row_masks: bool [B, 18]."""
    per_row = masked_softmax_xent(student_logits, teacher_q, row_masks, tau)
    if predicted_features is not None and beta:
        per_row = per_row + beta * (predicted_features - expert_features).square().sum(1)
    return per_row.sum() if reduction == "sum" else per_row.mean()


def load_reference_expert(path: str, device: str) -> tuple[torch.nn.Module, dict]:
    """An expert checkpoint read plainly: the weights into a fresh network of its architecture."""
    payload = torch.load(path, map_location=device, weights_only=True)
    meta = payload["meta"]
    network = build_network(meta["architecture"], meta["num_actions"]).to(device)
    network.load_state_dict(payload["online"])
    return network.eval(), meta


class NumpyStateReplay:
    """One game's states (4-frame stacks, uint8) in a preallocated ring."""

    def __init__(self, capacity: int, stack: int = 4):
        self.obs = np.zeros((capacity, stack, 84, 84), np.uint8)
        self.capacity, self.pos, self.size = capacity, 0, 0

    def add(self, obs: np.ndarray) -> None:
        self.obs[self.pos] = obs
        self.pos, self.size = (self.pos + 1) % self.capacity, min(self.size + 1, self.capacity)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.obs[rng.integers(0, self.size, n)]


def distill_reference(expert_paths: list[str], frames_per_game: int = 4_000, seed: int = 0,
                      architecture: str = "nature", replay_capacity: int = 100_000, per_game: int = 8,
                      update_every: int = 4, learning_starts: int = 10_000, epsilon: float = 0.1, tau: float = 1.0,
                      lr: float = 2.5e-4, frame_skip: int = 4, device: str = "cpu") -> dict:
    """Distil the experts for `frames_per_game` emulator frames per game; returns counters and wall time."""
    experts, legal, games = [], [], []
    for path in expert_paths:
        network, meta = load_reference_expert(path, device)
        experts.append(network)
        legal.append(np.asarray(meta["actions"], np.int64))
        games.append(meta["game"])
    num_games = len(games)
    masks = np.zeros((num_games, NUM_ACTIONS), bool)
    for g, actions in enumerate(legal):
        masks[g, actions] = True
    masks_t = torch.from_numpy(masks).to(device)
    envs = gym.vector.AsyncVectorEnv(
        [lambda game=game: make_reference_env(game, noop_max=30, frame_skip=frame_skip) for game in games],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    amn = build_network(architecture, NUM_ACTIONS).to(device)
    params = list(amn.parameters())
    optimizer = torch.optim.Adam(params, lr=lr, **fast_optimizer_options("adam", params))     # its best, as the trainer's
    replays = [NumpyStateReplay(replay_capacity) for _ in games]
    batch_masks = masks_t.repeat_interleave(per_game, dim=0)

    start = time.perf_counter()
    obs, _ = envs.reset(seed=seed)
    steps = updates = episodes = 0
    while steps * frame_skip < frames_per_game:
        for g in range(num_games):
            replays[g].add(obs[g])
        with torch.no_grad():
            logits = amn(torch.as_tensor(obs, device=device)).masked_fill(~masks_t, float("-inf"))
        actions = logits.argmax(1).cpu().numpy()
        for g in range(num_games):
            if rng.random() < epsilon:
                actions[g] = rng.choice(legal[g])
        obs, _, terminations, truncations, _ = envs.step(actions)
        episodes += int((terminations | truncations).sum())
        steps += 1

        if steps >= learning_starts and steps % update_every == 0:
            s = torch.as_tensor(np.concatenate([r.sample(per_game, rng) for r in replays]), device=device)
            teacher_q = torch.zeros(num_games * per_game, NUM_ACTIONS, device=device)
            with torch.no_grad():
                for g, expert in enumerate(experts):      # one small pass per game
                    rows = slice(g * per_game, (g + 1) * per_game)
                    teacher_q[rows, torch.as_tensor(legal[g], device=device)] = expert(s[rows])
            loss = reference_actor_mimic_loss(amn(s), teacher_q, batch_masks, tau)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            updates += 1
    wall = time.perf_counter() - start
    envs.close()
    return {"frames_per_game": steps * frame_skip, "steps": steps, "updates": updates, "episodes": episodes,
            "wall_s": wall, "loss": loss.item() if updates else float("nan")}
