// Autograd of masked_softmax_xent, in C++ so that a training step pays no Python on the way (the Python
// register_autograd wrapper cost ~60 us per step, more than the whole eager reference at B = 32), and with
// the reduction inside the node (no separate mean node and kernel in the graph).
// Forward: redispatches below autograd to the backend kernels for the per-row loss, then reduces. What it
// keeps for the backward depends on which gradients are needed:
//   - only student_logits on CPU: the forward runs masked_softmax_xent_and_grad and keeps d loss / d logits
//     = p - q ([B, A], loss dtype); the backward is one multiply by grad_loss (the CPU kernel would
//     otherwise recompute every exp: ~3 ns/row instead of ~50).
//   - teacher_q too, or on CUDA: it keeps the inputs and the backward op recomputes the row statistics (on
//     a GPU both designs move about the same bytes, and this one launches a kernel fewer per step).
// Stateless and thread-safe: each call owns its graph node. First order only, like the kernels: a double
// backward raises NotImplementedError. The forward's check flag goes to the backend; failed rows of an
// unchecked forward have NaN losses and get NaN gradients.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <optional>
#include <string>
#include <string_view>
#include <tuple>

#include "kernels/masked_softmax_xent_args.h"

namespace actormimic_fast::kernels {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor forward_op(const at::Tensor& student_logits, const at::Tensor& teacher_q, const at::Tensor& action_mask,
                      const std::optional<at::Tensor>& game_id, double tau, std::string_view reduction,
                      std::optional<bool> check) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("actormimic_fast::masked_softmax_xent", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                               const std::optional<at::Tensor>&, double, std::string_view,
                                               std::optional<bool>)>();
  return op.call(student_logits, teacher_q, action_mask, game_id, tau, reduction, check);
}

std::tuple<at::Tensor, at::Tensor> forward_and_grad_op(const at::Tensor& student_logits, const at::Tensor& teacher_q,
                                                       const at::Tensor& action_mask,
                                                       const std::optional<at::Tensor>& game_id, double tau,
                                                       std::string_view reduction, std::optional<bool> check) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("actormimic_fast::masked_softmax_xent_and_grad", "")
                             .typed<std::tuple<at::Tensor, at::Tensor>(
                                 const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                 const std::optional<at::Tensor>&, double, std::string_view,
                                 std::optional<bool>)>();
  return op.call(student_logits, teacher_q, action_mask, game_id, tau, reduction, check);
}

at::Tensor scale_grad_op(const at::Tensor& dloss_dlogits, const at::Tensor& grad_output, std::string_view reduction,
                         at::ScalarType dtype) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("actormimic_fast::masked_softmax_xent_scale_grad", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, std::string_view,
                                               at::ScalarType)>();
  return op.call(dloss_dlogits, grad_output, reduction, dtype);
}

std::tuple<at::Tensor, at::Tensor> backward_op(const at::Tensor& grad_loss, const at::Tensor& student_logits,
                                               const at::Tensor& teacher_q, const at::Tensor& action_mask,
                                               const std::optional<at::Tensor>& game_id, double tau,
                                               bool teacher_grad) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("actormimic_fast::masked_softmax_xent_backward", "")
                             .typed<std::tuple<at::Tensor, at::Tensor>(
                                 const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                 const std::optional<at::Tensor>&, double, bool)>();
  return op.call(grad_loss, student_logits, teacher_q, action_mask, game_id, tau, teacher_grad);
}

class MaskedSoftmaxXentFunction : public torch::autograd::Function<MaskedSoftmaxXentFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& student_logits, const at::Tensor& teacher_q,
                            const at::Tensor& action_mask, const std::optional<at::Tensor>& game_id, double tau,
                            std::string_view reduction, std::optional<bool> check) {
    const at::AutoDispatchBelowADInplaceOrView below_autograd;
    const bool keep_grad = !teacher_q.requires_grad() && student_logits.device().is_cpu();
    ctx->saved_data["keep_grad"] = keep_grad;
    ctx->saved_data["reduction"] = std::string(reduction);
    if (keep_grad) {
      auto [loss, grad_student] =
          forward_and_grad_op(student_logits, teacher_q, action_mask, game_id, tau, reduction, check);
      ctx->saved_data["dtype"] = student_logits.scalar_type();
      ctx->save_for_backward({grad_student});
      return loss;
    }
    ctx->saved_data["tau"] = tau;
    ctx->save_for_backward({student_logits, teacher_q, action_mask, game_id.value_or(at::Tensor())});
    return forward_op(student_logits, teacher_q, action_mask, game_id, tau, reduction, check);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    // Grad mode is on in a backward only under create_graph=True. The backward kernels are not differentiable
    // (and the saved p - q is not connected to student_logits), so a double backward would silently get a
    // gradient without grad_fn: refuse it.
    TORCH_CHECK_NOT_IMPLEMENTED(!at::GradMode::is_enabled(),
                                "masked_softmax_xent: double backward (create_graph=True) is not supported; the "
                                "op is differentiable once");
    const variable_list saved = ctx->get_saved_variables();
    const std::string_view reduction_name = ctx->saved_data["reduction"].toStringView();
    if (ctx->saved_data["keep_grad"].toBool()) {
      const at::Tensor grad_student =
          scale_grad_op(saved[0], grad_outputs[0], reduction_name, ctx->saved_data["dtype"].toScalarType());
      return {grad_student, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    }
    // d output / d loss_b: grad_outputs[0] per row, or the same for every row (mean: divided by B, as
    // mean's own backward does), as a stride-0 view.
    const Reduction reduction = parse_reduction(reduction_name);
    const int64_t rows = saved[0].size(0);
    at::Tensor grad_loss = grad_outputs[0];
    if (reduction == Reduction::kMean) grad_loss = grad_loss / rows;
    if (reduction != Reduction::kNone) grad_loss = grad_loss.expand({rows});
    const bool teacher_grad = ctx->needs_input_grad(1);
    const std::optional<at::Tensor> game_id = saved[3].defined() ? std::optional<at::Tensor>(saved[3]) : std::nullopt;
    auto [grad_student, grad_teacher] = backward_op(grad_loss, saved[0], saved[1], saved[2], game_id,
                                                    ctx->saved_data["tau"].toDouble(), teacher_grad);
    return {ctx->needs_input_grad(0) ? grad_student : at::Tensor(), teacher_grad ? grad_teacher : at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor masked_softmax_xent_autograd(const at::Tensor& student_logits, const at::Tensor& teacher_q,
                                        const at::Tensor& action_mask, const std::optional<at::Tensor>& game_id,
                                        double tau, std::string_view reduction, std::optional<bool> check) {
  if (!at::GradMode::is_enabled() || !(student_logits.requires_grad() || teacher_q.requires_grad())) {
    const at::AutoDispatchBelowADInplaceOrView below_autograd;
    return forward_op(student_logits, teacher_q, action_mask, game_id, tau, reduction, check);
  }
  return MaskedSoftmaxXentFunction::apply(student_logits, teacher_q, action_mask, game_id, tau, reduction, check);
}

}  // namespace

TORCH_LIBRARY_IMPL(actormimic_fast, Autograd, m) {
  m.impl("masked_softmax_xent", &masked_softmax_xent_autograd);
}

}  // namespace actormimic_fast::kernels
