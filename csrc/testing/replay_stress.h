// ReplayStress (test-only code, kept out of csrc/replay): one writer thread and several sampler threads
// hammering one ReplayMemory, every sampled transition checked against what the writer must have stored.
// Used by tests/test_replay_concurrency.py (through _C.replay_stress_test) and by the standalone
// ThreadSanitizer build (tests/cpp/).
//
// Data flow: the writer adds one record per env per step; every 8-byte word of frame (env, t) holds the
// tag (env + 1) << 40 | (t + 1), and the record's action, reward and flags are pure functions of
// (env, t), so a checker knows the whole history without sharing state with the writer. Samplers call
// sample() and compare each row (obs and next_obs word by word, action, return, discount, game) with
// the transition those functions define for the row's (env_id, index). A torn copy (frames from before
// and after an overwrite) or a stack that crossed into overwritten history shows up as a wrong tag.
//
// Concurrency contract: the writer is the memory's only writer; samplers only read; they share nothing
// but the memory and atomic counters. The call returns once every sampler has checked its quota of
// rows (or max_seconds passed); the writer stops after the samplers.
#pragma once

#include <cstdint>
#include <string>

namespace actormimic_fast::testing {

struct StressSettings {
  int num_envs = 4;
  int num_games = 2;                  // env e plays game e % num_games
  int64_t capacity_per_game = 128;    // small, so the writer laps the rings constantly
  int guard = 0;                      // 0: the writer overwrites the oldest sampleable slot every add
  int stack = 4;
  int n_step = 3;
  bool life_loss_terminal = false;
  int num_samplers = 2;
  int sampler_threads = 1;            // ReplayConfig::num_threads of the memory
  int64_t batch_size = 16;
  int64_t min_samples = 1000000;      // rows checked in total
  double max_seconds = 60.0;
  bool skip_overwrite_check = false;  // test hook: disable the seqlock check (torn rows expected)
  uint64_t seed = 0;
};

struct StressResult {
  int64_t samples = 0;          // rows checked
  int64_t torn = 0;             // rows that differ from the writer's history
  int64_t records_written = 0;  // records the writer added
  int64_t overwrite_redraws = 0;
  double seconds = 0.0;
  std::string first_error;      // description of the first torn row
};

/// Runs the stress test; throws std::invalid_argument for bad settings.
StressResult replay_stress_test(const StressSettings& settings);

}  // namespace actormimic_fast::testing
