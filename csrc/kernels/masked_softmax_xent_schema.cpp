// Schemas of the fused ops, declared once, beside their kernels; each backend registers its kernels with
// TORCH_LIBRARY_IMPL (masked_softmax_xent_cpu.cpp, cuda/masked_softmax_xent_cuda.cpp),
// masked_softmax_xent_autograd.cpp registers the Autograd kernel of masked_softmax_xent, and
// actormimic_fast/native/ops.py adds the fake (meta) kernels. Loading actormimic_fast._C runs these registrations.
#include <torch/library.h>

TORCH_LIBRARY(actormimic_fast, m) {
  // Actor-Mimic policy loss: -sum over legal a of softmax(teacher_q / tau)_a log softmax(student_logits)_a per
  // row, then reduced ("none": [B], "mean" or "sum": a scalar). Reducing here keeps a training step's autograd
  // graph at one node. A row without a legal action or with a game_id out of range has no loss: check=True
  // raises for it (ValueError / IndexError; one host read-back on CUDA), check=False gives it a NaN loss, and
  // check=None (the default) is True on CPU and a device-side assertion on CUDA (no host synchronization).
  m.def("masked_softmax_xent(Tensor student_logits, Tensor teacher_q, Tensor action_mask, Tensor? game_id, "
        "float tau, str reduction=\"none\", bool? check=None) -> Tensor",
        {at::Tag::pt2_compliant_tag});
  // The (reduced) loss and d loss_b / d student_logits[b] = softmax_legal(student_logits) - softmax_legal(teacher_q
  // / tau) ([B, A] in the loss dtype, 0 at illegal actions; not scaled by the reduction), from one pass: what the
  // CPU autograd kernel saves for the backward when only student_logits needs a gradient.
  m.def("masked_softmax_xent_and_grad(Tensor student_logits, Tensor teacher_q, Tensor action_mask, "
        "Tensor? game_id, float tau, str reduction=\"none\", bool? check=None) -> (Tensor, Tensor)",
        {at::Tag::pt2_compliant_tag});
  // The student_logits gradient from masked_softmax_xent_and_grad's saved d loss / d logits and the loss's
  // upstream gradient grad_output (shaped like that reduced loss), in dtype (the inputs' dtype).
  m.def("masked_softmax_xent_scale_grad(Tensor dloss_dlogits, Tensor grad_output, str reduction, "
        "ScalarType dtype) -> Tensor",
        {at::Tag::pt2_compliant_tag});
  // Gradients w.r.t. student_logits and (when teacher_grad, else an empty tensor) teacher_q; recomputes
  // the row statistics from the inputs.
  m.def("masked_softmax_xent_backward(Tensor grad_loss, Tensor student_logits, Tensor teacher_q, "
        "Tensor action_mask, Tensor? game_id, float tau, bool teacher_grad) -> (Tensor, Tensor)",
        {at::Tag::pt2_compliant_tag});
}
