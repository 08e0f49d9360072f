// CUDA kernels of masked_softmax_xent (math and conventions in ../masked_softmax_xent.h) and their plain C++
// launchers. Only the CUDA runtime is included, no torch header, so this file compiles with nvcc alone
// (tests/test_cuda_compile.py does that for sm_80 and sm_90 on machines without a GPU).
//
// Layout: a group of kLanes = 8 consecutive lanes owns one row; lane l holds actions l, l + 8, l + 16,
// l + 24 (A <= 32) in registers, so a warp does 4 rows and a 128-thread block 16. Row statistics are
// reduced with 3 xor-shuffles inside the group. Loads of one row by its 8 lanes are contiguous.
// The forward writes only the loss; the backward recomputes the statistics (it reads the same bytes a
// saved [B, A] activation would cost, and nothing [B, A] stays alive between the two).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/masked_softmax_xent.h"

namespace actormimic_fast::kernels {

namespace {

constexpr int kLanes = 8;                               // lanes per row
constexpr int kPerLane = kMaxActions / kLanes;          // actions per lane
constexpr int kThreads = 128;
constexpr int kRowsPerBlock = kThreads / kLanes;
constexpr unsigned kFullMask = 0xffffffffu;

static_assert(kPerLane * kLanes == kMaxActions, "kMaxActions must be a multiple of kLanes");

// Input element <-> math type (float for 16/32-bit inputs, double for float64).
template <typename scalar_t>
struct Io;
template <>
struct Io<float> {
  using acc_t = float;
  static __device__ __forceinline__ float load(float v) { return v; }
  static __device__ __forceinline__ float store(float v) { return v; }
};
template <>
struct Io<double> {
  using acc_t = double;
  static __device__ __forceinline__ double load(double v) { return v; }
  static __device__ __forceinline__ double store(double v) { return v; }
};
template <>
struct Io<__half> {
  using acc_t = float;
  static __device__ __forceinline__ float load(__half v) { return __half2float(v); }
  static __device__ __forceinline__ __half store(float v) { return __float2half_rn(v); }
};
template <>
struct Io<__nv_bfloat16> {
  using acc_t = float;
  static __device__ __forceinline__ float load(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __forceinline__ __nv_bfloat16 store(float v) { return __float2bfloat16_rn(v); }
};

__device__ __forceinline__ float exp_acc(float x) { return expf(x); }
__device__ __forceinline__ double exp_acc(double x) { return exp(x); }
__device__ __forceinline__ float log_acc(float x) { return logf(x); }
__device__ __forceinline__ double log_acc(double x) { return log(x); }

template <typename T>
__device__ __forceinline__ T group_max(T v) {
#pragma unroll
  for (int offset = kLanes / 2; offset > 0; offset /= 2) v = fmax(v, __shfl_xor_sync(kFullMask, v, offset, kLanes));
  return v;
}

template <typename T>
__device__ __forceinline__ T group_sum(T v) {
#pragma unroll
  for (int offset = kLanes / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(kFullMask, v, offset, kLanes);
  return v;
}

__device__ __forceinline__ int group_or(int v) {
#pragma unroll
  for (int offset = kLanes / 2; offset > 0; offset /= 2) v |= __shfl_xor_sync(kFullMask, v, offset, kLanes);
  return v;
}

// One row in the registers of its 8 lanes, with the statistics of the stability trick: m_s, m_t, Z_s, Z_t.
// Every lane of the warp must call the methods (they shuffle), also for rows past the batch.
template <typename scalar_t>
struct RowState {
  using acc_t = typename Io<scalar_t>::acc_t;
  bool legal[kPerLane];
  acc_t s[kPerLane];    // student logits, -inf where illegal
  acc_t t[kPerLane];    // teacher_q / tau, -inf where illegal
  acc_t e_s[kPerLane];  // exp(s - m_s), 0 where illegal
  acc_t e_t[kPerLane];  // exp(t - m_t), 0 where illegal
  acc_t max_s, max_t, sum_s, sum_t;
  bool ok;              // the game id is in range and the row has a legal action
  bool bad_game;

  /// Reads row `row` (nothing when !active) and reduces its statistics over the group.
  __device__ __forceinline__ void load(const XentInputs& in, int64_t row, int lane, bool active) {
    const acc_t neg_inf = -acc_t(INFINITY);
    int64_t mask_row = row;
    if (active && in.game_id32 != nullptr) mask_row = in.game_id32[row * in.game_id_stride];
    if (active && in.game_id64 != nullptr) mask_row = in.game_id64[row * in.game_id_stride];
    bad_game = active && (mask_row < 0 || mask_row >= in.mask_rows);
    const bool readable = active && !bad_game;
    const bool* mask = in.action_mask + (readable ? mask_row : 0) * in.mask_row_stride;
    const int64_t read_row = readable ? row : 0;  // pointers of rows past the batch stay in bounds
    const auto* student = static_cast<const scalar_t*>(in.student_logits) + read_row * in.student_row_stride;
    const auto* teacher = static_cast<const scalar_t*>(in.teacher_q) + read_row * in.teacher_row_stride;
    const acc_t tau = static_cast<acc_t>(in.tau);
    acc_t local_max_s = neg_inf, local_max_t = neg_inf;
    int any = 0;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int a = lane + k * kLanes;
      legal[k] = readable && a < in.actions && mask[a];
      // Illegal values (inf, NaN in the teacher) are never loaded.
      s[k] = legal[k] ? Io<scalar_t>::load(student[a]) : neg_inf;
      t[k] = legal[k] ? Io<scalar_t>::load(teacher[a]) / tau : neg_inf;
      local_max_s = fmax(local_max_s, s[k]);
      local_max_t = fmax(local_max_t, t[k]);
      any |= legal[k];
    }
    // Shuffle first, then combine: a `readable && group_or(...)` would skip the shuffle on some lanes.
    const int row_has_legal = group_or(any);
    ok = readable && row_has_legal != 0;
    max_s = group_max(local_max_s);
    max_t = group_max(local_max_t);
    acc_t local_sum_s = 0, local_sum_t = 0;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      // Selected, not computed, at illegal actions: a row without any would give exp(-inf + inf) = NaN.
      e_s[k] = legal[k] ? exp_acc(s[k] - max_s) : acc_t(0);
      e_t[k] = legal[k] ? exp_acc(t[k] - max_t) : acc_t(0);
      local_sum_s += e_s[k];
      local_sum_t += e_t[k];
    }
    sum_s = group_sum(local_sum_s);
    sum_t = group_sum(local_sum_t);
  }

  /// E_q[s] - pivot = sum_a q_a (s_a - pivot) over the legal actions.
  __device__ __forceinline__ acc_t teacher_mean_minus(acc_t pivot) const {
    acc_t local = 0;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) local += legal[k] ? e_t[k] * (s[k] - pivot) : acc_t(0);
    return group_sum(local) / sum_t;
  }

  /// s at the teacher's argmax (the largest such s on ties).
  __device__ __forceinline__ acc_t student_at_teacher_argmax() const {
    acc_t local = -acc_t(INFINITY);
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) local = legal[k] && t[k] == max_t ? fmax(local, s[k]) : local;
    return group_max(local);
  }
};

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(XentInputs in, typename Io<scalar_t>::acc_t* __restrict__ loss, XentStatus* status) {
  using acc_t = typename Io<scalar_t>::acc_t;
  const int lane = threadIdx.x % kLanes;
  // The loop bound is uniform per block, so every lane reaches every shuffle.
  for (int64_t base = int64_t(blockIdx.x) * kRowsPerBlock; base < in.rows;
       base += int64_t(gridDim.x) * kRowsPerBlock) {
    const int64_t row = base + threadIdx.x / kLanes;
    const bool active = row < in.rows;
    RowState<scalar_t> state;
    state.load(in, row, lane, active);
    // loss = log Z_s + (m_s - E_q[s]): both terms >= 0.
    const acc_t row_loss = log_acc(state.sum_s) - state.teacher_mean_minus(state.max_s);
    if (!active || lane != 0) continue;
    // status is only given in check mode (the host reads it back); otherwise a failed row is just NaN.
    if (status != nullptr && state.bad_game) {
      atomicMin(&status->first_row_with_bad_game_id, static_cast<unsigned long long>(row));
    } else if (status != nullptr && !state.ok) {
      atomicMin(&status->first_row_without_legal_action, static_cast<unsigned long long>(row));
    }
    loss[row] = state.ok ? row_loss : acc_t(NAN);
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(XentInputs in, const typename Io<scalar_t>::acc_t* __restrict__ grad_loss,
                    int64_t grad_loss_stride, scalar_t* __restrict__ grad_student, scalar_t* __restrict__ grad_teacher) {
  using acc_t = typename Io<scalar_t>::acc_t;
  const int lane = threadIdx.x % kLanes;
  const bool teacher_grad = grad_teacher != nullptr;
  for (int64_t base = int64_t(blockIdx.x) * kRowsPerBlock; base < in.rows;
       base += int64_t(gridDim.x) * kRowsPerBlock) {
    const int64_t row = base + threadIdx.x / kLanes;
    const bool active = row < in.rows;
    RowState<scalar_t> state;
    state.load(in, row, lane, active);
    // d loss / d teacher_q = -(g / tau) q (s - E_q[s]), pivoted on s at the teacher's argmax: when q is
    // nearly one-hot, s_a - E_q[s] for that action is a sum of small terms, not a difference of large ones.
    acc_t pivot = 0, mean_gap = 0;
    if (teacher_grad) {  // uniform over the grid
      pivot = state.student_at_teacher_argmax();
      mean_gap = state.teacher_mean_minus(pivot);
    }
    if (!active) continue;
    // The forward validated the inputs; a failed row only comes from calling this op directly: NaN.
    const acc_t g = state.ok ? grad_loss[row * grad_loss_stride] : acc_t(NAN);
    const acc_t inv_sum_s = acc_t(1) / state.sum_s;
    const acc_t inv_sum_t = acc_t(1) / state.sum_t;
    const acc_t grad_over_tau = g / static_cast<acc_t>(in.tau);
    const acc_t illegal = state.ok ? acc_t(0) : g;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int a = lane + k * kLanes;
      if (a >= in.actions) break;
      const acc_t q = state.e_t[k] * inv_sum_t;
      const acc_t d_s = state.legal[k] ? g * (state.e_s[k] * inv_sum_s - q) : illegal;
      grad_student[row * in.actions + a] = Io<scalar_t>::store(d_s);
      if (teacher_grad) {
        const acc_t d_t = state.legal[k] ? -grad_over_tau * q * ((state.s[k] - pivot) - mean_gap) : illegal;
        grad_teacher[row * in.actions + a] = Io<scalar_t>::store(d_t);
      }
    }
  }
}

int64_t grid_size(int64_t rows) {
  constexpr int64_t kMaxBlocks = int64_t(1) << 30;  // far below the 2^31 - 1 limit; the loop strides on
  const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  return blocks < kMaxBlocks ? blocks : kMaxBlocks;
}

template <typename Fn>
void dispatch_dtype(ScalarType dtype, Fn&& fn) {
  switch (dtype) {
    case ScalarType::kFloat32: return fn(float{});
    case ScalarType::kFloat16: return fn(__half{});
    case ScalarType::kBFloat16: return fn(__nv_bfloat16{});
    case ScalarType::kFloat64: return fn(double{});
  }
}

}  // namespace

void launch_masked_softmax_xent_forward(const XentInputs& in, void* loss, XentStatus* status, CUstream_st* stream) {
  if (in.rows == 0) return;
  dispatch_dtype(in.dtype, [&](auto tag) {
    using scalar_t = decltype(tag);
    using acc_t = typename Io<scalar_t>::acc_t;
    forward_kernel<scalar_t><<<grid_size(in.rows), kThreads, 0, stream>>>(in, static_cast<acc_t*>(loss), status);
  });
}

void launch_masked_softmax_xent_backward(const XentInputs& in, const XentGradients& grads, CUstream_st* stream) {
  if (in.rows == 0) return;
  dispatch_dtype(in.dtype, [&](auto tag) {
    using scalar_t = decltype(tag);
    using acc_t = typename Io<scalar_t>::acc_t;
    backward_kernel<scalar_t><<<grid_size(in.rows), kThreads, 0, stream>>>(
        in, static_cast<const acc_t*>(grads.grad_loss), grads.grad_loss_stride,
        static_cast<scalar_t*>(grads.grad_student_logits), static_cast<scalar_t*>(grads.grad_teacher_q));
  });
}

}  // namespace actormimic_fast::kernels
