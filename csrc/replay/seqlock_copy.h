// Loads and stores of ring slots that a reader may race with the writer (the seqlock pattern of
// env_ring.h). The race is by design: a reader that copied a slot while the writer overwrote it
// finds out afterwards and throws the copy away, so torn bytes are never used.
//
// Small fields go through std::atomic_ref with relaxed order (plain moves on x86 and ARM, and the
// compiler may not re-read or split them). Frames are memcpy'd at full speed; in a ThreadSanitizer
// build (ACTORMIMIC_TSAN=1) they are copied as relaxed atomic 8-byte words instead, so TSan checks
// the protocol itself rather than reporting the intended race on every frame.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

#if defined(__SANITIZE_THREAD__)
#define ACTORMIMIC_REPLAY_ATOMIC_FRAMES 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ACTORMIMIC_REPLAY_ATOMIC_FRAMES 1
#endif
#endif

namespace actormimic_fast::replay {

template <typename T>
inline T racy_load(const T& field) {
  return std::atomic_ref<T>(const_cast<T&>(field)).load(std::memory_order_relaxed);
}

template <typename T>
inline void racy_store(T& field, T value) {
  std::atomic_ref<T>(field).store(value, std::memory_order_relaxed);
}

/// Copies a frame out of a ring slot (src is 8-byte aligned, bytes a multiple of 8).
inline void racy_copy_from_slot(uint8_t* dst, const uint8_t* src, std::size_t bytes) {
#ifdef ACTORMIMIC_REPLAY_ATOMIC_FRAMES
  const auto* words = reinterpret_cast<const uint64_t*>(src);
  for (std::size_t i = 0; i < bytes / 8; ++i) {
    const uint64_t w = racy_load(words[i]);
    std::memcpy(dst + 8 * i, &w, 8);
  }
#else
  std::memcpy(dst, src, bytes);
#endif
}

/// Copies a frame into a ring slot (dst is 8-byte aligned, bytes a multiple of 8).
inline void racy_copy_to_slot(uint8_t* dst, const uint8_t* src, std::size_t bytes) {
#ifdef ACTORMIMIC_REPLAY_ATOMIC_FRAMES
  auto* words = reinterpret_cast<uint64_t*>(dst);
  for (std::size_t i = 0; i < bytes / 8; ++i) {
    uint64_t w;
    std::memcpy(&w, src + 8 * i, 8);
    racy_store(words[i], w);
  }
#else
  std::memcpy(dst, src, bytes);
#endif
}

}  // namespace actormimic_fast::replay
