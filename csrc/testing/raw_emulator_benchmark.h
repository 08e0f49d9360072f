// The raw emulator ceiling that the pool is measured against: bare ALE act() loops, no preprocessing,
// one emulator per thread, all threads at once. Used by benchmarks/ only (test-only code, kept out of
// csrc/env).
#pragma once

#include <cstdint>
#include <string>

namespace actormimic_fast::testing {

/// Emulator frames per second of num_threads emulators of one ROM stepped at once, each playing
/// frames_per_thread frames of random legal actions (a new action every frame_skip frames, reset on
/// game over). ROM loading is outside the timed region.
double raw_emulator_frames_per_second(const std::string& rom_path, int num_threads, int64_t frames_per_thread,
                                      int frame_skip, uint64_t seed);

}  // namespace actormimic_fast::testing
