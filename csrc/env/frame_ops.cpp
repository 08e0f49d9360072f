#include "env/frame_ops.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace actormimic_fast::env {

void to_grayscale(const uint8_t* screen, const GrayscaleTable& table, uint8_t* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = table[screen[i]];
}

void max_inplace(uint8_t* a, const uint8_t* b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) a[i] = std::max(a[i], b[i]);
}

// Same arithmetic as OpenCV's computeResizeAreaTab (imgproc/src/resize.cpp), including its 1e-3
// tolerance on fractional cell borders and its scale computed as 1 / (dst / src).
std::vector<AreaResizer::Tap> AreaResizer::area_taps(int src_size, int dst_size) {
  const double scale = 1.0 / (static_cast<double>(dst_size) / src_size);
  std::vector<Tap> taps;
  for (int d = 0; d < dst_size; ++d) {
    const double fs1 = d * scale;
    const double fs2 = fs1 + scale;
    const double cell = std::min(scale, src_size - fs1);
    int s1 = static_cast<int>(std::ceil(fs1));
    int s2 = static_cast<int>(std::floor(fs2));
    s2 = std::min(s2, src_size - 1);
    s1 = std::min(s1, s2);
    if (s1 - fs1 > 1e-3) taps.push_back({d, s1 - 1, static_cast<float>((s1 - fs1) / cell)});
    for (int s = s1; s < s2; ++s) taps.push_back({d, s, static_cast<float>(1.0 / cell)});
    if (fs2 - s2 > 1e-3) taps.push_back({d, s2, static_cast<float>(std::min(std::min(fs2 - s2, 1.0), cell) / cell)});
  }
  return taps;
}

AreaResizer::AreaResizer(int src_height, int src_width, int dst_height, int dst_width)
    : src_height_(src_height), src_width_(src_width), dst_height_(dst_height), dst_width_(dst_width) {
  if (dst_height <= 0 || dst_width <= 0 || dst_height > src_height || dst_width > src_width || dst_width > kMaxWidth) {
    throw std::invalid_argument("AreaResizer only downscales: got " + std::to_string(src_height) + "x" +
                                std::to_string(src_width) + " -> " + std::to_string(dst_height) + "x" +
                                std::to_string(dst_width));
  }
  const std::vector<Tap> x_taps = area_taps(src_width, dst_width);
  std::vector<int> count(dst_width, 0);
  for (const Tap& t : x_taps) ++count[t.dst];
  taps_per_column_ = *std::max_element(count.begin(), count.end());
  column_src_.assign(static_cast<std::size_t>(dst_width) * taps_per_column_, 0);
  column_weight_.assign(column_src_.size(), 0.0f);
  std::fill(count.begin(), count.end(), 0);
  for (const Tap& t : x_taps) {  // taps arrive in increasing source order per column, as OpenCV sums them
    const std::size_t k = static_cast<std::size_t>(t.dst) * taps_per_column_ + count[t.dst]++;
    column_src_[k] = t.src;
    column_weight_[k] = t.weight;
  }
  for (int d = 0; d < dst_width; ++d)  // padding taps read a valid pixel with weight 0
    for (int k = count[d]; k < taps_per_column_; ++k)
      column_src_[static_cast<std::size_t>(d) * taps_per_column_ + k] =
          column_src_[static_cast<std::size_t>(d) * taps_per_column_];
  row_taps_ = area_taps(src_height, dst_height);
  std::stable_sort(row_taps_.begin(), row_taps_.end(), [](const Tap& a, const Tap& b) { return a.src < b.src; });
}

void AreaResizer::resize(const uint8_t* src, uint8_t* dst) const {
  float row_sum[kMaxWidth];
  float acc[2][kMaxWidth];  // destination rows still open: acc[dy & 1]
  int open_row[2] = {-1, -1};
  int last_src = -1;
  const int w = dst_width_;

  auto flush = [&](int slot) {
    uint8_t* out = dst + static_cast<std::size_t>(open_row[slot]) * w;
    for (int x = 0; x < w; ++x) {
      const long v = std::lrint(acc[slot][x]);  // round half to even, like cvRound
      out[x] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
    }
    open_row[slot] = -1;
  };

  for (const Tap& t : row_taps_) {
    if (t.src != last_src) {
      const uint8_t* s = src + static_cast<std::size_t>(t.src) * src_width_;
      for (int x = 0; x < w; ++x) {
        const int* idx = &column_src_[static_cast<std::size_t>(x) * taps_per_column_];
        const float* wt = &column_weight_[static_cast<std::size_t>(x) * taps_per_column_];
        float sum = static_cast<float>(s[idx[0]]) * wt[0];
        for (int k = 1; k < taps_per_column_; ++k) sum += static_cast<float>(s[idx[k]]) * wt[k];
        row_sum[x] = sum;
      }
      last_src = t.src;
    }
    const int slot = t.dst & 1;
    if (open_row[slot] != t.dst) {
      if (open_row[slot] >= 0) flush(slot);
      open_row[slot] = t.dst;
      for (int x = 0; x < w; ++x) acc[slot][x] = t.weight * row_sum[x];
    } else {
      for (int x = 0; x < w; ++x) acc[slot][x] += t.weight * row_sum[x];
    }
  }
  for (int slot = 0; slot < 2; ++slot)
    if (open_row[slot] >= 0) flush(slot);
}

}  // namespace actormimic_fast::env
