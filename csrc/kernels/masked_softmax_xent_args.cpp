#include "kernels/masked_softmax_xent_args.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <limits>

namespace actormimic_fast::kernels {

namespace {

constexpr const char* kOp = "masked_softmax_xent: ";

ScalarType to_kernel_dtype(at::ScalarType dtype) {
  TORCH_CHECK_TYPE(dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16 || dtype == at::kDouble, kOp,
                   "student_logits must be float32, float16, bfloat16 or float64, got ", dtype);
  if (dtype == at::kHalf) return ScalarType::kFloat16;
  if (dtype == at::kBFloat16) return ScalarType::kBFloat16;
  if (dtype == at::kDouble) return ScalarType::kFloat64;
  return ScalarType::kFloat32;
}

// The kernels read columns at unit stride and rows at any stride (expanded rows included).
at::Tensor unit_column_stride(const at::Tensor& t) {
  return t.size(1) <= 1 || t.stride(1) == 1 ? t : t.contiguous();
}

void check_device(const at::Tensor& t, const char* name, const at::Tensor& student_logits) {
  TORCH_CHECK_VALUE(t.device() == student_logits.device(), kOp, name, " is on ", t.device(),
                    " but student_logits is on ", student_logits.device());
}

}  // namespace

at::ScalarType loss_dtype(at::ScalarType input_dtype) {
  return input_dtype == at::kDouble ? at::kDouble : at::kFloat;
}

CheckedXentInputs check_xent_inputs(const at::Tensor& student_logits, const at::Tensor& teacher_q,
                                    const at::Tensor& action_mask, const std::optional<at::Tensor>& game_id,
                                    double tau, c10::DeviceType device_type) {
  TORCH_CHECK_VALUE(student_logits.dim() == 2, kOp, "student_logits must be 2-D [B, A], got shape ",
                    student_logits.sizes());
  const int64_t rows = student_logits.size(0);
  const int64_t actions = student_logits.size(1);
  TORCH_CHECK_VALUE(actions >= 1 && actions <= kMaxActions, kOp, "student_logits must have 1 to ", kMaxActions,
                    " actions (columns), got shape ", student_logits.sizes());
  const ScalarType dtype = to_kernel_dtype(student_logits.scalar_type());
  TORCH_CHECK_VALUE(student_logits.device().type() == device_type, kOp, "student_logits is on ",
                    student_logits.device(), " but this is the ", device_type, " implementation");

  TORCH_CHECK_TYPE(teacher_q.scalar_type() == student_logits.scalar_type(), kOp,
                   "teacher_q must have the dtype of student_logits (", student_logits.scalar_type(), "), got ",
                   teacher_q.scalar_type());
  TORCH_CHECK_VALUE(teacher_q.sizes() == student_logits.sizes(), kOp,
                    "teacher_q must have the shape of student_logits ", student_logits.sizes(), ", got ",
                    teacher_q.sizes());
  check_device(teacher_q, "teacher_q", student_logits);

  TORCH_CHECK_TYPE(action_mask.scalar_type() == at::kBool, kOp, "action_mask must be bool, got ",
                   action_mask.scalar_type());
  check_device(action_mask, "action_mask", student_logits);
  if (game_id.has_value()) {
    const at::Tensor& ids = *game_id;
    TORCH_CHECK_TYPE(ids.scalar_type() == at::kInt || ids.scalar_type() == at::kLong, kOp,
                     "game_id must be int32 or int64, got ", ids.scalar_type());
    TORCH_CHECK_VALUE(ids.dim() == 1 && ids.size(0) == rows, kOp, "game_id must have shape [B] = [", rows,
                      "], got ", ids.sizes());
    check_device(ids, "game_id", student_logits);
    TORCH_CHECK_VALUE(action_mask.dim() == 2 && action_mask.size(1) == actions, kOp,
                      "action_mask must be a per-game table [G, A] with A = ", actions,
                      " when game_id is given, got shape ", action_mask.sizes());
  } else {
    TORCH_CHECK_VALUE(action_mask.sizes() == student_logits.sizes(), kOp,
                      "action_mask must have the shape of student_logits ", student_logits.sizes(),
                      " when game_id is None, got ", action_mask.sizes());
  }
  // The kernels divide by tau in float32: tau must be a normal float32, so that neither tau nor 1/tau
  // overflows or is flushed to zero.
  TORCH_CHECK_VALUE(std::isfinite(tau) && tau >= std::numeric_limits<float>::min() &&
                        tau <= std::numeric_limits<float>::max(),
                    kOp, "tau must be a positive finite number in [", std::numeric_limits<float>::min(), ", ",
                    std::numeric_limits<float>::max(), "] (a normal float32, so that 1/tau is finite), got ", tau);

  CheckedXentInputs out;
  out.student_logits = unit_column_stride(student_logits);
  out.teacher_q = unit_column_stride(teacher_q);
  out.action_mask = unit_column_stride(action_mask);
  XentInputs& raw = out.raw;
  raw.rows = rows;
  raw.actions = static_cast<int>(actions);
  raw.dtype = dtype;
  raw.student_logits = out.student_logits.const_data_ptr();
  raw.student_row_stride = out.student_logits.stride(0);
  raw.teacher_q = out.teacher_q.const_data_ptr();
  raw.teacher_row_stride = out.teacher_q.stride(0);
  raw.action_mask = out.action_mask.const_data_ptr<bool>();
  raw.mask_row_stride = out.action_mask.stride(0);
  raw.mask_rows = out.action_mask.size(0);
  if (game_id.has_value()) {
    out.game_id = *game_id;
    raw.game_id_stride = out.game_id.stride(0);
    if (out.game_id.scalar_type() == at::kInt) {
      raw.game_id32 = out.game_id.const_data_ptr<int32_t>();
    } else {
      raw.game_id64 = out.game_id.const_data_ptr<int64_t>();
    }
  }
  raw.tau = tau;
  return out;
}

void check_grad_loss(const at::Tensor& grad_loss, const CheckedXentInputs& inputs) {
  const at::ScalarType expected = loss_dtype(inputs.student_logits.scalar_type());
  TORCH_CHECK_TYPE(grad_loss.scalar_type() == expected, kOp, "grad_loss must be ", expected, " (the loss dtype), got ",
                   grad_loss.scalar_type());
  TORCH_CHECK_VALUE(grad_loss.dim() == 1 && grad_loss.size(0) == inputs.raw.rows, kOp,
                    "grad_loss must have shape [B] = [", inputs.raw.rows, "], got ", grad_loss.sizes());
  check_device(grad_loss, "grad_loss", inputs.student_logits);
}

Reduction parse_reduction(std::string_view reduction) {
  if (reduction == "none") return Reduction::kNone;
  if (reduction == "mean") return Reduction::kMean;
  TORCH_CHECK_VALUE(reduction == "sum", kOp, "reduction must be one of ('none', 'mean', 'sum'), got '", reduction,
                    "'");
  return Reduction::kSum;
}

at::Tensor reduce_loss(const at::Tensor& loss, Reduction reduction) {
  if (reduction == Reduction::kMean) return loss.mean();
  if (reduction == Reduction::kSum) return loss.sum();
  return loss;
}

void check_scale_grad_inputs(const at::Tensor& dloss_dlogits, const at::Tensor& grad_output, Reduction reduction,
                             at::ScalarType dtype) {
  TORCH_CHECK_VALUE(dloss_dlogits.dim() == 2, kOp, "dloss_dlogits must be 2-D [B, A], got shape ",
                    dloss_dlogits.sizes());
  const at::ScalarType expected = loss_dtype(dtype);
  TORCH_CHECK_TYPE(dloss_dlogits.scalar_type() == expected && grad_output.scalar_type() == expected, kOp,
                   "dloss_dlogits and grad_output must be ", expected, " (the loss dtype of ", dtype, "), got ",
                   dloss_dlogits.scalar_type(), " and ", grad_output.scalar_type());
  if (reduction == Reduction::kNone) {
    TORCH_CHECK_VALUE(grad_output.dim() == 1 && grad_output.size(0) == dloss_dlogits.size(0), kOp,
                      "grad_output must have shape [B] = [", dloss_dlogits.size(0), "], got ", grad_output.sizes());
  } else {
    TORCH_CHECK_VALUE(grad_output.dim() == 0, kOp, "grad_output must be a scalar for reduction '",
                      reduction == Reduction::kMean ? "mean" : "sum", "', got shape ", grad_output.sizes());
  }
  TORCH_CHECK_VALUE(grad_output.device() == dloss_dlogits.device(), kOp, "grad_output is on ", grad_output.device(),
                    " but dloss_dlogits is on ", dloss_dlogits.device());
}

void raise_for_status(const XentStatus& status, const CheckedXentInputs& inputs) {
  if (status.first_row_with_bad_game_id != XentStatus::kNoRow) {
    const auto row = static_cast<int64_t>(status.first_row_with_bad_game_id);
    TORCH_CHECK_INDEX(false, kOp, "game_id[", row, "] = ", inputs.game_id[row].item<int64_t>(),
                      " is out of range for an action_mask table of ", inputs.raw.mask_rows, " games");
  }
  if (status.first_row_without_legal_action != XentStatus::kNoRow) {
    const auto row = static_cast<int64_t>(status.first_row_without_legal_action);
    if (inputs.game_id.defined()) {
      TORCH_CHECK_VALUE(false, kOp, "row ", row, " has no legal action: its game, game_id[", row,
                        "] = ", inputs.game_id[row].item<int64_t>(), ", has an all-False action_mask row");
    }
    TORCH_CHECK_VALUE(false, kOp, "row ", row, " has no legal action: action_mask[", row, "] is all False");
  }
}

}  // namespace actormimic_fast::kernels
