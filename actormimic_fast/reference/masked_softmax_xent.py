"""Plain PyTorch reference of the fused masked softmax cross-entropy (csrc/kernels/masked_softmax_xent.h).

Shared by the tests (run in float64 as the ground truth, and in the input precision to measure what
the same-precision PyTorch computation gets wrong) and by the benchmarks (eager and torch.compile).
The math runs in the dtype of the inputs; masking uses ``torch.where`` so garbage (inf, NaN) at
illegal teacher positions never reaches the arithmetic. A row with no legal action gives NaN here
(the fused op raises ValueError instead).
"""

from __future__ import annotations

import torch


def masked_softmax_xent(student_logits: torch.Tensor, teacher_q: torch.Tensor, action_mask: torch.Tensor,
                        tau: float = 1.0, game_id: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row ``-sum_{a legal} softmax(teacher_q / tau)_a * log_softmax(student_logits)_a`` over legal actions.

    ``action_mask`` is bool [B, A], or a per-game table [G, A] indexed by ``game_id`` [B].
    """
    legal = action_mask if game_id is None else action_mask[game_id]
    neg_inf = torch.tensor(float("-inf"), dtype=student_logits.dtype, device=student_logits.device)
    log_p = torch.log_softmax(torch.where(legal, student_logits, neg_inf), dim=-1)
    q = torch.softmax(torch.where(legal, teacher_q / tau, neg_inf), dim=-1)
    # q is exactly 0 at illegal actions, where log_p is -inf: zero log_p there so 0 * -inf never happens
    # (neither in the product nor in its gradient).
    log_p = torch.where(legal, log_p, torch.zeros_like(log_p))
    return -(q * log_p).sum(dim=-1)
