"""The optimisers of the paper's code, which differ from torch's built-ins.

- `DeepMindRMSprop`: the RMSProp of Mnih et al. 2015 (Graves 2013 form): running averages of the
  gradient g and squared gradient n with momentum 0.95, step lr * grad / sqrt(n - g^2 + eps) with eps
  (the "min squared gradient", 0.01) inside the square root and no momentum on the step.
- `AuthorsAdam`: the Actor-Mimic authors' Adam variant: lr 2.5e-4, beta1 = beta2 = 0.95, eps 0.01 inside
  the square root, no bias correction (effectively RMSProp with momentum).
"""

from __future__ import annotations

import torch
from torch.optim import Optimizer


class _TwoMomentOptimizer(Optimizer):
    """The shared loop: two running averages per parameter (created at zero), then `_update`."""

    def _update(self, p: torch.Tensor, grad: torch.Tensor, first: torch.Tensor, second: torch.Tensor,
                group: dict) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["first_moment"] = torch.zeros_like(p)
                    state["second_moment"] = torch.zeros_like(p)
                self._update(p, p.grad, state["first_moment"], state["second_moment"], group)
        return loss


class DeepMindRMSprop(_TwoMomentOptimizer):
    """g <- m g + (1-m) grad;  n <- m n + (1-m) grad^2;  p <- p - lr grad / sqrt(n - g^2 + eps)."""

    def __init__(self, params, lr: float = 2.5e-4, momentum: float = 0.95, eps: float = 0.01):
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        super().__init__(params, dict(lr=lr, momentum=momentum, eps=eps))

    def _update(self, p, grad, g, n, group):
        m, lr, eps = group["momentum"], group["lr"], group["eps"]
        g.mul_(m).add_(grad, alpha=1 - m)
        n.mul_(m).addcmul_(grad, grad, value=1 - m)
        p.addcdiv_(grad, (n - g * g).add_(eps).sqrt_(), value=-lr)


class AuthorsAdam(_TwoMomentOptimizer):
    """m <- b1 m + (1-b1) grad;  v <- b2 v + (1-b2) grad^2;  p <- p - lr m / sqrt(v + eps)."""

    def __init__(self, params, lr: float = 2.5e-4, beta1: float = 0.95, beta2: float = 0.95, eps: float = 0.01):
        for name, value in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if lr <= 0 or eps <= 0:
            raise ValueError(f"lr and eps must be > 0, got lr={lr}, eps={eps}")
        super().__init__(params, dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps))

    def _update(self, p, grad, m, v, group):
        b1, b2, lr, eps = group["beta1"], group["beta2"], group["lr"], group["eps"]
        m.mul_(b1).add_(grad, alpha=1 - b1)
        v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        p.addcdiv_(m, (v + eps).sqrt_(), value=-lr)


OPTIMIZERS = ("rmsprop", "adam", "authors_adam", "radam")


def make_optimizer(name: str, params, *, lr: float, rmsprop_momentum: float = 0.95, rmsprop_eps: float = 0.01,
                   adam_eps: float = 1e-8, capturable: bool = False) -> Optimizer:
    """The optimiser a config names: rmsprop (DeepMindRMSprop), adam (torch.optim.Adam, ``capturable`` for
    CUDA graphs: its step count stays on the device), authors_adam or radam (torch.optim.RAdam). DeepMindRMSprop
    and AuthorsAdam keep no host-side state, so they are capturable as they are.

    torch's own optimisers run their fastest implementation (fast_optimizer_options): on the CPU torch
    defaults to one loop of elementwise ops per tensor, which costs a Nature DQN's 1.7M weights 8.7 ms per Adam
    step and 14.2 ms per RAdam step on 2 cores, against 1.0 ms fused and 4.1 ms multi-tensor (foreach)
    (measured, benchmarks/RESULTS.md): a quarter of a PQN minibatch step."""
    params = list(params)
    if name == "rmsprop":
        return DeepMindRMSprop(params, lr=lr, momentum=rmsprop_momentum, eps=rmsprop_eps)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, eps=adam_eps, capturable=capturable, **fast_optimizer_options("adam", params))
    if name == "authors_adam":
        return AuthorsAdam(params, lr=lr)
    if name == "radam":      # PQN's (torch.optim.RAdam: Adam whose early steps are rectified, no warm-up needed)
        return torch.optim.RAdam(params, lr=lr, eps=adam_eps, capturable=capturable,
                                 **fast_optimizer_options("radam", params))
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def fast_optimizer_options(name: str, params) -> dict:
    """The fastest implementation torch has of optimizer `name` ("adam" or "radam") for these parameters:
    fused Adam on the CPU (CUDA keeps torch's default, multi-tensor, which its CUDA graphs are tested with),
    multi-tensor RAdam everywhere (it has no fused kernel). The same arithmetic as the per-tensor loop, up to
    float32 rounding. Shared by the trainers and the reference loops, so that each peer runs its best.
    params: the tensors to optimise (a list, as every caller passes; not parameter-group dicts)."""
    on_cpu = all(t.device.type == "cpu" for t in params)
    if name == "adam":
        return {"fused": True} if on_cpu else {}
    if name == "radam":
        return {"foreach": True}
    raise ValueError(f"name must be 'adam' or 'radam', got {name!r}")
