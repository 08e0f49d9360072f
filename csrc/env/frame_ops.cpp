#include "env/frame_ops.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace actormimic_fast::env {

namespace {

bool env_flag(const char* name) {
  const char* value = std::getenv(name);
  return value && value[0] == '1';
}

SimdLevel detect_simd_level() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  // __builtin_cpu_supports also checks that the OS saves the AVX / AVX-512 registers (XCR0).
  if (env_flag("ACTORMIMIC_NO_AVX2") || !__builtin_cpu_supports("avx2")) return SimdLevel::kPortable;
  if (env_flag("ACTORMIMIC_NO_AVX512") || !__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512vbmi"))
    return SimdLevel::kAvx2;
  return SimdLevel::kAvx512;
#else
  return SimdLevel::kPortable;
#endif
}

const SimdLevel best_level = detect_simd_level();
std::atomic<SimdLevel> level_in_use{best_level};

// cvRound for the [0, 255] sums here: round half to even, saturate to uint8.
inline uint8_t round_to_uint8(float v) {
  const long r = std::lrint(v);
  return static_cast<uint8_t>(r < 0 ? 0 : (r > 255 ? 255 : r));
}

}  // namespace

SimdLevel best_simd_level() { return best_level; }

SimdLevel simd_level() { return level_in_use.load(std::memory_order_relaxed); }

void set_simd_level(SimdLevel level) {
  if (level > best_level) {
    throw std::runtime_error(std::string("this CPU (or ACTORMIMIC_NO_AVX2 / ACTORMIMIC_NO_AVX512) has no ") +
                             (level == SimdLevel::kAvx512 ? "AVX-512 VBMI" : "AVX2"));
  }
  level_in_use.store(level, std::memory_order_relaxed);
}

bool simd_enabled() { return simd_level() != SimdLevel::kPortable; }

void set_simd_enabled(bool enabled) {
  if (enabled && best_level == SimdLevel::kPortable) throw std::runtime_error("this CPU (or ACTORMIMIC_NO_AVX2) has no AVX2");
  set_simd_level(enabled ? best_level : SimdLevel::kPortable);
}

void to_grayscale(const uint8_t* screen, const GrayscaleTable& table, uint8_t* out, std::size_t n) {
  if (simd_level() == SimdLevel::kAvx512) return detail::to_grayscale_avx512(screen, table, out, n);
  for (std::size_t i = 0; i < n; ++i) out[i] = table[screen[i]];
}

void max_inplace(uint8_t* a, const uint8_t* b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) a[i] = std::max(a[i], b[i]);
}

void grayscale_max(const uint8_t* a, const uint8_t* b, const GrayscaleTable& table, uint8_t* out, std::size_t n) {
  switch (simd_level()) {
    case SimdLevel::kAvx512: return detail::grayscale_max_avx512(a, b, table, out, n);
    case SimdLevel::kAvx2: return detail::grayscale_max_avx2(a, b, table, out, n);
    case SimdLevel::kPortable: break;
  }
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
  if (src_width > kMaxWidth) {  // the kernels keep one source row's columns in fixed-size buffers
    throw std::invalid_argument("AreaResizer takes sources at most " + std::to_string(kMaxWidth) +
                                " pixels wide: got " + std::to_string(src_width));
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
  build_column_groups();
}

void AreaResizer::build_column_groups() {
  if (taps_per_column_ > 4) return;
  for (int first = 0; first < dst_width_; first += 16) {
    ColumnGroup g{};
    g.start = column_src_[static_cast<std::size_t>(first) * taps_per_column_];  // the group's leftmost tap
    for (int lane = 0; lane < 16 && first + lane < dst_width_; ++lane) {
      g.store_mask = static_cast<uint16_t>(g.store_mask | (1u << lane));
      for (int k = 0; k < taps_per_column_; ++k) {
        const std::size_t at = static_cast<std::size_t>(first + lane) * taps_per_column_ + k;
        const int offset = column_src_[at] - g.start;
        if (offset < 0 || offset >= 64) {
          groups_.clear();  // this resize's taps are too far apart for one window; the AVX2 path serves it
          return;
        }
        g.index[16 * k + lane] = static_cast<uint8_t>(offset);
        g.weight[k][lane] = column_weight_[at];
      }
    }
    const int inside = src_width_ - g.start;
    g.load_mask = inside >= 64 ? ~0ULL : (1ULL << inside) - 1;
    groups_.push_back(g);
  }
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
  switch (simd_level()) {
    case SimdLevel::kAvx512:
      if (!groups_.empty()) return resize_avx512(src, dst);
      return resize_avx2(src, dst);
    case SimdLevel::kAvx2: return resize_avx2(src, dst);
    case SimdLevel::kPortable: return resize_portable(src, dst);
  }
}

void AreaResizer::resize_frames(const uint8_t* latest, const uint8_t* previous, const GrayscaleTable& table,
                                uint8_t* gray_out, uint8_t* dst) const {
  const std::size_t n = static_cast<std::size_t>(src_height_) * src_width_;
  if (previous != nullptr) grayscale_max(latest, previous, table, gray_out, n);
  else to_grayscale(latest, table, gray_out, n);
  resize(gray_out, dst);
}

}  // namespace actormimic_fast::env
