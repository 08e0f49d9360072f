"""``--compile``: the networks' calls in the update and the acting pass through ``torch.compile``.

Each network gets one compiled wrapper (sharing its parameters); torch.compile traces it again for each
new input shape and grad mode (the acting pass, the update's minibatch, a rollout's shorter first one).
The calls that compile are timed and summed into ``compile_s``, which the run reports on its own (the
summary, progress.csv's first rows are slow by that much): steady-state rates leave it out.
Measured on a 2-core AVX2 EPYC (torch 2.13, nature_ln, minibatch 128): compiling took 34 s and the update
ran 0.9x eager's speed (oneDNN already fuses what matters there), so it is off by default.
"""

from __future__ import annotations

import time

import torch
from torch import nn


class CompiledNetworks:
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.compile_s = 0.0
        self._compiled: dict[int, nn.Module] = {}
        self._seen: set[tuple] = set()

    def __call__(self, network: nn.Module, obs: torch.Tensor) -> torch.Tensor:
        """network(obs), compiled when enabled."""
        if not self.enabled:
            return network(obs)
        compiled = self._compiled.get(id(network))
        if compiled is None:
            compiled = self._compiled[id(network)] = torch.compile(network)
        key = (id(network), tuple(obs.shape), torch.is_grad_enabled(), torch.is_inference_mode_enabled())
        if key in self._seen:
            return compiled(obs)
        start = time.perf_counter()         # a new shape or mode: this call traces and compiles
        out = compiled(obs)
        self.compile_s += time.perf_counter() - start
        self._seen.add(key)
        return out
