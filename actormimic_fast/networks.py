"""The networks of the paper: the Nature DQN (experts, the multitask AMN, MDQN), the large transfer AMN and
the MCDQN baseline (shared convolutions, one fc + output head per game).

Every network maps uint8 frames [B, 4, 84, 84] to Q-values / logits [B, num_actions] and exposes
`features(obs)`, the pre-output activations that Actor-Mimic's feature regression matches.
"""

from __future__ import annotations

import torch
from torch import nn

ARCHITECTURES = ("nature", "large")


class NatureDQN(nn.Module):
    """Mnih et al. 2015: conv 8x8x32 s4, 4x4x64 s2, 3x3x64 s1, fc 512, linear output; ReLU between."""

    architecture = "nature"

    def __init__(self, num_actions: int, in_frames: int = 4):
        super().__init__()
        self.num_actions = num_actions
        self.trunk = nn.Sequential(
            nn.Conv2d(in_frames, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 512), nn.ReLU(),
        )
        self.head = nn.Linear(512, num_actions)
        self.feature_dim = 512

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """Pre-output activations h(s) [B, 512] (uint8 frames are scaled to [0, 1])."""
        return self.trunk(scale_frames(obs))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(obs))


class LargeAMN(nn.Module):
    """Appendix D transfer network: conv 8x8x256 s4, 4x4x512 s2, 3x3x512 s1, 3x3x512 s1, fc 2048,
    fc 1024, linear output. The paper lists no padding, so the fourth conv leaves 5x5x512 for the fc."""

    architecture = "large"

    def __init__(self, num_actions: int, in_frames: int = 4):
        super().__init__()
        self.num_actions = num_actions
        self.trunk = nn.Sequential(
            nn.Conv2d(in_frames, 256, 8, stride=4), nn.ReLU(),
            nn.Conv2d(256, 512, 4, stride=2), nn.ReLU(),
            nn.Conv2d(512, 512, 3, stride=1), nn.ReLU(),
            nn.Conv2d(512, 512, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(512 * 5 * 5, 2048), nn.ReLU(),
            nn.Linear(2048, 1024), nn.ReLU(),
        )
        self.head = nn.Linear(1024, num_actions)
        self.feature_dim = 1024

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        return self.trunk(scale_frames(obs))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(obs))


class MultiHeadDQN(nn.Module):
    """MCDQN (appendix C): the Nature DQN's convolutions shared by all games, then a separate fc 512 and
    linear output per game. ``forward(obs, game_ids)`` routes row b through head ``game_ids[b]``.

    Heads are batched by grouping rows per game: a stable sort by game id, one fc -> ReLU -> linear per
    game on its contiguous slice, and the inverse permutation back (skipped when rows are already
    grouped, as ``sample(per_game=...)`` returns them). Each row costs one head, exactly as if the games
    had separate networks on top of the shared convolutions; the price is a few small matmuls per game.
    The slice sizes are needed on the host: pass ``game_ids`` on the CPU, or a CUDA tensor costs one sync.
    """

    architecture = "nature"

    def __init__(self, num_games: int, num_actions: int = 18, in_frames: int = 4):
        super().__init__()
        if num_games < 1:
            raise ValueError(f"num_games must be >= 1, got {num_games!r}")
        self.num_games, self.num_actions = num_games, num_actions
        self.convs = nn.Sequential(
            nn.Conv2d(in_frames, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )
        self.hidden = nn.ModuleList(nn.Linear(64 * 7 * 7, 512) for _ in range(num_games))
        self.outputs = nn.ModuleList(nn.Linear(512, num_actions) for _ in range(num_games))
        self.feature_dim = 512

    def features(self, obs: torch.Tensor, game_ids: torch.Tensor) -> torch.Tensor:
        """Pre-output activations [B, 512]: row b through game game_ids[b]'s fc layer."""
        return self._per_game(self.convs(scale_frames(obs)), game_ids,
                              lambda g, x: torch.relu(self.hidden[g](x)))

    def forward(self, obs: torch.Tensor, game_ids: torch.Tensor) -> torch.Tensor:
        return self._per_game(self.convs(scale_frames(obs)), game_ids,
                              lambda g, x: self.outputs[g](torch.relu(self.hidden[g](x))))

    def _per_game(self, x: torch.Tensor, game_ids: torch.Tensor, head) -> torch.Tensor:
        ids = torch.as_tensor(game_ids).cpu()
        if ids.shape != (x.shape[0],):
            raise ValueError(f"game_ids must have shape ({x.shape[0]},), got {tuple(ids.shape)}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_games):
            raise IndexError(f"game_ids must be in [0, {self.num_games}), got values from {int(ids.min())} "
                             f"to {int(ids.max())}")
        if ids.numel() == 0:
            return head(0, x)
        counts = torch.bincount(ids, minlength=self.num_games).tolist()
        if bool((ids[1:] >= ids[:-1]).all()):   # already grouped by game: no permutation
            return torch.cat([head(g, rows) for g, rows in enumerate(x.split(counts)) if counts[g]])
        order = torch.argsort(ids, stable=True)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order))
        grouped = x.index_select(0, order.to(x.device)).split(counts)
        y = torch.cat([head(g, rows) for g, rows in enumerate(grouped) if counts[g]])
        return y.index_select(0, inverse.to(x.device))


def scale_frames(obs: torch.Tensor) -> torch.Tensor:
    """uint8 frames -> float in [0, 1]; float input is taken as already scaled."""
    if obs.dtype == torch.uint8:
        return obs.float().div_(255.0)
    return obs


def build_network(architecture: str, num_actions: int, in_frames: int = 4) -> nn.Module:
    """'nature' (the expert / multitask AMN) or 'large' (appendix D transfer AMN)."""
    if architecture == "nature":
        return NatureDQN(num_actions, in_frames)
    if architecture == "large":
        return LargeAMN(num_actions, in_frames)
    raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
