// Fused masked softmax cross-entropy: the Actor-Mimic policy-regression loss (SPEC section 2, eq. 4).
//
// Math, for row b with legal set L = {a : legal(b, a)}, student logits s = student_logits[b] and teacher
// values t = teacher_q[b] / tau, all sums over L:
//   q_a     = exp(t_a) / sum_c exp(t_c)                    teacher policy
//   log p_a = s_a - log sum_c exp(s_c)                      student log-policy
//   loss_b  = - sum_a q_a log p_a
//   d loss_b / d s_a            = p_a - q_a                 0 outside L
//   d loss_b / d teacher_q[b,a] = -(q_a / tau) (s_a - E_q[s])   (= -(q_a / tau)(log p_a + loss_b)), 0 outside L
// Masking convention: legal(b, a) = action_mask[b, a] (per-row mask [B, A]) or action_mask[game_id[b], a]
// (per-game table [G, A]). Values outside L are never read into the arithmetic, so garbage there (inf,
// NaN) is ignored, and their gradients are exactly 0. A row with an empty L, or a game_id outside
// [0, G), has no loss: the forward writes NaN for it and the backward NaN gradients. No backend reads a value
// back to the host to decide anything (a CUDA forward and backward never synchronize): the op's check=True
// mode alone collects such rows in an XentStatus and raises for the first (ValueError / IndexError), and
// static per-game tables are meant to be validated once where they are made (ops.check_action_masks).
// tau is a normal float32 (checked on the host), so t = teacher_q / tau only overflows for teacher values
// beyond float32's range times tau; such a row's loss is NaN.
// Stability trick: with m_s = max s, Z_s = sum exp(s - m_s) in [1, |L|], and m_t, Z_t likewise,
//   loss_b = log Z_s + sum_a q_a (m_s - s_a),   q_a = exp(t_a - m_t) / Z_t,
// a sum of non-negative terms: no exp overflows and nothing cancels, so logits of +-1e4 give a loss
// accurate to the rounding of the inputs. The teacher gradient takes s_a - E_q[s] relative to s at the
// teacher's argmax, which stays accurate when q is nearly one-hot (small tau). Math is in float32 for
// float32/float16/bfloat16 inputs and float64 for float64; the loss is returned in that math type.
//
// Data flow: the op glue (masked_softmax_xent_cpu.cpp, cuda/masked_softmax_xent_cuda.cpp) checks the
// tensors (masked_softmax_xent_args.h) and fills the plain structs below; the CPU tile kernels
// (masked_softmax_xent_cpu_kernel.h) and the CUDA kernels read only these, so neither kernel file needs a
// torch tensor or dispatcher header (the .cu file includes no torch header at all). Both backends are stateless and
// thread-safe: every call owns its outputs. The backward kernel recomputes the row statistics from the
// inputs; on CPU the autograd kernel (masked_softmax_xent_autograd.cpp) instead keeps the forward's p - q
// when only the student gradient is needed, and the backward is then one scaling of it.
#pragma once

#include <cstdint>

struct CUstream_st;  // cudaStream_t is CUstream_st*; declared here so this header needs no CUDA header

namespace actormimic_fast::kernels {

inline constexpr int kMaxActions = 32;  // the full Atari set is 18; a row fits in the registers of 8 CUDA lanes

// Element type of student_logits and teacher_q (both share one).
enum class ScalarType : int { kFloat32, kFloat16, kBFloat16, kFloat64 };

// One batch: raw pointers and row strides in elements (columns are contiguous: stride 1).
struct XentInputs {
  int64_t rows = 0;                  // B
  int actions = 0;                   // A, 1..kMaxActions
  ScalarType dtype = ScalarType::kFloat32;
  const void* student_logits = nullptr;
  int64_t student_row_stride = 0;
  const void* teacher_q = nullptr;
  int64_t teacher_row_stride = 0;
  const bool* action_mask = nullptr;  // [B, A], or [G, A] when a game_id pointer is set
  int64_t mask_row_stride = 0;
  int64_t mask_rows = 0;              // B or G
  const int32_t* game_id32 = nullptr;  // at most one of game_id32 / game_id64 is set
  const int64_t* game_id64 = nullptr;
  int64_t game_id_stride = 0;
  double tau = 1.0;
};

// Rows the forward could not compute (check mode only); a field is kNoRow when no row failed. Written by
// atomic min, so each holds the first offending row whatever the schedule.
struct XentStatus {
  static constexpr unsigned long long kNoRow = ~0ull;
  unsigned long long first_row_without_legal_action = kNoRow;
  unsigned long long first_row_with_bad_game_id = kNoRow;
};

// Upstream gradient (math type, stride grad_loss_stride: 0 when it is an expanded scalar, as after
// mean()) and the gradient outputs (input dtype).
struct XentGradients {
  const void* grad_loss = nullptr;
  int64_t grad_loss_stride = 0;
  void* grad_student_logits = nullptr;  // [B, A] contiguous, always written
  void* grad_teacher_q = nullptr;       // [B, A] contiguous, or nullptr to skip
};

/// Launches the forward on `stream`: loss[b] for every row (NaN for failed rows) and, when `status` is not
/// null, failed rows into that device XentStatus (initialised to kNoRow by the caller). No launch when rows == 0.
void launch_masked_softmax_xent_forward(const XentInputs& in, void* loss, XentStatus* status, CUstream_st* stream);

/// Launches the backward on `stream`, recomputing the row statistics from the inputs.
void launch_masked_softmax_xent_backward(const XentInputs& in, const XentGradients& grads, CUstream_st* stream);

}  // namespace actormimic_fast::kernels
