#include "replay/env_ring.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace actormimic_fast::replay {

namespace {

constexpr std::size_t kHugePage = std::size_t{2} << 20;

// Frames are read at random, 7 KB at a time: huge pages (where the kernel allows them) save a TLB
// miss per frame. Memory is not touched here, so a large ring costs nothing until it fills.
uint8_t* allocate_frames(std::size_t bytes) {
  const std::size_t align = bytes >= kHugePage ? kHugePage : 64;
  const std::size_t rounded = (bytes + align - 1) / align * align;
  void* p = std::aligned_alloc(align, rounded);
  if (p == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (align == kHugePage) madvise(p, rounded, MADV_HUGEPAGE);
#endif
  return static_cast<uint8_t*>(p);
}

}  // namespace

EnvRing::EnvRing(int64_t capacity, int guard, const ReplayConfig& config)
    : capacity_(capacity),
      slots_(capacity + guard),
      stack_(config.stack),
      n_step_(config.n_step),
      life_loss_terminal_(config.life_loss_terminal) {
  if (capacity < 1) throw std::invalid_argument("EnvRing: capacity must be >= 1, got " + std::to_string(capacity));
  if (guard < 0) throw std::invalid_argument("EnvRing: guard must be >= 0, got " + std::to_string(guard));
  frames_.reset(allocate_frames(static_cast<std::size_t>(slots_ * kFrameBytes)));
  actions_.reset(new int32_t[slots_]());
  rewards_.reset(new float[slots_]());
  flags_.reset(new uint8_t[slots_]());
}

int64_t EnvRing::nbytes() const {
  return slots_ * (kFrameBytes + static_cast<int64_t>(sizeof(int32_t) + sizeof(float) + sizeof(uint8_t))) +
         static_cast<int64_t>(sizeof(*this));
}

int64_t EnvRing::history_start(int64_t pos, int64_t floor) const {
  int64_t first = pos;
  while (first > pos - stack_ + 1) {
    if (flags(first) & kEpisodeStart) break;
    if (first == floor) return -1;  // the stack would need a frame older than floor
    --first;
  }
  return first;
}

Walk EnvRing::walk(int64_t pos, int64_t newest) const {
  Walk w;
  if (flags(pos) & (kTerminated | kTruncated)) {  // an episode's last frame has no outgoing transition
    w.status = Walk::kInvalid;
    w.stop = pos;
    return w;
  }
  for (int k = 1; k <= n_step_; ++k) {
    const int64_t q = pos + k;
    if (q > newest) return w;  // pending
    const uint8_t f = flags(q);
    w.stop = q;
    if (f & kEpisodeStart) {  // the episode was cut without a done flag: a truncation at q - 1
      w.status = k == 1 ? Walk::kInvalid : Walk::kValid;
      w.end = q - 1;
      return w;
    }
    w.end = q;
    if ((f & kTerminated) || (life_loss_terminal_ && (f & kLifeLoss))) {
      w.status = Walk::kValid;
      w.terminal = true;
      return w;
    }
    if ((f & kTruncated) || k == n_step_) {
      w.status = Walk::kValid;
      return w;
    }
  }
  return w;
}

bool EnvRing::is_valid(int64_t pos, int64_t written, Walk* walk_out, int64_t* first_out) const {
  const int64_t old = oldest(written);
  if (pos < old || pos >= written) return false;
  const Walk w = walk(pos, written - 1);
  if (w.status != Walk::kValid) return false;
  const int64_t first = history_start(pos, old);
  if (first < 0) return false;
  *walk_out = w;
  *first_out = first;
  return true;
}

void EnvRing::copy_stack(int64_t pos, int64_t first, uint8_t* dst) const {
  for (int k = 0; k < stack_; ++k) {
    const int64_t x = pos - (stack_ - 1 - k);
    if (x < first) {
      std::memset(dst + k * kFrameBytes, 0, kFrameBytes);
    } else {
      racy_copy_from_slot(dst + k * kFrameBytes, frame(x), kFrameBytes);
    }
  }
}

void EnvRing::copy_stack_reusing(int64_t pos, int64_t first, uint8_t* dst, int64_t earlier_pos,
                                 int64_t earlier_first, const uint8_t* earlier) const {
  for (int k = 0; k < stack_; ++k) {
    const int64_t x = pos - (stack_ - 1 - k);
    if (x < first) {
      std::memset(dst + k * kFrameBytes, 0, kFrameBytes);
    } else if (x >= earlier_first && x <= earlier_pos) {
      std::memcpy(dst + k * kFrameBytes, earlier + (stack_ - 1 - (earlier_pos - x)) * kFrameBytes, kFrameBytes);
    } else {
      racy_copy_from_slot(dst + k * kFrameBytes, frame(x), kFrameBytes);
    }
  }
}

bool EnvRing::check_intact(int64_t oldest_read) const {
  // A release read-modify-write (it writes back the value it reads): the reader's loads above cannot
  // move below it, and it is ordered against the writer's claims in claimed_'s modification order.
  return oldest_read >= claimed_.fetch_add(0, std::memory_order_release) - slots_;
}

int64_t EnvRing::count_valid() const {
  const int64_t w = written();
  int64_t count = 0;
  Walk walk_unused;
  int64_t first_unused;
  for (int64_t p = oldest(w); p < w; ++p) count += is_valid(p, w, &walk_unused, &first_unused);
  return count;
}

// Record `dropped` leaves the window: transitions whose stack history starts exactly there, and that
// were counted (decided valid by a record up to newest), stop being sampleable.
void EnvRing::drop_oldest(int64_t dropped, int64_t newest) {
  const int64_t last = std::min<int64_t>(dropped + stack_ - 1, newest);
  for (int64_t p = dropped; p <= last; ++p) {
    if (history_start(p, dropped) != dropped) continue;
    if (walk(p, newest).status == Walk::kValid) --writer_valid_;
  }
}

// Record newest just arrived: transitions whose walk it decides become sampleable if their history is
// still in the window.
void EnvRing::count_decided(int64_t newest) {
  const int64_t old = oldest(newest + 1);
  for (int64_t p = std::max<int64_t>(old, newest - n_step_); p < newest; ++p) {
    const Walk w = walk(p, newest);
    if (w.status == Walk::kValid && w.stop == newest && history_start(p, old) >= 0) ++writer_valid_;
  }
}

void EnvRing::append(const uint8_t* frame, int32_t action, float reward, uint8_t flags) {
  const int64_t a = writer_written_;
  if (a >= capacity_) drop_oldest(a - capacity_, a - 1);
  claimed_.exchange(a + 1, std::memory_order_acquire);  // no data store below can move above the claim
  const int64_t s = slot(a);
  racy_copy_to_slot(frames_.get() + s * kFrameBytes, frame, kFrameBytes);
  racy_store(actions_[s], action);
  racy_store(rewards_[s], reward);
  racy_store(flags_[s], flags);
  written_.store(a + 1, std::memory_order_release);
  writer_written_ = a + 1;
  count_decided(a);
  valid_count_.store(writer_valid_, std::memory_order_relaxed);
}

void EnvRing::restore(int64_t written, int64_t count, const uint8_t* frames, const int32_t* actions,
                      const float* rewards, const uint8_t* flags) {
  if (written < 0 || count != std::min(written, capacity_))
    throw std::invalid_argument("EnvRing::restore: a ring with written=" + std::to_string(written) +
                                " and capacity=" + std::to_string(capacity_) + " must get " +
                                std::to_string(std::min(std::max<int64_t>(written, 0), capacity_)) +
                                " records, got " + std::to_string(count));
  for (int64_t i = 0; i < count; ++i) {
    const int64_t s = slot(written - count + i);
    std::memcpy(frames_.get() + s * kFrameBytes, frames + i * kFrameBytes, kFrameBytes);
    actions_[s] = actions[i];
    rewards_[s] = rewards[i];
    flags_[s] = flags[i];
  }
  claimed_.store(written, std::memory_order_relaxed);
  written_.store(written, std::memory_order_release);
  writer_written_ = written;
  writer_valid_ = count_valid();
  valid_count_.store(writer_valid_, std::memory_order_relaxed);
}

}  // namespace actormimic_fast::replay
