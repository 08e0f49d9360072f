// AVX2 kernels of frame_ops.h, compiled for AVX2 through function attributes and chosen at run time
// (frame_ops.cpp), so the extension still loads on CPUs without AVX2. Integer table lookups and
// lane-wise float mul/add (no FMA): the results are bit-identical to the portable path. No std::
// algorithm is called here, so no AVX2 code can end up in an inline symbol shared with other files.
#include "env/frame_ops.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#define AVX2_TARGET __attribute__((target("avx2")))

namespace actormimic_fast::env {

namespace {

// out[i] = table[v[i]] for 32 palette indices at once. ALE writes even indices only and the table maps
// v and v|1 alike, so i = v >> 1 (0..127) picks one of 8 16-entry tables (i >> 4), looked up by pshufb
// on the low 4 bits.
AVX2_TARGET inline __m256i lookup32(__m256i v, const __m256i tables[8]) {
  const __m256i index = _mm256_and_si256(_mm256_srli_epi16(v, 1), _mm256_set1_epi8(0x7f));
  const __m256i which = _mm256_and_si256(_mm256_srli_epi16(index, 4), _mm256_set1_epi8(0x0f));
  __m256i out = _mm256_setzero_si256();
  for (int t = 0; t < 8; ++t) {
    const __m256i hit = _mm256_cmpeq_epi8(which, _mm256_set1_epi8(static_cast<char>(t)));
    out = _mm256_or_si256(out, _mm256_and_si256(_mm256_shuffle_epi8(tables[t], index), hit));
  }
  return out;
}

// 8x8 float transpose: in[j] lane r -> out[r] lane j.
AVX2_TARGET inline void transpose8(const __m256* in, __m256* out) {
  const __m256 t0 = _mm256_unpacklo_ps(in[0], in[1]), t1 = _mm256_unpackhi_ps(in[0], in[1]);
  const __m256 t2 = _mm256_unpacklo_ps(in[2], in[3]), t3 = _mm256_unpackhi_ps(in[2], in[3]);
  const __m256 t4 = _mm256_unpacklo_ps(in[4], in[5]), t5 = _mm256_unpackhi_ps(in[4], in[5]);
  const __m256 t6 = _mm256_unpacklo_ps(in[6], in[7]), t7 = _mm256_unpackhi_ps(in[6], in[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  out[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  out[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  out[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  out[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  out[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  out[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  out[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  out[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// Rounds a finished destination row (half to even, like cvRound) into uint8.
AVX2_TARGET void store_row(const float* acc, int w, uint8_t* out) {
  int x = 0;
  for (; x + 8 <= w; x += 8) {
    const __m256i r = _mm256_cvtps_epi32(_mm256_load_ps(acc + x));
    const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + x), _mm_packus_epi16(words, words));
  }
  for (; x < w; ++x) {
    const int r = _mm_cvtss_si32(_mm_set_ss(acc[x]));
    out[x] = static_cast<uint8_t>(r < 0 ? 0 : (r > 255 ? 255 : r));
  }
}

// Eight uint8 (one source column of a block) -> eight floats.
AVX2_TARGET inline __m256 column_to_floats(__m128i eight_bytes) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(eight_bytes));
}

}  // namespace

namespace detail {

AVX2_TARGET void grayscale_max_avx2(const uint8_t* a, const uint8_t* b, const GrayscaleTable& table,
                                    uint8_t* out, std::size_t n) {
  alignas(32) uint8_t even[128];
  for (int i = 0; i < 128; ++i) even[i] = table[2 * i];
  __m256i tables[8];
  for (int t = 0; t < 8; ++t)
    tables[t] = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(even + 16 * t)));
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i ga = lookup32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i)), tables);
    const __m256i gb = lookup32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i)), tables);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_max_epu8(ga, gb));
  }
  for (; i < n; ++i) out[i] = table[a[i]] > table[b[i]] ? table[a[i]] : table[b[i]];
}

}  // namespace detail

// Same block structure and arithmetic order as resize_portable; the block's 8 rows are transposed
// 8 columns at a time with byte unpacks, and the horizontal sums transposed back with transpose8.
AVX2_TARGET void AreaResizer::resize_avx2(const uint8_t* src, uint8_t* dst) const {
  alignas(64) __m256 columns[kMaxWidth];
  alignas(64) __m256 sums[kMaxWidth];
  alignas(64) float row_sums[kBlock][kMaxWidth];
  alignas(64) float acc[2][kMaxWidth];
  int open_row[2] = {-1, -1};
  const int w = dst_width_;
  const int pw = padded_width_;
  const int sw = src_width_;
  const int k_taps = taps_per_column_;
  const __m128i zero = _mm_setzero_si128();

  std::size_t tap = 0;
  for (int block = 0; block < src_height_; block += kBlock) {
    const int rows = src_height_ - block < kBlock ? src_height_ - block : kBlock;
    const uint8_t* row[kBlock];
    for (int r = 0; r < kBlock; ++r) row[r] = r < rows ? src + static_cast<std::size_t>(block + r) * sw : nullptr;
    int x = 0;
    for (; x + 8 <= sw; x += 8) {
      __m128i r8[kBlock];
      for (int r = 0; r < kBlock; ++r)
        r8[r] = row[r] ? _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row[r] + x)) : zero;
      const __m128i a01 = _mm_unpacklo_epi8(r8[0], r8[1]), a23 = _mm_unpacklo_epi8(r8[2], r8[3]);
      const __m128i a45 = _mm_unpacklo_epi8(r8[4], r8[5]), a67 = _mm_unpacklo_epi8(r8[6], r8[7]);
      const __m128i b03lo = _mm_unpacklo_epi16(a01, a23), b03hi = _mm_unpackhi_epi16(a01, a23);
      const __m128i b47lo = _mm_unpacklo_epi16(a45, a67), b47hi = _mm_unpackhi_epi16(a45, a67);
      const __m128i c[4] = {_mm_unpacklo_epi32(b03lo, b47lo), _mm_unpackhi_epi32(b03lo, b47lo),
                            _mm_unpacklo_epi32(b03hi, b47hi), _mm_unpackhi_epi32(b03hi, b47hi)};
      for (int k = 0; k < 4; ++k) {  // c[k] holds columns x+2k and x+2k+1, 8 rows each
        columns[x + 2 * k] = column_to_floats(c[k]);
        columns[x + 2 * k + 1] = column_to_floats(_mm_srli_si128(c[k], 8));
      }
    }
    for (; x < sw; ++x) {
      alignas(32) float lanes[kBlock];
      for (int r = 0; r < kBlock; ++r) lanes[r] = row[r] ? static_cast<float>(row[r][x]) : 0.0f;
      columns[x] = _mm256_load_ps(lanes);
    }
    for (int c = 0; c < pw; ++c) {
      const int* idx = &column_src_[static_cast<std::size_t>(c) * k_taps];
      const float* wt = &column_weight_[static_cast<std::size_t>(c) * k_taps];
      __m256 sum = _mm256_mul_ps(columns[idx[0]], _mm256_set1_ps(wt[0]));
      for (int k = 1; k < k_taps; ++k)
        sum = _mm256_add_ps(sum, _mm256_mul_ps(columns[idx[k]], _mm256_set1_ps(wt[k])));
      sums[c] = sum;
    }
    for (int c = 0; c < pw; c += kBlock) {
      __m256 t[kBlock];
      transpose8(&sums[c], t);
      for (int r = 0; r < kBlock; ++r) _mm256_store_ps(&row_sums[r][c], t[r]);
    }
    for (; tap < row_taps_.size() && row_taps_[tap].src < block + rows; ++tap) {
      const Tap& t = row_taps_[tap];
      const float* rs = row_sums[t.src - block];
      const int slot = t.dst & 1;
      const __m256 weight = _mm256_set1_ps(t.weight);
      if (open_row[slot] != t.dst) {
        if (open_row[slot] >= 0) store_row(acc[slot], w, dst + static_cast<std::size_t>(open_row[slot]) * w);
        open_row[slot] = t.dst;
        for (int c = 0; c < pw; c += 8)
          _mm256_store_ps(&acc[slot][c], _mm256_mul_ps(weight, _mm256_load_ps(rs + c)));
      } else {
        for (int c = 0; c < pw; c += 8)
          _mm256_store_ps(&acc[slot][c], _mm256_add_ps(_mm256_load_ps(&acc[slot][c]),
                                                       _mm256_mul_ps(weight, _mm256_load_ps(rs + c))));
      }
    }
  }
  for (int slot = 0; slot < 2; ++slot)
    if (open_row[slot] >= 0) store_row(acc[slot], w, dst + static_cast<std::size_t>(open_row[slot]) * w);
}

}  // namespace actormimic_fast::env

#else  // not x86-64: simd_enabled() is always false, these are never called

namespace actormimic_fast::env {
namespace detail {
void grayscale_max_avx2(const uint8_t*, const uint8_t*, const GrayscaleTable&, uint8_t*, std::size_t) {}
}  // namespace detail
void AreaResizer::resize_avx2(const uint8_t*, uint8_t*) const {}
}  // namespace actormimic_fast::env

#endif
