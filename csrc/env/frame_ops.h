// Frame operations of the DQN preprocessing, on single 8-bit frames.
//
// Data flow per agent step (see preprocessed_env.h): ALE palette indices of the last two frames ->
// grayscale through ALE's own palette -> max of the two -> area resize 210x160 -> 84x84. The last three
// are fused into one pass (AreaResizer::resize_frames) so each source pixel is read once.
// All functions are pure and thread-safe; AreaResizer is immutable after construction and is shared
// by every env of a pool. Three kernel sets give identical results (SimdLevel): portable, AVX2 and AVX-512
// VBMI, the best the CPU has chosen at load time (on the development VM the AVX-512 one preprocesses a step in
// about 0.36x the AVX2 time: benchmarks/RESULTS.md).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace actormimic_fast::env {

/// Palette index -> luminance, the table ALE's getScreenGrayscale uses.
using GrayscaleTable = std::array<uint8_t, 256>;

/// out[i] = table[screen[i]].
void to_grayscale(const uint8_t* screen, const GrayscaleTable& table, uint8_t* out, std::size_t n);

/// a[i] = max(a[i], b[i]).
void max_inplace(uint8_t* a, const uint8_t* b, std::size_t n);

/// out[i] = max(table[a[i]], table[b[i]]): grayscale and max-pool of two frames in one pass.
void grayscale_max(const uint8_t* a, const uint8_t* b, const GrayscaleTable& table, uint8_t* out, std::size_t n);

/// The kernel sets of the frame ops, slowest first. All give identical results; tests run each one the CPU has.
/// kAvx512 needs AVX-512 F/BW/VL and VBMI (byte permutes: a 128-entry table lookup or a 64-byte gather in one
/// instruction).
enum class SimdLevel { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

/// The best level this CPU supports, chosen at load time; ACTORMIMIC_NO_AVX512=1 caps it at AVX2 and
/// ACTORMIMIC_NO_AVX2=1 at portable.
SimdLevel best_simd_level();
/// The level in use (initially best_simd_level()).
SimdLevel simd_level();
/// Selects a level; throws std::runtime_error for one above best_simd_level().
void set_simd_level(SimdLevel level);
/// Whether any SIMD kernels are in use; set_simd_enabled(true) selects best_simd_level().
bool simd_enabled();
void set_simd_enabled(bool enabled);

/// Area-interpolation resize of one uint8 channel, bit-identical to OpenCV's cv::resize(INTER_AREA)
/// for downscaling by non-integer factors (the 210x160 -> 84x84 case).
///
/// OpenCV computes, per source row, float sums over each destination column's horizontal taps, then
/// per destination row a float weighted sum of those row sums in increasing source-row order, and
/// rounds half to even. This class precomputes the same tap tables (in double, stored as float) and
/// performs the same float operations in the same order (no fused multiply-add), so no pixel differs.
/// For speed the horizontal pass runs on blocks of kBlock source rows at once, one SIMD lane per row:
/// lanes never mix, so each lane's arithmetic is exactly the scalar one.
class AreaResizer {
 public:
  static constexpr int kMaxWidth = 512;
  static constexpr int kBlock = 8;

  AreaResizer(int src_height, int src_width, int dst_height, int dst_width);

  /// Resize src [src_height x src_width] into dst [dst_height x dst_width].
  void resize(const uint8_t* src, uint8_t* dst) const;

  /// The preprocessing of one observation: gray_out = max(table[latest], table[previous]) (previous
  /// may be null: gray_out = table[latest]), then dst = resize(gray_out).
  void resize_frames(const uint8_t* latest, const uint8_t* previous, const GrayscaleTable& table,
                     uint8_t* gray_out, uint8_t* dst) const;

  int src_height() const { return src_height_; }
  int src_width() const { return src_width_; }
  int dst_height() const { return dst_height_; }
  int dst_width() const { return dst_width_; }

 private:
  struct Tap {
    int dst;     // destination index (column or row)
    int src;     // source index
    float weight;
  };
  static std::vector<Tap> area_taps(int src_size, int dst_size);
  void build_column_groups();

  // The AVX-512 path: 16 destination columns per vector, one source row at a time. A group's taps all read
  // the 64-byte window of the source row that starts at `start`, so one byte permute gathers the pixels of
  // up to 4 taps (tap k in 128-bit lane k of `index`); the weights are per lane and tap.
  struct ColumnGroup {
    alignas(64) uint8_t index[64];
    alignas(64) float weight[4][16];
    int start;
    uint64_t load_mask;   // window bytes inside the row
    uint16_t store_mask;  // group columns < dst_width
  };
  static constexpr int kMaxGroups = kMaxWidth / 16;

  void resize_portable(const uint8_t* src, uint8_t* dst) const;
  void resize_avx2(const uint8_t* src, uint8_t* dst) const;    // frame_ops_avx2.cpp
  void resize_avx512(const uint8_t* src, uint8_t* dst) const;  // frame_ops_avx512.cpp

  int src_height_, src_width_, dst_height_, dst_width_;
  int padded_width_;  // dst_width_ rounded up to kBlock; the extra columns have only zero-weight taps
  // Horizontal taps, taps_per_column_ per destination column, padded with zero weights
  // (x + s*0 == x exactly for the non-negative sums here, so padding changes no sum).
  int taps_per_column_ = 0;
  std::vector<int> column_src_;
  std::vector<float> column_weight_;
  std::vector<Tap> row_taps_;  // sorted by source row, then destination row
  std::vector<ColumnGroup> groups_;  // empty when some group's taps do not fit one window (then AVX2 runs)
};

namespace detail {
void grayscale_max_avx2(const uint8_t* a, const uint8_t* b, const GrayscaleTable& table, uint8_t* out,
                        std::size_t n);  // frame_ops_avx2.cpp
// frame_ops_avx512.cpp
void grayscale_max_avx512(const uint8_t* a, const uint8_t* b, const GrayscaleTable& table, uint8_t* out,
                          std::size_t n);
void to_grayscale_avx512(const uint8_t* screen, const GrayscaleTable& table, uint8_t* out, std::size_t n);
}  // namespace detail

}  // namespace actormimic_fast::env
