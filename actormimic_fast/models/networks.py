"""The networks of the paper: the Nature DQN (experts, the multitask AMN, MDQN), the large transfer AMN and
the MCDQN baseline (shared convolutions, one fc + output head per game).

Every network maps uint8 frames [B, 4, 84, 84] to Q-values / logits [B, num_actions] and exposes
`features(obs)`, the pre-output activations that Actor-Mimic's feature regression matches.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

ARCHITECTURES = ("nature", "large", "nature_ln")


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


class NatureLayerNormDQN(nn.Module):
    """The Nature DQN with a LayerNorm before every ReLU (PQN, Gallici et al. 2024): no target network
    needed to keep the TD targets stable.

    Each convolution's LayerNorm normalises the channels at each position (the PQN paper's: flax's
    LayerNorm over the last, channel axis of NHWC maps), not each whole map as CleanRL's PyTorch port does.
    Why: it keeps the convolutions translation-equivariant and has 2 x C parameters instead of 2 x C x H x W,
    and in channels-last memory (which this network keeps: 1.4x faster convolutions on the CPU, measured
    with oneDNN on 2 cores) the channels at a position are contiguous, so it costs a plain layer_norm over
    the last axis. The fc layer's LayerNorm normalises its 512 units. ``features`` are the last hidden
    layer's activations (after its LayerNorm and ReLU), the ones Actor-Mimic's feature regression matches.
    """

    architecture = "nature_ln"

    def __init__(self, num_actions: int, in_frames: int = 4):
        super().__init__()
        self.num_actions = num_actions
        self.trunk = _LayerNormTrunk(in_frames)
        self.head = nn.Linear(512, num_actions)
        self.feature_dim = 512
        self.to(memory_format=torch.channels_last)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        return self.trunk(scale_frames(obs))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(obs))


class _LayerNormTrunk(nn.Module):
    """NatureLayerNormDQN's layers up to its features: scaled frames [B, 4, 84, 84] -> [B, 512]."""

    def __init__(self, in_frames: int):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(in_frames, 32, 8, stride=4), nn.Conv2d(32, 64, 4, stride=2),
                                    nn.Conv2d(64, 64, 3, stride=1)])
        self.conv_norms = nn.ModuleList([nn.LayerNorm(32), nn.LayerNorm(64), nn.LayerNorm(64)])
        self.fc = nn.Linear(64 * 7 * 7, 512)
        self.fc_norm = nn.LayerNorm(512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        for conv, norm in zip(self.convs, self.conv_norms):
            x = conv(x)                                                      # [B, C, H, W], channels last
            x = torch.relu(norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))  # normalise C at each (h, w)
        # flatten in NCHW order (the Nature DQN's fc layout)
        return torch.relu(self.fc_norm(self.fc(x.contiguous().flatten(1))))


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


class StackedNetworks(nn.Module):
    """K networks of one architecture as one module: their parameters stacked along a new first dimension
    (torch.func.stack_module_state), so K experts' update is one backward pass and one optimiser step.

    The forward pass either runs each network on its slice of the stacked parameters, with the kernels a
    network alone uses (``vectorized = False``: on the CPU this is 1.5x faster than vmap and gives each
    network the outputs it would have alone), or vmaps one call over them (``vectorized = True``: the
    convolutions become grouped convolutions, fewer and larger kernels, meant for GPUs).

    Heads of different sizes are padded with zero rows to the largest (``num_outputs``); a padded output
    never enters a loss (callers mask it), so its rows get no gradient and stay zero under every
    optimiser here. forward(obs [K, B, ...]) -> [K, B, num_outputs]; ``network_state(k, num_actions)``
    gives network k's own state_dict (padding removed), ``load_network_state`` writes one back.
    """

    def __init__(self, networks: list[nn.Module]):
        super().__init__()
        num_outputs = max(n.head.out_features for n in networks)
        padded = [_padded_head(n, num_outputs) for n in networks]
        params, _ = torch.func.stack_module_state(padded)
        self.names = list(params)
        self.stacked = nn.ParameterList(nn.Parameter(params[name].detach().clone()) for name in self.names)
        self.num_networks, self.num_outputs = len(networks), num_outputs
        # structure only (weights come from self.stacked); in a tuple so that it is not a submodule
        self._structure = (copy.deepcopy(padded[0]).to("meta"),)
        self.vectorized = False

    def _one(self, params: dict, obs: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self._structure[0], params, (obs,))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.dim() < 2 or obs.shape[0] != self.num_networks:
            raise ValueError(f"obs must be [networks={self.num_networks}, B, ...], got {tuple(obs.shape)}")
        if self.vectorized:
            return torch.vmap(self._one)(dict(zip(self.names, self.stacked)), obs)
        views = [p.unbind(0) for p in self.stacked]     # backward: one stack of the K gradients per parameter
        outs = [self._one({name: v[k] for name, v in zip(self.names, views)}, obs[k]) for k in range(self.num_networks)]
        if isinstance(outs[0], tuple):                   # networks with several outputs: stack each
            return tuple(torch.stack(parts) for parts in zip(*outs))
        return torch.stack(outs)

    def network_state(self, k: int, num_actions: int) -> dict[str, torch.Tensor]:
        """Network k's state_dict as a plain network with num_actions outputs has it."""
        return {name: unpadded(name, p[k], num_actions).detach().clone() for name, p in zip(self.names, self.stacked)}

    @torch.no_grad()
    def load_network_state(self, k: int, state: dict[str, torch.Tensor]) -> None:
        """Write a plain network's state_dict into slot k (its head into the first rows)."""
        for name, p in zip(self.names, self.stacked):
            value = state[name]
            if name.startswith("head."):
                p[k].zero_()              # the padding rows
            p[k][: value.shape[0]].copy_(value)

    def network_optimizer_state(self, state: dict, k: int, num_actions: int) -> dict:
        """Network k's share of an optimiser state over these parameters, as an optimiser of its plain
        network holds it (padding removed)."""
        per_param = {}
        for i, values in state["state"].items():
            name, param = self.names[i], self.stacked[i]
            per_param[i] = {key: (unpadded(name, v[k], num_actions).clone() if _param_shaped(v, param) else v)
                            for key, v in values.items()}
        return {"state": per_param, "param_groups": state["param_groups"]}

    def joint_optimizer_state(self, states: list[dict]) -> dict:
        """The inverse of network_optimizer_state for every network: one state for the stacked parameters."""
        per_param = {}
        for i in states[0]["state"]:
            param = self.stacked[i]
            per_param[i] = {}
            for key, first in states[0]["state"][i].items():
                if first.dim() == 0 or first.dim() != param.dim() - 1:    # a scalar (Adam's step): same for all
                    per_param[i][key] = first
                    continue
                padded = torch.zeros(param.shape, dtype=first.dtype)
                for k, state in enumerate(states):
                    value = state["state"][i][key]
                    padded[k][: value.shape[0]] = value
                per_param[i][key] = padded
        return {"state": per_param, "param_groups": states[0]["param_groups"]}


class SeparateNetworks(nn.Module):
    """K networks side by side, each with its own parameters (heads of their own sizes): StackedNetworks'
    interface for the CPU, where each network runs its own kernels anyway. Unlike stacked parameters,
    nothing is copied in the backward pass: each network's gradients land in its own tensors (stacked
    ones cost a copy of all K gradients per update, 3% of a 3-expert update on a 2-core CPU).

    forward(obs [K, B, ...]) -> [K, B, num_outputs], each network's outputs padded with zeros to the
    largest head (callers mask the padding, as with StackedNetworks). An optimiser over ``parameters()``
    sees network 0's parameters, then network 1's, ...; ``network_optimizer_state`` cuts out one network's
    share as an optimiser of that network alone holds it, ``joint_optimizer_state`` joins them again.
    """

    def __init__(self, networks: list[nn.Module]):
        super().__init__()
        self.networks = nn.ModuleList(networks)
        self.num_networks = len(networks)
        self.num_outputs = max(n.head.out_features for n in networks)
        self.params_per_network = len(list(networks[0].parameters()))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.dim() < 2 or obs.shape[0] != self.num_networks:
            raise ValueError(f"obs must be [networks={self.num_networks}, B, ...], got {tuple(obs.shape)}")
        outs = [network(obs[k]) for k, network in enumerate(self.networks)]
        return torch.stack([nn.functional.pad(out, (0, self.num_outputs - out.shape[-1])) for out in outs])

    def network_state(self, k: int, num_actions: int) -> dict[str, torch.Tensor]:
        """Network k's state_dict (it has num_actions outputs already)."""
        return {name: value.detach().clone() for name, value in self.networks[k].state_dict().items()}

    def load_network_state(self, k: int, state: dict[str, torch.Tensor]) -> None:
        self.networks[k].load_state_dict(state)

    def network_optimizer_state(self, state: dict, k: int, num_actions: int) -> dict:
        """Network k's share of an optimiser state over parameters(): its entries, numbered from 0."""
        first, count = k * self.params_per_network, self.params_per_network
        per_param = {i - first: {key: v.clone() if isinstance(v, torch.Tensor) else v for key, v in values.items()}
                     for i, values in state["state"].items() if first <= i < first + count}
        groups = [{**group, "params": list(range(count))} for group in state["param_groups"]]
        return {"state": per_param, "param_groups": groups}

    def joint_optimizer_state(self, states: list[dict]) -> dict:
        """The inverse of network_optimizer_state for every network."""
        count = self.params_per_network
        per_param = {k * count + i: values for k, state in enumerate(states) for i, values in state["state"].items()}
        groups = [{**group, "params": list(range(count * len(states)))} for group in states[0]["param_groups"]]
        return {"state": per_param, "param_groups": groups}


def _param_shaped(value: torch.Tensor, param: torch.Tensor) -> bool:
    return value.dim() == param.dim() and value.shape[0] == param.shape[0]


def _padded_head(network: nn.Module, num_outputs: int) -> nn.Module:
    """A copy of network whose head has num_outputs rows: its own first, zeros after."""
    padded = copy.deepcopy(network)
    head = network.head
    if head.out_features != num_outputs:
        padded.head = nn.Linear(head.in_features, num_outputs).to(head.weight.device)
        with torch.no_grad():
            padded.head.weight.zero_()
            padded.head.bias.zero_()
            padded.head.weight[: head.out_features] = head.weight
            padded.head.bias[: head.out_features] = head.bias
    return padded


def unpadded(name: str, value: torch.Tensor, num_actions: int) -> torch.Tensor:
    """A StackedNetworks parameter (or optimiser state) of one network without its head's padding rows."""
    return value[:num_actions] if name.startswith("head.") else value


def scale_frames(obs: torch.Tensor) -> torch.Tensor:
    """uint8 frames -> float in [0, 1]; float input is taken as already scaled."""
    if obs.dtype == torch.uint8:
        return obs.float().div_(255.0)
    return obs


def build_network(architecture: str, num_actions: int, in_frames: int = 4) -> nn.Module:
    """'nature' (the expert / multitask AMN), 'nature_ln' (the same with LayerNorms: PQN experts) or 'large'
    (appendix D transfer AMN)."""
    if architecture == "nature":
        return NatureDQN(num_actions, in_frames)
    if architecture == "nature_ln":
        return NatureLayerNormDQN(num_actions, in_frames)
    if architecture == "large":
        return LargeAMN(num_actions, in_frames)
    raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
