// AVX-512 (F/BW/VL + VBMI) kernels of frame_ops.h, compiled through function attributes and chosen at run time
// (frame_ops.cpp), like the AVX2 ones. VBMI's byte permutes do the two gathers of the preprocessing in one
// instruction each: the palette -> luminance lookup (vpermi2b indexes a 128-byte table) and the area resize's
// horizontal taps (vpermb picks 4 taps x 16 columns out of a 64-byte window of the source row). The float
// arithmetic is lane-wise mul then add in the scalar order (no FMA), so results are bit-identical to the
// portable path. No std:: algorithm is called here, so no AVX-512 code can end up in a shared inline symbol.
#include "env/frame_ops.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#define AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi")))

namespace actormimic_fast::env {

namespace {

// The luminance of the 128 even palette indices (ALE writes even indices only and the table maps v and v|1
// alike), as the two halves of vpermi2b's table.
struct Luminance {
  __m512i low, high;
};

AVX512_TARGET inline Luminance luminance_tables(const GrayscaleTable& table) {
  alignas(64) uint8_t even[128];
  for (int i = 0; i < 128; ++i) even[i] = table[2 * i];
  return {_mm512_load_si512(even), _mm512_load_si512(even + 64)};
}

// table[v] for 64 palette indices: vpermi2b reads index bits 0-6 only, so v >> 1 (shifted in 16-bit lanes,
// bit 7 then holds the neighbour's bit 0) needs no mask.
AVX512_TARGET inline __m512i lookup64(__m512i v, const Luminance& t) {
  return _mm512_permutex2var_epi8(t.low, _mm512_srli_epi16(v, 1), t.high);
}

AVX512_TARGET inline __mmask64 tail_mask(std::size_t count) {
  return count >= 64 ? ~0ULL : (1ULL << count) - 1;
}

// Sixteen uint8 -> sixteen floats.
AVX512_TARGET inline __m512 to_floats(__m128i sixteen_bytes) {
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(sixteen_bytes));
}

// Rounds a finished destination row (half to even, like cvRound) into uint8: the sums are >= 0 and vpmovusdb
// saturates at 255. (A template so that it can take AreaResizer's private ColumnGroup.)
template <typename Group>
AVX512_TARGET void store_row(const __m512* acc, const Group* groups, int count, uint8_t* out) {
  for (int g = 0; g < count; ++g) {
    const __m512i r = _mm512_max_epi32(_mm512_cvtps_epi32(acc[g]), _mm512_setzero_si512());
    _mm_mask_storeu_epi8(out + 16 * g, groups[g].store_mask, _mm512_cvtusepi32_epi8(r));
  }
}

}  // namespace

namespace detail {

AVX512_TARGET void grayscale_max_avx512(const uint8_t* a, const uint8_t* b, const GrayscaleTable& table,
                                        uint8_t* out, std::size_t n) {
  const Luminance t = luminance_tables(table);
  for (std::size_t i = 0; i < n; i += 64) {
    const __mmask64 m = tail_mask(n - i);
    const __m512i ga = lookup64(_mm512_maskz_loadu_epi8(m, a + i), t);
    const __m512i gb = lookup64(_mm512_maskz_loadu_epi8(m, b + i), t);
    _mm512_mask_storeu_epi8(out + i, m, _mm512_max_epu8(ga, gb));
  }
}

AVX512_TARGET void to_grayscale_avx512(const uint8_t* screen, const GrayscaleTable& table, uint8_t* out,
                                       std::size_t n) {
  const Luminance t = luminance_tables(table);
  for (std::size_t i = 0; i < n; i += 64) {
    const __mmask64 m = tail_mask(n - i);
    _mm512_mask_storeu_epi8(out + i, m, lookup64(_mm512_maskz_loadu_epi8(m, screen + i), t));
  }
}

}  // namespace detail

// One source row at a time: its horizontal sums (16 destination columns per vector) are added at once into
// the (at most two) destination rows still open, in increasing source-row order, as OpenCV sums them.
AVX512_TARGET void AreaResizer::resize_avx512(const uint8_t* src, uint8_t* dst) const {
  __m512 acc[2][kMaxGroups];
  int open_row[2] = {-1, -1};
  const int groups = static_cast<int>(groups_.size());
  const int k_taps = taps_per_column_;
  const std::size_t num_taps = row_taps_.size();

  std::size_t tap = 0;
  for (int y = 0; y < src_height_ && tap < num_taps; ++y) {
    std::size_t end = tap;
    while (end < num_taps && row_taps_[end].src == y) ++end;
    if (end == tap) continue;
    // Open the destination rows this source row starts (flushing the rows they replace) before any sums.
    bool first[2] = {false, false};
    for (std::size_t t = tap; t < end; ++t) {
      const int slot = row_taps_[t].dst & 1;
      if (open_row[slot] != row_taps_[t].dst) {
        if (open_row[slot] >= 0)
          store_row(acc[slot], groups_.data(), groups, dst + static_cast<std::size_t>(open_row[slot]) * dst_width_);
        open_row[slot] = row_taps_[t].dst;
        first[slot] = true;
      }
    }
    const uint8_t* row = src + static_cast<std::size_t>(y) * src_width_;
    __m512 sums[kMaxGroups];
    for (int g = 0; g < groups; ++g) {
      const ColumnGroup& group = groups_[g];
      const __m512i window = _mm512_maskz_loadu_epi8(group.load_mask, row + group.start);
      const __m512i taps = _mm512_permutexvar_epi8(_mm512_load_si512(group.index), window);
      __m512 sum = _mm512_mul_ps(to_floats(_mm512_castsi512_si128(taps)), _mm512_load_ps(group.weight[0]));
      if (k_taps > 1)
        sum = _mm512_add_ps(sum, _mm512_mul_ps(to_floats(_mm512_extracti32x4_epi32(taps, 1)),
                                               _mm512_load_ps(group.weight[1])));
      if (k_taps > 2)
        sum = _mm512_add_ps(sum, _mm512_mul_ps(to_floats(_mm512_extracti32x4_epi32(taps, 2)),
                                               _mm512_load_ps(group.weight[2])));
      if (k_taps > 3)
        sum = _mm512_add_ps(sum, _mm512_mul_ps(to_floats(_mm512_extracti32x4_epi32(taps, 3)),
                                               _mm512_load_ps(group.weight[3])));
      sums[g] = sum;
    }
    for (std::size_t t = tap; t < end; ++t) {
      const int slot = row_taps_[t].dst & 1;
      const __m512 weight = _mm512_set1_ps(row_taps_[t].weight);
      __m512* a = acc[slot];
      if (first[slot]) {
        for (int g = 0; g < groups; ++g) a[g] = _mm512_mul_ps(weight, sums[g]);
      } else {
        for (int g = 0; g < groups; ++g) a[g] = _mm512_add_ps(a[g], _mm512_mul_ps(weight, sums[g]));
      }
    }
    tap = end;
  }
  for (int slot = 0; slot < 2; ++slot)
    if (open_row[slot] >= 0)
      store_row(acc[slot], groups_.data(), groups, dst + static_cast<std::size_t>(open_row[slot]) * dst_width_);
}

}  // namespace actormimic_fast::env

#else  // not x86-64: best_simd_level() is never kAvx512, these are never called

namespace actormimic_fast::env {
namespace detail {
void grayscale_max_avx512(const uint8_t*, const uint8_t*, const GrayscaleTable&, uint8_t*, std::size_t) {}
void to_grayscale_avx512(const uint8_t*, const GrayscaleTable&, uint8_t*, std::size_t) {}
}  // namespace detail
void AreaResizer::resize_avx512(const uint8_t*, uint8_t*) const {}
}  // namespace actormimic_fast::env

#endif
