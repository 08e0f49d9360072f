// CPU backend of masked_softmax_xent: the torch glue around the SIMD tile kernels of
// masked_softmax_xent_cpu_kernel.h (math and conventions in masked_softmax_xent.h). Checks the tensors,
// allocates the outputs and runs the tiles under at::parallel_for, chunks of whole tiles per thread, so
// results do not depend on the thread count. Rows without a legal action or with a game_id out of range get
// a NaN loss; in check mode (check=True, and the CPU's default check=None: the tiles record failed rows as
// they compute, at no measurable cost) the first such row is raised (ValueError / IndexError) on the caller's
// thread after the parallel loop, so no exception crosses a worker. check=False leaves the NaN.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <optional>
#include <string_view>
#include <tuple>

#include "kernels/masked_softmax_xent.h"
#include "kernels/masked_softmax_xent_args.h"
#include "kernels/masked_softmax_xent_cpu_kernel.h"

namespace actormimic_fast::kernels {

namespace {

constexpr int64_t kGrainRows = 1024;  // about 30 us of work: smaller batches stay on the caller's thread

// The forward over every row (loss and, when dloss_dlogits is set, p - q); failed rows are NaN and, when
// status is set (check mode), recorded in it.
void forward_rows(const XentInputs& in, void* loss, void* dloss_dlogits, XentStatus* status) {
  uint32_t storage[kMaxTableGames];
  const uint32_t* game_bits = table_legal_bits(in, storage);
  at::parallel_for(0, cpu_tile_count(in.rows), kGrainRows / kCpuTileRows, [&](int64_t tile_begin, int64_t tile_end) {
    masked_softmax_xent_forward_cpu_tiles(in, game_bits, tile_begin, tile_end, loss, dloss_dlogits, status);
  });
}

void backward_rows(const XentInputs& in, const XentGradients& grads) {
  uint32_t storage[kMaxTableGames];
  const uint32_t* game_bits = table_legal_bits(in, storage);
  at::parallel_for(0, cpu_tile_count(in.rows), kGrainRows / kCpuTileRows, [&](int64_t tile_begin, int64_t tile_end) {
    masked_softmax_xent_backward_cpu_tiles(in, game_bits, grads, tile_begin, tile_end);
  });
}

// The reduction as one serial loop accumulating in double: thread-count independent, and at small B far
// cheaper than a TensorIterator reduction.
at::Tensor reduce_loss_cpu(const at::Tensor& loss, Reduction reduction) {
  if (reduction == Reduction::kNone) return loss;
  const int64_t rows = loss.size(0);
  at::Tensor out = at::empty({}, loss.options());
  AT_DISPATCH_FLOATING_TYPES(loss.scalar_type(), "masked_softmax_xent reduction", [&] {
    const scalar_t* values = loss.const_data_ptr<scalar_t>();
    double total = 0;
    for (int64_t b = 0; b < rows; ++b) total += values[b];
    if (reduction == Reduction::kMean) total /= static_cast<double>(rows);
    *out.mutable_data_ptr<scalar_t>() = static_cast<scalar_t>(total);
  });
  return out;
}

at::Tensor masked_softmax_xent_cpu(const at::Tensor& student_logits, const at::Tensor& teacher_q,
                                   const at::Tensor& action_mask, const std::optional<at::Tensor>& game_id,
                                   double tau, std::string_view reduction, std::optional<bool> check_arg) {
  const bool check = check_arg.value_or(true);
  const Reduction reduce = parse_reduction(reduction);
  const CheckedXentInputs inputs =
      check_xent_inputs(student_logits, teacher_q, action_mask, game_id, tau, c10::DeviceType::CPU);
  at::Tensor loss = at::empty({inputs.raw.rows}, student_logits.options().dtype(loss_dtype(student_logits.scalar_type())));
  XentStatus status;
  forward_rows(inputs.raw, loss.mutable_data_ptr(), nullptr, check ? &status : nullptr);
  if (check) raise_for_status(status, inputs);
  return reduce_loss_cpu(loss, reduce);
}

std::tuple<at::Tensor, at::Tensor> masked_softmax_xent_and_grad_cpu(const at::Tensor& student_logits,
                                                                    const at::Tensor& teacher_q,
                                                                    const at::Tensor& action_mask,
                                                                    const std::optional<at::Tensor>& game_id,
                                                                    double tau, std::string_view reduction,
                                                                    std::optional<bool> check_arg) {
  const bool check = check_arg.value_or(true);
  const Reduction reduce = parse_reduction(reduction);
  const CheckedXentInputs inputs =
      check_xent_inputs(student_logits, teacher_q, action_mask, game_id, tau, c10::DeviceType::CPU);
  const auto options = student_logits.options().dtype(loss_dtype(student_logits.scalar_type()));
  at::Tensor loss = at::empty({inputs.raw.rows}, options);
  at::Tensor grad_student = at::empty(student_logits.sizes(), options);
  XentStatus status;
  forward_rows(inputs.raw, loss.mutable_data_ptr(), grad_student.mutable_data_ptr(), check ? &status : nullptr);
  if (check) raise_for_status(status, inputs);
  return {reduce_loss_cpu(loss, reduce), grad_student};
}

std::tuple<at::Tensor, at::Tensor> masked_softmax_xent_backward_cpu(
    const at::Tensor& grad_loss, const at::Tensor& student_logits, const at::Tensor& teacher_q,
    const at::Tensor& action_mask, const std::optional<at::Tensor>& game_id, double tau, bool teacher_grad) {
  const CheckedXentInputs inputs =
      check_xent_inputs(student_logits, teacher_q, action_mask, game_id, tau, c10::DeviceType::CPU);
  check_grad_loss(grad_loss, inputs);
  at::Tensor grad_student = at::empty(student_logits.sizes(), student_logits.options());
  at::Tensor grad_teacher = teacher_grad ? at::empty(teacher_q.sizes(), teacher_q.options())
                                         : at::empty({0}, teacher_q.options());
  XentGradients grads;
  grads.grad_loss = grad_loss.const_data_ptr();
  grads.grad_loss_stride = grad_loss.stride(0);
  grads.grad_student_logits = grad_student.mutable_data_ptr();
  grads.grad_teacher_q = teacher_grad ? grad_teacher.mutable_data_ptr() : nullptr;
  backward_rows(inputs.raw, grads);
  return {grad_student, grad_teacher};
}

// One loop, no TensorIterator: at small B this backward is otherwise dominated by the fixed costs of the
// three elementwise ops it replaces (divide by B, multiply, cast).
at::Tensor masked_softmax_xent_scale_grad_cpu(const at::Tensor& dloss_dlogits, const at::Tensor& grad_output,
                                              std::string_view reduction_name, at::ScalarType dtype) {
  const Reduction reduction = parse_reduction(reduction_name);
  check_scale_grad_inputs(dloss_dlogits, grad_output, reduction, dtype);
  const at::Tensor dloss_contiguous = dloss_dlogits.contiguous();
  const int64_t rows = dloss_dlogits.size(0);
  const int64_t actions = dloss_dlogits.size(1);
  at::Tensor grad = at::empty(dloss_dlogits.sizes(), dloss_dlogits.options().dtype(dtype));
  const int64_t grad_stride = reduction == Reduction::kNone ? grad_output.stride(0) : 0;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "masked_softmax_xent backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t* dloss = dloss_contiguous.const_data_ptr<acc_t>();
    const acc_t* g = grad_output.const_data_ptr<acc_t>();
    scalar_t* out = grad.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, rows, 32 * kGrainRows, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        // The same float operations as mean's backward (g / B) and the backward kernel (g * (p - q)).
        const acc_t g_b = reduction == Reduction::kMean ? g[b * grad_stride] / static_cast<acc_t>(rows)
                                                        : g[b * grad_stride];
        for (int64_t a = 0; a < actions; ++a) {
          out[b * actions + a] = static_cast<scalar_t>(g_b * dloss[b * actions + a]);
        }
      }
    });
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(actormimic_fast, CPU, m) {
  m.impl("masked_softmax_xent", &masked_softmax_xent_cpu);
  m.impl("masked_softmax_xent_and_grad", &masked_softmax_xent_and_grad_cpu);
  m.impl("masked_softmax_xent_scale_grad", &masked_softmax_xent_scale_grad_cpu);
  m.impl("masked_softmax_xent_backward", &masked_softmax_xent_backward_cpu);
}

}  // namespace actormimic_fast::kernels
