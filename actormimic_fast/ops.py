"""Fused ops of actormimic_fast: the Python API and the fake (meta) kernels.

The schemas are declared in C++ (csrc/bindings/op_schemas.cpp) and each backend registers its kernels
there (CPU: csrc/kernels/masked_softmax_xent_cpu.cpp, CUDA: csrc/kernels/cuda/), as does autograd
(csrc/kernels/masked_softmax_xent_autograd.cpp: no Python runs in a training step's forward or backward).
This module adds what torch.compile needs; it never branches on device.

    loss = ops.masked_softmax_xent(student_logits, teacher_q, action_masks, tau=1.0, game_id=game_id,
                                   reduction="mean")
"""

from __future__ import annotations

import torch

from . import _C  # noqa: F401  (registers the ops with the dispatcher)

__all__ = ["masked_softmax_xent"]

_REDUCTIONS = ("none", "mean", "sum")


def masked_softmax_xent(student_logits: torch.Tensor, teacher_q: torch.Tensor, action_mask: torch.Tensor,
                        tau: float = 1.0, *, game_id: torch.Tensor | None = None,
                        reduction: str = "none") -> torch.Tensor:
    """Actor-Mimic policy loss ``-sum_{a legal} softmax(teacher_q / tau)_a * log softmax(student_logits)_a``.

    Both softmaxes run over the legal actions of each row only. ``student_logits`` and ``teacher_q`` are
    [B, A] (A <= 32) of one dtype: float32, float16, bfloat16 (math in float32) or float64. ``action_mask``
    is bool [B, A], or a per-game table [G, A] with ``game_id`` (int32/int64 [B]) choosing each row's game.
    Teacher values at illegal actions are ignored whatever they are. Returns the per-row loss [B] (float32;
    float64 for float64 inputs), or its mean or sum with ``reduction``. Differentiable w.r.t.
    ``student_logits`` (gradient ``softmax_legal(student_logits) - softmax_legal(teacher_q / tau)``) and
    ``teacher_q``. Raises ValueError for a row without a legal action, IndexError for a game_id outside
    [0, G), TypeError / ValueError for wrong dtypes, shapes or devices and for tau <= 0.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"masked_softmax_xent: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return torch.ops.actormimic_fast.masked_softmax_xent.default(student_logits, teacher_q, action_mask, game_id,
                                                                 float(tau), reduction)


def _loss_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


@torch.library.register_fake("actormimic_fast::masked_softmax_xent")
def _masked_softmax_xent_fake(student_logits, teacher_q, action_mask, game_id, tau, reduction="none"):
    torch._check(reduction in _REDUCTIONS,
                 lambda: f"masked_softmax_xent: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    torch._check(student_logits.dim() == 2, lambda: "masked_softmax_xent: student_logits must be 2-D [B, A]")
    torch._check(teacher_q.shape == student_logits.shape,
                 lambda: "masked_softmax_xent: teacher_q must have the shape of student_logits")
    torch._check(teacher_q.dtype == student_logits.dtype,
                 lambda: "masked_softmax_xent: teacher_q must have the dtype of student_logits")
    shape = (student_logits.shape[0],) if reduction == "none" else ()
    return student_logits.new_empty(shape, dtype=_loss_dtype(student_logits.dtype))


@torch.library.register_fake("actormimic_fast::masked_softmax_xent_and_grad")
def _masked_softmax_xent_and_grad_fake(student_logits, teacher_q, action_mask, game_id, tau, reduction="none"):
    loss = _masked_softmax_xent_fake(student_logits, teacher_q, action_mask, game_id, tau, reduction)
    return loss, student_logits.new_empty(student_logits.shape, dtype=loss.dtype)


@torch.library.register_fake("actormimic_fast::masked_softmax_xent_scale_grad")
def _masked_softmax_xent_scale_grad_fake(dloss_dlogits, grad_output, reduction, dtype):
    return torch.empty_like(dloss_dlogits, dtype=dtype)


@torch.library.register_fake("actormimic_fast::masked_softmax_xent_backward")
def _masked_softmax_xent_backward_fake(grad_loss, student_logits, teacher_q, action_mask, game_id, tau,
                                       teacher_grad):
    grad_teacher = torch.empty_like(teacher_q) if teacher_grad else teacher_q.new_empty(0)
    return torch.empty_like(student_logits), grad_teacher
