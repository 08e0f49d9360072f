// Frame operations of the DQN preprocessing, on single 8-bit frames.
//
// Data flow per agent step (see preprocessed_env.h): ALE palette indices -> grayscale (lookup table
// taken from ALE's own palette) -> max over the last two raw frames -> area resize 210x160 -> 84x84.
// All functions are pure and thread-safe; AreaResizer is immutable after construction and may be
// shared by every env of a pool.
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

/// Area-interpolation resize of one uint8 channel, bit-identical to OpenCV's cv::resize(INTER_AREA)
/// for downscaling by non-integer factors (the 210x160 -> 84x84 case).
///
/// OpenCV computes, per destination row, float row sums over each source row's horizontal taps and
/// then a float weighted sum over the source rows, rounding half to even. This class precomputes the
/// same tap tables (in double, stored as float) and performs the same float operations in the same
/// order, so no pixel differs. Each source row's horizontal pass is done once and reused by the (at
/// most two) destination rows it overlaps.
class AreaResizer {
 public:
  static constexpr int kMaxWidth = 512;

  AreaResizer(int src_height, int src_width, int dst_height, int dst_width);

  /// Resize src [src_height x src_width] into dst [dst_height x dst_width]; thread-safe.
  void resize(const uint8_t* src, uint8_t* dst) const;

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

  int src_height_, src_width_, dst_height_, dst_width_;
  // Horizontal taps laid out as kMaxTaps per destination column, padded with zero weights
  // (x + s*0 == x exactly, so padding does not change any sum).
  int taps_per_column_ = 0;
  std::vector<int> column_src_;
  std::vector<float> column_weight_;
  std::vector<Tap> row_taps_;  // sorted by source row, then destination row
};

}  // namespace actormimic_fast::env
