// CUDA backend of masked_softmax_xent: torch glue around the raw launchers of masked_softmax_xent_kernel.cu.
// Checks the tensors (host-side metadata only), sets the device, launches on the current stream and checks
// each launch. No value is read back to the host: rows the kernel cannot compute (no legal action, game_id
// out of range) get a NaN loss, so forward and backward never synchronize and can be captured in a CUDA graph.
// The default check=None keeps that property and still refuses such rows: the forward records them in a
// device XentStatus and a device-side assertion (at::_assert_async) on it fails the stream, so the next
// synchronization raises instead of training on NaN. Only check=True reads back the 16 bytes of row status to
// raise ValueError / IndexError naming the row (one stream synchronization); it refuses to run under CUDA
// graph capture, where no synchronization is possible. check=False launches the forward alone.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cuda_runtime_api.h>

#include <tuple>

#include "kernels/masked_softmax_xent.h"
#include "kernels/masked_softmax_xent_args.h"

namespace actormimic_fast::kernels {

namespace {

static_assert(sizeof(XentStatus) == 2 * sizeof(int64_t), "XentStatus is read back as two int64 values");

// The per-row loss; NaN for rows that have none (check=False), a device-side assertion for them (check=None),
// or the error for the first such row (check=True).
at::Tensor per_row_loss_cuda(const at::Tensor& student_logits, const at::Tensor& teacher_q,
                             const at::Tensor& action_mask, const std::optional<at::Tensor>& game_id, double tau,
                             std::optional<bool> check) {
  const CheckedXentInputs inputs =
      check_xent_inputs(student_logits, teacher_q, action_mask, game_id, tau, c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard guard(student_logits.device());
  at::Tensor loss = at::empty({inputs.raw.rows}, student_logits.options().dtype(loss_dtype(student_logits.scalar_type())));
  if (inputs.raw.rows == 0) return loss;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (check.has_value() && !*check) {
    launch_masked_softmax_xent_forward(inputs.raw, loss.mutable_data_ptr(), nullptr, stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return loss;
  }
  if (!check.has_value()) {
    // Stream-ordered, allocation from the caching allocator (a graph's private pool under capture): no sync.
    at::Tensor status = at::empty({2}, student_logits.options().dtype(at::kLong));
    C10_CUDA_CHECK(cudaMemsetAsync(status.mutable_data_ptr(), 0xFF, sizeof(XentStatus), stream));  // kNoRow
    launch_masked_softmax_xent_forward(inputs.raw, loss.mutable_data_ptr(),
                                       static_cast<XentStatus*>(status.mutable_data_ptr()), stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    // kNoRow (all bits set) reads as -1 in int64: every row computed.
    at::_assert_async(status.eq(-1).all(),
                      "masked_softmax_xent: a row has no legal action (an all-False action_mask row) or a game_id "
                      "outside [0, G); call with check=True to name the row, or check=False for NaN losses");
    return loss;
  }

  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  C10_CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
  TORCH_CHECK(capture == cudaStreamCaptureStatusNone,
              "masked_softmax_xent: check=True reads the row status back to the host, which is impossible while "
              "the stream is captured into a CUDA graph; capture with check=False (rows without a legal action "
              "then give a NaN loss) and validate static mask tables once with ops.check_action_masks");
  at::Tensor status = at::empty({2}, student_logits.options().dtype(at::kLong));
  C10_CUDA_CHECK(cudaMemsetAsync(status.mutable_data_ptr(), 0xFF, sizeof(XentStatus), stream));  // kNoRow
  launch_masked_softmax_xent_forward(inputs.raw, loss.mutable_data_ptr(),
                                     static_cast<XentStatus*>(status.mutable_data_ptr()), stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const at::Tensor host = status.cpu();  // waits for the kernel: the one synchronization of check mode
  XentStatus read_back;
  read_back.first_row_without_legal_action = static_cast<unsigned long long>(host[0].item<int64_t>());
  read_back.first_row_with_bad_game_id = static_cast<unsigned long long>(host[1].item<int64_t>());
  raise_for_status(read_back, inputs);
  return loss;
}

at::Tensor masked_softmax_xent_cuda(const at::Tensor& student_logits, const at::Tensor& teacher_q,
                                    const at::Tensor& action_mask, const std::optional<at::Tensor>& game_id,
                                    double tau, std::string_view reduction, std::optional<bool> check) {
  const Reduction reduce = parse_reduction(reduction);
  return reduce_loss(per_row_loss_cuda(student_logits, teacher_q, action_mask, game_id, tau, check), reduce);
}

std::tuple<at::Tensor, at::Tensor> masked_softmax_xent_backward_cuda(
    const at::Tensor& grad_loss, const at::Tensor& student_logits, const at::Tensor& teacher_q,
    const at::Tensor& action_mask, const std::optional<at::Tensor>& game_id, double tau, bool teacher_grad) {
  const CheckedXentInputs inputs =
      check_xent_inputs(student_logits, teacher_q, action_mask, game_id, tau, c10::DeviceType::CUDA);
  check_grad_loss(grad_loss, inputs);
  const c10::cuda::CUDAGuard guard(student_logits.device());
  at::Tensor grad_student = at::empty(student_logits.sizes(), student_logits.options());
  at::Tensor grad_teacher = teacher_grad ? at::empty(teacher_q.sizes(), teacher_q.options())
                                         : at::empty({0}, teacher_q.options());
  if (inputs.raw.rows == 0) return {grad_student, grad_teacher};

  XentGradients grads;
  grads.grad_loss = grad_loss.const_data_ptr();
  grads.grad_loss_stride = grad_loss.stride(0);
  grads.grad_student_logits = grad_student.mutable_data_ptr();
  grads.grad_teacher_q = teacher_grad ? grad_teacher.mutable_data_ptr() : nullptr;
  launch_masked_softmax_xent_backward(inputs.raw, grads, c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {grad_student, grad_teacher};
}

// The loss, then d loss / d student_logits as the backward kernel's result for a unit upstream gradient,
// in the loss dtype (16-bit inputs are widened first; the math is float32 either way). Three kernels: the
// autograd kernel asks for this only on CPU, where it spares the backward's exps.
std::tuple<at::Tensor, at::Tensor> masked_softmax_xent_and_grad_cuda(const at::Tensor& student_logits,
                                                                     const at::Tensor& teacher_q,
                                                                     const at::Tensor& action_mask,
                                                                     const std::optional<at::Tensor>& game_id,
                                                                     double tau, std::string_view reduction,
                                                                     std::optional<bool> check) {
  const Reduction reduce = parse_reduction(reduction);
  at::Tensor loss = per_row_loss_cuda(student_logits, teacher_q, action_mask, game_id, tau, check);
  const at::ScalarType math = loss.scalar_type();
  const at::Tensor unit = at::ones({1}, loss.options()).expand({loss.size(0)});
  at::Tensor grad_student = std::get<0>(masked_softmax_xent_backward_cuda(
      unit, student_logits.to(math), teacher_q.to(math), action_mask, game_id, tau, false));
  return {reduce_loss(loss, reduce), grad_student};
}

// Elementwise ATen ops: the autograd kernel only calls this op on CPU.
at::Tensor masked_softmax_xent_scale_grad_cuda(const at::Tensor& dloss_dlogits, const at::Tensor& grad_output,
                                               std::string_view reduction_name, at::ScalarType dtype) {
  const Reduction reduction = parse_reduction(reduction_name);
  check_scale_grad_inputs(dloss_dlogits, grad_output, reduction, dtype);
  const int64_t rows = dloss_dlogits.size(0);
  at::Tensor grad_loss = reduction == Reduction::kMean ? grad_output / rows : grad_output;
  grad_loss = reduction == Reduction::kNone ? grad_loss : grad_loss.expand({rows});
  return (grad_loss.unsqueeze(1) * dloss_dlogits).to(dtype);
}

}  // namespace

TORCH_LIBRARY_IMPL(actormimic_fast, CUDA, m) {
  m.impl("masked_softmax_xent", &masked_softmax_xent_cuda);
  m.impl("masked_softmax_xent_and_grad", &masked_softmax_xent_and_grad_cuda);
  m.impl("masked_softmax_xent_scale_grad", &masked_softmax_xent_scale_grad_cuda);
  m.impl("masked_softmax_xent_backward", &masked_softmax_xent_backward_cuda);
}

}  // namespace actormimic_fast::kernels
