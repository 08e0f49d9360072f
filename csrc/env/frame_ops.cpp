#include "env/frame_ops.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace actormimic_fast::env {

namespace {

bool avx2_available() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  const char* off = std::getenv("ACTORMIMIC_NO_AVX2");
  return __builtin_cpu_supports("avx2") && !(off && off[0] == '1');
#else
  return false;
#endif
}

std::atomic<bool> use_avx2{avx2_available()};

// cvRound for the [0, 255] sums here: round half to even, saturate to uint8.
inline uint8_t round_to_uint8(float v) {
  const long r = std::lrint(v);
  return static_cast<uint8_t>(r < 0 ? 0 : (r > 255 ? 255 : r));
}

}  // namespace

bool simd_enabled() { return use_avx2.load(std::memory_order_relaxed); }

void set_simd_enabled(bool enabled) {
  if (enabled && !avx2_available()) throw std::runtime_error("this CPU (or ACTORMIMIC_NO_AVX2) has no AVX2");
  use_avx2.store(enabled, std::memory_order_relaxed);
}

void to_grayscale(const uint8_t* screen, const GrayscaleTable& table, uint8_t* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = table[screen[i]];
}

void max_inplace(uint8_t* a, const uint8_t* b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) a[i] = std::max(a[i], b[i]);
}

void grayscale_max(const uint8_t* a, const uint8_t* b, const GrayscaleTable& table, uint8_t* out, std::size_t n) {
  if (simd_enabled()) return detail::grayscale_max_avx2(a, b, table, out, n);
  for (std::size_t i = 0; i < n; ++i) out[i] = std::max(table[a[i]], table[b[i]]);
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
    : src_height_(src_height),
      src_width_(src_width),
      dst_height_(dst_height),
      dst_width_(dst_width),
      padded_width_((dst_width + kBlock - 1) / kBlock * kBlock) {
  if (dst_height <= 0 || dst_width <= 0 || dst_height > src_height || dst_width > src_width || dst_width > kMaxWidth) {
    throw std::invalid_argument("AreaResizer only downscales: got " + std::to_string(src_height) + "x" +
                                std::to_string(src_width) + " -> " + std::to_string(dst_height) + "x" +
                                std::to_string(dst_width));
  }
  const std::vector<Tap> x_taps = area_taps(src_width, dst_width);
  std::vector<int> count(dst_width, 0);
  for (const Tap& t : x_taps) ++count[t.dst];
  taps_per_column_ = *std::max_element(count.begin(), count.end());
  column_src_.assign(static_cast<std::size_t>(padded_width_) * taps_per_column_, 0);
  column_weight_.assign(column_src_.size(), 0.0f);
  std::fill(count.begin(), count.end(), 0);
  for (const Tap& t : x_taps) {  // taps arrive in increasing source order per column, as OpenCV sums them
    const std::size_t k = static_cast<std::size_t>(t.dst) * taps_per_column_ + count[t.dst]++;
    column_src_[k] = t.src;
    column_weight_[k] = t.weight;
  }
  for (int d = 0; d < dst_width; ++d)  // padding taps read a valid pixel with weight 0 (columns past
                                       // dst_width keep source 0 and weight 0)
    for (int k = count[d]; k < taps_per_column_; ++k)
      column_src_[static_cast<std::size_t>(d) * taps_per_column_ + k] =
          column_src_[static_cast<std::size_t>(d) * taps_per_column_];
  row_taps_ = area_taps(src_height, dst_height);
  std::stable_sort(row_taps_.begin(), row_taps_.end(), [](const Tap& a, const Tap& b) { return a.src < b.src; });
}

// The portable path: blocks of kBlock source rows, one vector lane per row (GCC/Clang vector
// extensions). Each block's horizontal row sums land in row_sums; then every vertical tap of those
// rows is applied, in increasing source-row order, to the (at most two) destination rows still open.
void AreaResizer::resize_portable(const uint8_t* src, uint8_t* dst) const {
  typedef float Lanes __attribute__((vector_size(kBlock * sizeof(float))));
  alignas(64) Lanes columns[kMaxWidth];           // columns[x][lane] = src(block row lane, x)
  alignas(64) float row_sums[kBlock][kMaxWidth];
  alignas(64) float acc[2][kMaxWidth];             // destination rows still open: acc[dy & 1]
  int open_row[2] = {-1, -1};
  const int w = dst_width_;
  const int k_taps = taps_per_column_;

  auto flush = [&](int slot) {
    uint8_t* out = dst + static_cast<std::size_t>(open_row[slot]) * w;
    for (int x = 0; x < w; ++x) out[x] = round_to_uint8(acc[slot][x]);
    open_row[slot] = -1;
  };

  std::size_t tap = 0;
  for (int block = 0; block < src_height_; block += kBlock) {
    const int rows = std::min(kBlock, src_height_ - block);
    for (int r = 0; r < kBlock; ++r) {
      const uint8_t* row = src + static_cast<std::size_t>(block + r) * src_width_;
      for (int x = 0; x < src_width_; ++x) columns[x][r] = r < rows ? static_cast<float>(row[x]) : 0.0f;
    }
    for (int x = 0; x < w; ++x) {
      const int* idx = &column_src_[static_cast<std::size_t>(x) * k_taps];
      const float* wt = &column_weight_[static_cast<std::size_t>(x) * k_taps];
      Lanes sum = columns[idx[0]] * wt[0];
      for (int k = 1; k < k_taps; ++k) sum += columns[idx[k]] * wt[k];
      for (int r = 0; r < kBlock; ++r) row_sums[r][x] = sum[r];
    }
    for (; tap < row_taps_.size() && row_taps_[tap].src < block + rows; ++tap) {
      const Tap& t = row_taps_[tap];
      const float* row = row_sums[t.src - block];
      const int slot = t.dst & 1;
      if (open_row[slot] != t.dst) {
        if (open_row[slot] >= 0) flush(slot);
        open_row[slot] = t.dst;
        for (int x = 0; x < w; ++x) acc[slot][x] = t.weight * row[x];
      } else {
        for (int x = 0; x < w; ++x) acc[slot][x] += t.weight * row[x];
      }
    }
  }
  for (int slot = 0; slot < 2; ++slot)
    if (open_row[slot] >= 0) flush(slot);
}

void AreaResizer::resize(const uint8_t* src, uint8_t* dst) const {
  if (simd_enabled()) resize_avx2(src, dst);
  else resize_portable(src, dst);
}

void AreaResizer::resize_frames(const uint8_t* latest, const uint8_t* previous, const GrayscaleTable& table,
                                uint8_t* gray_out, uint8_t* dst) const {
  const std::size_t n = static_cast<std::size_t>(src_height_) * src_width_;
  if (previous != nullptr) grayscale_max(latest, previous, table, gray_out, n);
  else to_grayscale(latest, table, gray_out, n);
  resize(gray_out, dst);
}

}  // namespace actormimic_fast::env
