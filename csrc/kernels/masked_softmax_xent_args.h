// Argument checks shared by the CPU and CUDA glue of masked_softmax_xent: every error names the argument
// and its actual shape, dtype, device or value; the checked tensors are packed into the raw-pointer
// structs of masked_softmax_xent.h. Host-side metadata only (no tensor value is read): data-dependent
// checks (empty rows, game ids) are done by each backend while it computes, and raised by
// raise_for_status only in check mode.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string_view>

#include "kernels/masked_softmax_xent.h"

namespace actormimic_fast::kernels {

// Inputs whose columns are contiguous (copied only when they were not), and the view the backends read.
struct CheckedXentInputs {
  at::Tensor student_logits, teacher_q, action_mask, game_id;
  XentInputs raw;
};

/// Validates the forward's arguments (shapes, dtypes, devices, tau) for the backend of `device_type`.
CheckedXentInputs check_xent_inputs(const at::Tensor& student_logits, const at::Tensor& teacher_q,
                                    const at::Tensor& action_mask, const std::optional<at::Tensor>& game_id,
                                    double tau, c10::DeviceType device_type);

/// Validates grad_loss against the checked inputs ([B], the loss dtype, the same device).
void check_grad_loss(const at::Tensor& grad_loss, const CheckedXentInputs& inputs);

/// The dtype of the loss: float32 for 16/32-bit inputs, float64 for float64 inputs.
at::ScalarType loss_dtype(at::ScalarType input_dtype);

/// What masked_softmax_xent returns: the per-row loss [B], or its mean or sum.
enum class Reduction { kNone, kMean, kSum };

/// Parses "none" / "mean" / "sum" (ValueError naming the value otherwise).
Reduction parse_reduction(std::string_view reduction);

/// Applies `reduction` to the per-row loss.
at::Tensor reduce_loss(const at::Tensor& loss, Reduction reduction);

/// Validates masked_softmax_xent_scale_grad's arguments against each other.
void check_scale_grad_inputs(const at::Tensor& dloss_dlogits, const at::Tensor& grad_output, Reduction reduction,
                             at::ScalarType dtype);

/// Raises the documented error for the first failed row the backend reported, if any (check mode).
void raise_for_status(const XentStatus& status, const CheckedXentInputs& inputs);

}  // namespace actormimic_fast::kernels
