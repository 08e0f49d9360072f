// CPU kernels of masked_softmax_xent (contract in masked_softmax_xent_cpu_kernel.h, math in masked_softmax_xent.h):
// each tile of 8 rows is read once (gather: each action's 8 values assembled in a register, the legal actions
// from one bitmask per row), computed as SIMD vectors and written once. The forward can also write
// d loss / d logits = p - q, which the autograd kernel keeps so that the backward needs no exps. No torch
// tensor, dispatcher or thread pool here (the glue in masked_softmax_xent_cpu.cpp owns those): only c10's
// header-only Half and BFloat16 types, so 16-bit values convert exactly as in the rest of torch.
#include "kernels/masked_softmax_xent_cpu_kernel.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

namespace actormimic_fast::kernels {

namespace {

// Rows are processed in tiles of kTileRows rows transposed to [action][row]: one SIMD vector (GCC/Clang
// vector extensions) holds one action of every row of the tile, so the math runs on whole vectors with
// no per-row reduction and no branch on the mask (selects are vector blends).
constexpr int kTileRows = kCpuTileRows;

// On x86-64 the tile math is compiled for AVX-512, AVX2 and the baseline, picked at load time.
#if defined(__x86_64__) && defined(__GNUC__)
#define ACTORMIMIC_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ACTORMIMIC_VECTOR_CLONES
#endif
#define ACTORMIMIC_INLINE inline __attribute__((always_inline))
// Vectors are only returned from always-inlined functions, so the ABI of returning them by value (what
// -Wpsabi warns about) never matters here.
#pragma GCC diagnostic ignored "-Wpsabi"

// Vec: one value per tile row; Mask: the result of comparing two Vecs (all ones where true).
template <typename acc_t>
struct Simd;
template <>
struct Simd<float> {
  typedef float Vec __attribute__((vector_size(kTileRows * sizeof(float))));
  typedef int32_t Mask __attribute__((vector_size(kTileRows * sizeof(float))));
};
template <>
struct Simd<double> {
  typedef double Vec __attribute__((vector_size(kTileRows * sizeof(double))));
  typedef int64_t Mask __attribute__((vector_size(kTileRows * sizeof(double))));
};
template <typename acc_t>
using Vec = typename Simd<acc_t>::Vec;
template <typename acc_t>
using Mask = typename Simd<acc_t>::Mask;

template <typename acc_t>
ACTORMIMIC_INLINE Vec<acc_t> splat(acc_t value) {
  return Vec<acc_t>{} + value;
}

// The math type of an input element type: float for 16/32-bit inputs, double for float64 (at::opmath_type's
// choice, so results match the rest of torch).
template <typename scalar_t>
struct MathType {
  using type = float;
};
template <>
struct MathType<double> {
  using type = double;
};
template <typename scalar_t>
using math_t = typename MathType<scalar_t>::type;

// Records a failed row in a status field shared by concurrent calls (nullptr: not recorded).
void atomic_min(unsigned long long* target, unsigned long long value) {
  if (target == nullptr) return;
  std::atomic_ref<unsigned long long> field(*target);
  unsigned long long seen = field.load(std::memory_order_relaxed);
  while (value < seen && !field.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

// exp(x) for the x = v - max(v) <= 0 of a softmax, lane-wise: Cody-Waite reduction x = n ln2 + r with
// |r| <= ln2 / 2, and Cephes' polynomial for exp(r) (within 1e-7 relative of exp). Below -87.3
// (-inf included) it is exactly 0; NaN stays NaN.
ACTORMIMIC_INLINE Vec<float> exp_nonpositive(const Vec<float>& x) {
  using V = Vec<float>;
  constexpr float kMin = -87.3f;                // exp(kMin) is still a normal float
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;        // ln 2 = kLn2Hi + kLn2Lo, kLn2Hi exact in 9 bits
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRoundNearest = 12582912.0f;  // 1.5 * 2^23: (y + k) - k rounds y to an integer
  const V xc = x >= kMin ? x : splat(kMin);     // NaN -> kMin too, so the int conversion is defined
  const V n = (xc * kLog2e + kRoundNearest) - kRoundNearest;
  const V r = (xc - n * kLn2Hi) - n * kLn2Lo;
  V poly = splat(1.9875691500e-4f);
  poly = poly * r + 1.3981999507e-3f;
  poly = poly * r + 8.3334519073e-3f;
  poly = poly * r + 4.1665795894e-2f;
  poly = poly * r + 1.6666665459e-1f;
  poly = poly * r + 5.0000001201e-1f;
  poly = poly * r * r + r + 1.0f;
  const V two_n = reinterpret_cast<V>((__builtin_convertvector(n, Mask<float>) + 127) << 23);
  const V value = x != x ? x : poly * two_n;
  return x < kMin ? splat(0.0f) : value;
}

ACTORMIMIC_INLINE Vec<double> exp_nonpositive(const Vec<double>& x) {
  Vec<double> y;
  for (int r = 0; r < kTileRows; ++r) y[r] = std::exp(x[r]);
  return y;
}

// One log per row: cheap next to the exps, so plain std::log per lane.
template <typename V>
ACTORMIMIC_INLINE V log_lanes(const V& x) {
  V y;
  for (int r = 0; r < kTileRows; ++r) y[r] = std::log(x[r]);
  return y;
}

// A tile of rows as columns: s[a][r] for action a of row r; illegal entries hold -inf (the softmax
// identity) and padding or failed rows one legal action of value 0, so every lane stays finite.
template <typename acc_t>
struct Tile {
  using V = Vec<acc_t>;
  int rows = 0;             // real rows in this tile
  Mask<acc_t> legal[kMaxActions];
  V s[kMaxActions];         // student logits
  V t[kMaxActions];         // teacher_q, then teacher_q / tau
  V e_s[kMaxActions];       // exp(s - m_s)
  V e_t[kMaxActions];       // exp(t - m_t)
  V max_s, max_t, sum_s, sum_t;
  bool failed[kTileRows];   // the row's game id is out of range or it has no legal action
};

// Bit a set when action a of this mask row is legal; 8 bools at a time (each nonzero byte to 1, then one
// multiply moves byte i's bit to bit 56 + i without carries).
ACTORMIMIC_INLINE uint32_t legal_bits(const bool* mask_row, int actions) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(mask_row);
  constexpr uint64_t kLow7 = 0x7f7f7f7f7f7f7f7full;
  uint32_t bits = 0;
  int a = 0;
  for (; a + 8 <= actions; a += 8) {
    uint64_t chunk;
    std::memcpy(&chunk, bytes + a, sizeof(chunk));
    chunk = ((((chunk & kLow7) + kLow7) | chunk) >> 7) & 0x0101010101010101ull;
    bits |= static_cast<uint32_t>((chunk * 0x0102040810204080ull) >> 56) << a;
  }
  for (; a < actions; ++a) bits |= static_cast<uint32_t>(bytes[a] != 0) << a;
  return bits;
}

// Action a of the 8 rows as one vector, converted to the math type.
template <typename acc_t, typename scalar_t>
ACTORMIMIC_INLINE Vec<acc_t> load_column(const scalar_t* const (&rows)[kTileRows], int a) {
  static_assert(kTileRows == 8, "one initializer per tile row");
  return Vec<acc_t>{static_cast<acc_t>(rows[0][a]), static_cast<acc_t>(rows[1][a]), static_cast<acc_t>(rows[2][a]),
                    static_cast<acc_t>(rows[3][a]), static_cast<acc_t>(rows[4][a]), static_cast<acc_t>(rows[5][a]),
                    static_cast<acc_t>(rows[6][a]), static_cast<acc_t>(rows[7][a])};
}

// Reads rows [begin, begin + tile.rows) into the tile; records failed rows. `game_bits` holds the legal bits
// of each game of a small per-game table (nullptr: read the mask rows).
template <typename scalar_t, typename acc_t>
ACTORMIMIC_INLINE void gather(const XentInputs& in, const uint32_t* game_bits, int64_t begin, Tile<acc_t>& tile,
                              XentStatus* status) {
  using V = Vec<acc_t>;
  using M = Mask<acc_t>;
  static const scalar_t kZeros[kMaxActions] = {};
  const scalar_t* student[kTileRows];
  const scalar_t* teacher[kTileRows];
  M bits;
  for (int r = 0; r < kTileRows; ++r) {
    const int64_t b = begin + r;
    bool ok = r < tile.rows;
    uint32_t row_bits = 0;
    if (ok) {
      int64_t mask_row = b;
      if (in.game_id32 != nullptr) mask_row = in.game_id32[b * in.game_id_stride];
      if (in.game_id64 != nullptr) mask_row = in.game_id64[b * in.game_id_stride];
      if (mask_row < 0 || mask_row >= in.mask_rows) {
        atomic_min(status != nullptr ? &status->first_row_with_bad_game_id : nullptr, b);
        ok = false;
      } else {
        row_bits = game_bits != nullptr ? game_bits[mask_row]
                                        : legal_bits(in.action_mask + mask_row * in.mask_row_stride, in.actions);
        if (row_bits == 0) {
          atomic_min(status != nullptr ? &status->first_row_without_legal_action : nullptr, b);
          ok = false;
        }
      }
    }
    tile.failed[r] = !ok;
    student[r] = ok ? static_cast<const scalar_t*>(in.student_logits) + b * in.student_row_stride : kZeros;
    teacher[r] = ok ? static_cast<const scalar_t*>(in.teacher_q) + b * in.teacher_row_stride : kZeros;
    bits[r] = ok ? row_bits : 1;
  }
  const V neg_inf = splat(-std::numeric_limits<acc_t>::infinity());
  for (int a = 0; a < in.actions; ++a) {
    const M legal = ((bits >> a) & 1) != 0;
    tile.legal[a] = legal;
    // A select, not arithmetic: illegal values (inf, NaN in the teacher) are replaced, never computed with.
    tile.s[a] = legal ? load_column<acc_t>(student, a) : neg_inf;
    tile.t[a] = legal ? load_column<acc_t>(teacher, a) : neg_inf;
  }
}

// Row statistics of the stability trick for the 8 rows at once: m_s, m_t, Z_s, Z_t and the exps.
template <typename acc_t>
ACTORMIMIC_INLINE void tile_statistics(Tile<acc_t>& tile, int actions, acc_t tau) {
  using V = Vec<acc_t>;
  V max_s = splat(-std::numeric_limits<acc_t>::infinity());
  V max_t = max_s;
  for (int a = 0; a < actions; ++a) {
    tile.t[a] = tile.t[a] / tau;
    max_s = tile.s[a] > max_s ? tile.s[a] : max_s;
    max_t = tile.t[a] > max_t ? tile.t[a] : max_t;
  }
  V sum_s = splat<acc_t>(0), sum_t = splat<acc_t>(0);
  for (int a = 0; a < actions; ++a) {
    tile.e_s[a] = exp_nonpositive(tile.s[a] - max_s);
    tile.e_t[a] = exp_nonpositive(tile.t[a] - max_t);
    sum_s += tile.e_s[a];
    sum_t += tile.e_t[a];
  }
  tile.max_s = max_s;
  tile.max_t = max_t;
  tile.sum_s = sum_s;
  tile.sum_t = sum_t;
}

// E_q[s] - pivot = sum_a q_a (s_a - pivot), over legal actions (at illegal ones q = 0 but s = -inf).
template <typename acc_t>
ACTORMIMIC_INLINE Vec<acc_t> teacher_mean_minus(const Tile<acc_t>& tile, int actions, const Vec<acc_t>& pivot) {
  using V = Vec<acc_t>;
  const V zero = splat<acc_t>(0);
  V weighted = zero;
  for (int a = 0; a < actions; ++a) weighted += tile.legal[a] ? tile.e_t[a] * (tile.s[a] - pivot) : zero;
  return weighted / tile.sum_t;
}

// loss = log Z_s + (m_s - E_q[s]): both terms >= 0.
template <typename acc_t>
ACTORMIMIC_INLINE void tile_forward(Tile<acc_t>& tile, int actions, acc_t tau, Vec<acc_t>& loss) {
  tile_statistics(tile, actions, tau);
  loss = log_lanes(tile.sum_s) - teacher_mean_minus(tile, actions, tile.max_s);
}

// d loss / d s = g (p - q); d loss / d teacher_q = -(g / tau) q (s - E_q[s]) (log p + loss = s - E_q[s]);
// both 0 at illegal actions.
template <typename acc_t>
ACTORMIMIC_INLINE void tile_backward(Tile<acc_t>& tile, int actions, acc_t tau, const Vec<acc_t>& grad_loss,
                                     bool teacher_grad, Vec<acc_t> (&grad_s)[kMaxActions],
                                     Vec<acc_t> (&grad_t)[kMaxActions]) {
  using V = Vec<acc_t>;
  const V zero = splat<acc_t>(0);
  tile_statistics(tile, actions, tau);
  const V inv_sum_s = acc_t(1) / tile.sum_s;
  const V inv_sum_t = acc_t(1) / tile.sum_t;
  for (int a = 0; a < actions; ++a) {
    const V p = tile.e_s[a] * inv_sum_s;
    const V q = tile.e_t[a] * inv_sum_t;
    grad_s[a] = tile.legal[a] ? grad_loss * (p - q) : zero;
  }
  if (!teacher_grad) return;
  // Pivot on s at the teacher's argmax: when q is nearly one-hot, s_a - E_q[s] for that action is then a
  // sum of small terms instead of a difference of two large ones.
  V pivot = zero;
  for (int a = 0; a < actions; ++a) pivot = tile.t[a] == tile.max_t ? tile.s[a] : pivot;
  const V mean_gap = teacher_mean_minus(tile, actions, pivot);
  const V grad_over_tau = grad_loss / tau;
  for (int a = 0; a < actions; ++a) {
    const V q = tile.e_t[a] * inv_sum_t;
    grad_t[a] = tile.legal[a] ? -grad_over_tau * q * ((tile.s[a] - pivot) - mean_gap) : zero;
  }
}

// The forward over tiles [tile_begin, tile_end): loss per row and, when `grad` is set, p - q per row.
template <typename scalar_t>
ACTORMIMIC_INLINE void forward_tiles(const XentInputs& in, const uint32_t* game_bits, int64_t tile_begin,
                                     int64_t tile_end, math_t<scalar_t>* loss, math_t<scalar_t>* grad,
                                     XentStatus* status) {
  using acc_t = math_t<scalar_t>;
  using V = Vec<acc_t>;
  constexpr acc_t kNaN = std::numeric_limits<acc_t>::quiet_NaN();
  const int actions = in.actions;
  const acc_t tau = static_cast<acc_t>(in.tau);
  Tile<acc_t> tile;
  V tile_loss;
  V grad_s[kMaxActions];
  for (int64_t i = tile_begin; i < tile_end; ++i) {
    const int64_t begin = i * kTileRows;
    tile.rows = static_cast<int>(std::min<int64_t>(kTileRows, in.rows - begin));
    gather<scalar_t>(in, game_bits, begin, tile, status);
    tile_forward(tile, actions, tau, tile_loss);
    for (int r = 0; r < tile.rows; ++r) loss[begin + r] = tile.failed[r] ? kNaN : tile_loss[r];
    if (grad == nullptr) continue;
    // The backward's d loss / d s for a unit upstream gradient: the same float operations, so scaling it by
    // grad_loss later gives the backward kernel's result bit for bit.
    const V zero = splat<acc_t>(0);
    const V inv_sum_s = acc_t(1) / tile.sum_s;
    const V inv_sum_t = acc_t(1) / tile.sum_t;
    for (int a = 0; a < actions; ++a) {
      grad_s[a] = tile.legal[a] ? tile.e_s[a] * inv_sum_s - tile.e_t[a] * inv_sum_t : zero;
    }
    for (int r = 0; r < tile.rows; ++r) {
      acc_t* out = grad + (begin + r) * actions;
      for (int a = 0; a < actions; ++a) out[a] = tile.failed[r] ? kNaN : grad_s[a][r];
    }
  }
}

template <typename scalar_t>
ACTORMIMIC_INLINE void backward_tiles(const XentInputs& in, const uint32_t* game_bits, const XentGradients& grads,
                                      int64_t tile_begin, int64_t tile_end) {
  using acc_t = math_t<scalar_t>;
  constexpr acc_t kNaN = std::numeric_limits<acc_t>::quiet_NaN();
  const auto* grad_loss = static_cast<const acc_t*>(grads.grad_loss);
  auto* grad_student = static_cast<scalar_t*>(grads.grad_student_logits);
  auto* grad_teacher = static_cast<scalar_t*>(grads.grad_teacher_q);
  const bool teacher_grad = grad_teacher != nullptr;
  const int actions = in.actions;
  // Failed rows are the forward's to report (it has the check mode); here they only get NaN gradients.
  Tile<acc_t> tile;
  Vec<acc_t> g{};
  Vec<acc_t> grad_s[kMaxActions];
  Vec<acc_t> grad_t[kMaxActions];
  for (int64_t i = tile_begin; i < tile_end; ++i) {
    const int64_t begin = i * kTileRows;
    tile.rows = static_cast<int>(std::min<int64_t>(kTileRows, in.rows - begin));
    gather<scalar_t>(in, game_bits, begin, tile, nullptr);
    for (int r = 0; r < tile.rows; ++r) g[r] = grad_loss[(begin + r) * grads.grad_loss_stride];
    tile_backward(tile, actions, static_cast<acc_t>(in.tau), g, teacher_grad, grad_s, grad_t);
    for (int r = 0; r < tile.rows; ++r) {
      scalar_t* out_s = grad_student + (begin + r) * actions;
      for (int a = 0; a < actions; ++a) out_s[a] = static_cast<scalar_t>(tile.failed[r] ? kNaN : grad_s[a][r]);
      if (!teacher_grad) continue;
      scalar_t* out_t = grad_teacher + (begin + r) * actions;
      for (int a = 0; a < actions; ++a) out_t[a] = static_cast<scalar_t>(tile.failed[r] ? kNaN : grad_t[a][r]);
    }
  }
}

// The entry points, one per dtype, each compiled once per instruction set (gather and math inlined).
#define ACTORMIMIC_TILE_ENTRY_POINTS(suffix, scalar_t)                                                          \
  ACTORMIMIC_VECTOR_CLONES void forward_tiles_##suffix(const XentInputs& in, const uint32_t* game_bits,        \
                                                       int64_t tile_begin, int64_t tile_end, void* loss,        \
                                                       void* grad, XentStatus* status) {                        \
    forward_tiles<scalar_t>(in, game_bits, tile_begin, tile_end, static_cast<math_t<scalar_t>*>(loss),         \
                            static_cast<math_t<scalar_t>*>(grad), status);                                      \
  }                                                                                                             \
  ACTORMIMIC_VECTOR_CLONES void backward_tiles_##suffix(const XentInputs& in, const uint32_t* game_bits,       \
                                                        const XentGradients& grads, int64_t tile_begin,         \
                                                        int64_t tile_end) {                                     \
    backward_tiles<scalar_t>(in, game_bits, grads, tile_begin, tile_end);                                       \
  }
ACTORMIMIC_TILE_ENTRY_POINTS(f32, float)
ACTORMIMIC_TILE_ENTRY_POINTS(f16, c10::Half)
ACTORMIMIC_TILE_ENTRY_POINTS(bf16, c10::BFloat16)
ACTORMIMIC_TILE_ENTRY_POINTS(f64, double)
#undef ACTORMIMIC_TILE_ENTRY_POINTS

}  // namespace

const uint32_t* table_legal_bits(const XentInputs& in, uint32_t (&storage)[kMaxTableGames]) {
  const bool is_table = in.game_id32 != nullptr || in.game_id64 != nullptr;
  if (!is_table || in.mask_rows > kMaxTableGames) return nullptr;
  for (int64_t game = 0; game < in.mask_rows; ++game) {
    storage[game] = legal_bits(in.action_mask + game * in.mask_row_stride, in.actions);
  }
  return storage;
}

void masked_softmax_xent_forward_cpu_tiles(const XentInputs& in, const uint32_t* game_bits, int64_t tile_begin,
                                           int64_t tile_end, void* loss, void* dloss_dlogits, XentStatus* status) {
  switch (in.dtype) {
    case ScalarType::kFloat32: return forward_tiles_f32(in, game_bits, tile_begin, tile_end, loss, dloss_dlogits, status);
    case ScalarType::kFloat16: return forward_tiles_f16(in, game_bits, tile_begin, tile_end, loss, dloss_dlogits, status);
    case ScalarType::kBFloat16:
      return forward_tiles_bf16(in, game_bits, tile_begin, tile_end, loss, dloss_dlogits, status);
    case ScalarType::kFloat64: return forward_tiles_f64(in, game_bits, tile_begin, tile_end, loss, dloss_dlogits, status);
  }
}

void masked_softmax_xent_backward_cpu_tiles(const XentInputs& in, const uint32_t* game_bits,
                                            const XentGradients& grads, int64_t tile_begin, int64_t tile_end) {
  switch (in.dtype) {
    case ScalarType::kFloat32: return backward_tiles_f32(in, game_bits, grads, tile_begin, tile_end);
    case ScalarType::kFloat16: return backward_tiles_f16(in, game_bits, grads, tile_begin, tile_end);
    case ScalarType::kBFloat16: return backward_tiles_bf16(in, game_bits, grads, tile_begin, tile_end);
    case ScalarType::kFloat64: return backward_tiles_f64(in, game_bits, grads, tile_begin, tile_end);
  }
}

}  // namespace actormimic_fast::kernels
