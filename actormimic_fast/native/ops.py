"""Fused ops of actormimic_fast: the Python API and the fake (meta) kernels.

The schemas are declared in C++ (csrc/kernels/masked_softmax_xent_schema.cpp) and each backend registers its kernels
there (CPU: csrc/kernels/masked_softmax_xent_cpu.cpp, CUDA: csrc/kernels/cuda/), as does autograd
(csrc/kernels/masked_softmax_xent_autograd.cpp: no Python runs in a training step's forward or backward).
This module adds what torch.compile needs; it never branches on device.

    action_masks = ops.check_action_masks(action_masks)     # once, where the static per-game table is made
    loss = ops.masked_softmax_xent(student_logits, teacher_q, action_masks, tau=1.0, game_id=game_id,
                                   reduction="mean")
"""

from __future__ import annotations

import torch

from .. import _C  # noqa: F401  (registers the ops with the dispatcher)
from .argument_checks import check_bool, check_real

__all__ = ["check_action_masks", "masked_softmax_xent"]

_REDUCTIONS = ("none", "mean", "sum")
# The kernels divide by tau in float32 (for 16/32-bit inputs): tau must be a normal float32 number, so that
# neither tau nor 1/tau overflows or flushes to zero (csrc/kernels/masked_softmax_xent_args.cpp checks it).
TAU_MIN = float(torch.finfo(torch.float32).tiny)   # 2^-126 = 1.1755e-38
TAU_MAX = float(torch.finfo(torch.float32).max)    # 3.4028e38


def masked_softmax_xent(student_logits: torch.Tensor, teacher_q: torch.Tensor, action_mask: torch.Tensor,
                        tau: float = 1.0, *, game_id: torch.Tensor | None = None, reduction: str = "none",
                        check: bool | None = None) -> torch.Tensor:
    """Actor-Mimic policy loss ``-sum_{a legal} softmax(teacher_q / tau)_a * log softmax(student_logits)_a``.

    Both softmaxes run over the legal actions of each row only. ``student_logits`` and ``teacher_q`` are
    [B, A] (A <= 32) of one dtype: float32, float16, bfloat16 (math in float32) or float64. ``action_mask``
    is bool [B, A], or a per-game table [G, A] with ``game_id`` (int32/int64 [B]) choosing each row's game.
    Teacher values at illegal actions are ignored whatever they are. Returns the per-row loss [B] (float32;
    float64 for float64 inputs), or its mean or sum with ``reduction``. Differentiable once w.r.t.
    ``student_logits`` (gradient ``softmax_legal(student_logits) - softmax_legal(teacher_q / tau)``) and
    ``teacher_q``; a double backward (``create_graph=True``) raises NotImplementedError.

    A row without a legal action, or whose game_id is outside [0, G), has no loss. ``check`` says what
    happens to it:
      - True: ValueError for the first row without a legal action, IndexError for the first game_id out of
        range, naming the row and the value (on CUDA this reads 16 bytes back, one stream synchronisation
        per forward, and cannot run under CUDA graph capture);
      - False: the row gets a NaN loss and NaN gradients (a mean or sum turns NaN), no check at all;
      - None (the default): as True on the CPU, where the check costs nothing; on CUDA a device-side
        assertion (no host synchronisation, CUDA-graph capturable): the next synchronisation raises
        RuntimeError ("device-side assert triggered"), which leaves the CUDA context unusable, so a bad
        batch stops the process instead of training on NaN; rerun with check=True to name the row.
    Validate static per-game tables once with :func:`check_action_masks`. Always raises TypeError /
    ValueError for wrong dtypes, layouts (dense tensors only), shapes, devices (all tensors on one cpu or
    cuda device; meta tensors are refused) and for a tau that is not a real number in [2^-126, FLT_MAX] (a
    normal float32, so 1/tau is finite). Values teacher_q / tau beyond float32's range at legal actions give
    NaN.
    """
    for name, value in (("student_logits", student_logits), ("teacher_q", teacher_q), ("action_mask", action_mask),
                        ("game_id", game_id)):
        if not isinstance(value, torch.Tensor) and not (name == "game_id" and value is None):
            raise TypeError(f"masked_softmax_xent: {name} must be a torch.Tensor"
                            f"{' or None' if name == 'game_id' else ''}, got {type(value).__name__}")
        if value is not None and value.layout != torch.strided:   # else the dispatcher's "Could not run ..."
            raise TypeError(f"masked_softmax_xent: {name} must be a dense (strided) tensor, got layout "
                            f"{value.layout}")
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"masked_softmax_xent: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    tau = check_real("masked_softmax_xent: tau", tau, finite=False)
    check = None if check is None else check_bool("masked_softmax_xent: check", check)
    return torch.ops.actormimic_fast.masked_softmax_xent.default(student_logits, teacher_q, action_mask, game_id,
                                                                 tau, reduction, check)


def check_action_masks(action_mask: torch.Tensor) -> torch.Tensor:
    """Validates an action-mask table for masked_softmax_xent once, where it is made; returns it unchanged.

    ``action_mask`` must be a bool [G, A] tensor (1 <= A <= 32) on a cpu or cuda device whose every row has at
    least one legal action: ValueError naming the first row without one, TypeError / ValueError for a wrong
    type, dtype, shape or device. Reads the table back to the host (one synchronisation on CUDA): meant for
    static tables (a pool's per-game ``action_masks``), not for every training step.
    """
    if not isinstance(action_mask, torch.Tensor):
        raise TypeError(f"check_action_masks: action_mask must be a torch.Tensor, got {type(action_mask).__name__}")
    if action_mask.dtype != torch.bool:
        raise TypeError(f"check_action_masks: action_mask must be bool, got {action_mask.dtype}")
    if action_mask.dim() != 2 or not 1 <= action_mask.shape[1] <= 32:
        raise ValueError(f"check_action_masks: action_mask must be 2-D [G, A] with 1 <= A <= 32, got shape "
                         f"{list(action_mask.shape)}")
    if action_mask.device.type == "meta":
        raise ValueError("check_action_masks: action_mask is on the meta device, which holds no values to check")
    empty = (~action_mask.any(1)).nonzero()
    if len(empty):
        row = int(empty[0, 0])
        raise ValueError(f"check_action_masks: row {row} of action_mask has no legal action (all False): "
                         f"masked_softmax_xent would give its rows a NaN loss")
    return action_mask


def _loss_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_devices(op: str, reference: torch.Tensor, tensors: dict) -> None:
    """The device checks of the C++ kernels, for the fake (meta) kernels: they also serve the Meta dispatch
    key, which wins whenever one input is a meta tensor, and must then refuse instead of returning a meta
    tensor (FakeTensors under torch.compile report their real device and pass)."""
    for name, t in tensors.items():
        if t is None:
            continue
        torch._check_value(t.device.type != "meta",
                           lambda: f"{op}: {name} is on the meta device; the op needs its values (cpu or cuda)")
        torch._check_value(t.device == reference.device,
                           lambda: f"{op}: {name} is on {t.device} but {next(iter(tensors))} is on "
                                   f"{reference.device}")


@torch.library.register_fake("actormimic_fast::masked_softmax_xent")
def _masked_softmax_xent_fake(student_logits, teacher_q, action_mask, game_id, tau, reduction="none", check=None):
    _check_devices("masked_softmax_xent", student_logits, dict(student_logits=student_logits, teacher_q=teacher_q,
                                                               action_mask=action_mask, game_id=game_id))
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
def _masked_softmax_xent_and_grad_fake(student_logits, teacher_q, action_mask, game_id, tau, reduction="none",
                                       check=None):
    loss = _masked_softmax_xent_fake(student_logits, teacher_q, action_mask, game_id, tau, reduction, check)
    return loss, student_logits.new_empty(student_logits.shape, dtype=loss.dtype)


@torch.library.register_fake("actormimic_fast::masked_softmax_xent_scale_grad")
def _masked_softmax_xent_scale_grad_fake(dloss_dlogits, grad_output, reduction, dtype):
    _check_devices("masked_softmax_xent_scale_grad", dloss_dlogits,
                   dict(dloss_dlogits=dloss_dlogits, grad_output=grad_output))
    return torch.empty_like(dloss_dlogits, dtype=dtype)


@torch.library.register_fake("actormimic_fast::masked_softmax_xent_backward")
def _masked_softmax_xent_backward_fake(grad_loss, student_logits, teacher_q, action_mask, game_id, tau,
                                       teacher_grad):
    _check_devices("masked_softmax_xent_backward", student_logits,
                   dict(student_logits=student_logits, grad_loss=grad_loss, teacher_q=teacher_q,
                        action_mask=action_mask, game_id=game_id))
    grad_teacher = torch.empty_like(teacher_q) if teacher_grad else teacher_q.new_empty(0)
    return torch.empty_like(student_logits), grad_teacher
