// SplitMix64 (Steele, Lea, Flood 2014): the one integer mixer used wherever a seed must be derived
// from (seed, index) pairs, so streams depend on identities, never on thread scheduling.
#pragma once

#include <cstdint>

namespace actormimic_fast {

constexpr uint64_t kGoldenGamma = 0x9e3779b97f4a7c15ULL;

/// Bijective mix of x (the SplitMix64 output function applied to x + golden gamma).
inline uint64_t splitmix64(uint64_t x) {
  x += kGoldenGamma;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace actormimic_fast
