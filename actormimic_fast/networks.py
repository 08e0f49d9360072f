"""The networks of the paper: the Nature DQN (experts and the multitask AMN) and the large transfer AMN.

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
