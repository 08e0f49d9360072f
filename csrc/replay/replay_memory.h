// ReplayMemory: one replay for many envs and many games, each 84x84 frame stored once.
//
// Data flow: after every pool step the learner calls add() with the step's env ids, newest frames
// (obs[:, -1], read in place through a row stride), the actions that produced them, raw rewards and
// flags. Each env owns an EnvRing (env_ring.h: the record convention, the stack and n-step rules and
// the lock-free protocol); a game's capacity is split evenly over its envs' rings. sample() draws
// transitions uniformly over the valid transitions of the requested games (or a fixed number per game)
// and rebuilds their stacks straight into the caller's output buffers, split over SamplerThreads.
//
// Concurrency contract:
//  - One writer: add(), export_records() and restore() must not overlap each other; an overlapping
//    call throws std::runtime_error instead of corrupting the memory (atomic writer_busy_ flag).
//  - Any number of threads may call sample(), gather() and the counters at any time, also during add():
//    no locks are taken between the writer and samplers. Each drawn transition is copied under the
//    ring's seqlock check and redrawn (sample) or reported (gather) if the writer overwrote it meanwhile,
//    so a returned transition is never torn. Draws weight rings by a relaxed snapshot of their valid
//    counts, so uniformity is exact when the writer is idle and approximate while it writes.
//  - restore() (load_state_dict) rewrites slots without the seqlock, so it refuses to start while a
//    sample()/gather() runs and those refuse to start while it runs (a Dekker pair of seq_cst atomics:
//    active_readers_ and restoring_), each with a std::runtime_error.
//  - Results of sample(seed) depend on the seed and the memory's content only, not on num_threads:
//    item i draws from its own generator seeded by (seed, i).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "replay/env_ring.h"
#include "replay/sampler_threads.h"
#include "replay/types.h"

namespace actormimic_fast::replay {

/// Flat record arrays of a saved memory (state_dict / load_state_dict).
struct RecordArrays {
  uint8_t* frames;  // [records, 84, 84]
  int32_t* actions;
  float* rewards;
  uint8_t* flags;
};
struct ConstRecordArrays {
  const uint8_t* frames;
  const int32_t* actions;
  const float* rewards;
  const uint8_t* flags;
};

class ReplayMemory {
 public:
  /// env_game_ids[e] is env e's game; capacity_per_game[g] records of game g are kept, split evenly over
  /// its envs. Throws std::invalid_argument for bad sizes or settings.
  ReplayMemory(std::vector<int32_t> env_game_ids, std::vector<int64_t> capacity_per_game,
               const ReplayConfig& config);
  ReplayMemory(const ReplayMemory&) = delete;
  ReplayMemory& operator=(const ReplayMemory&) = delete;

  /// Appends one record per entry of step (writer only); validates everything (env ids, actions in [0, 2^31),
  /// finite rewards) before storing anything.
  void add(const StepInput& step);

  /// Draws transitions into out (batch rows). per_game > 0: per_game rows for each of `games`, in that
  /// order; per_game == 0: batch_size rows uniform over the valid transitions of `games`. reward_clip
  /// clips each reward to [-clip, clip] before discounting (pass infinity for none).
  void sample(const std::vector<int32_t>& games, int64_t per_game, int64_t batch_size, uint64_t seed,
              float reward_clip, const BatchOutput& out);
  /// Writes the transitions from (env_ids[i], indices[i]); std::out_of_range when one is not sampleable.
  void gather(const int32_t* env_ids, const int64_t* indices, int64_t count, float reward_clip,
              const BatchOutput& out);
  /// Every sampleable (env, index) of a game, env-major, oldest first (a scan: for tests and tools).
  void valid_indices(int32_t game, std::vector<int32_t>* env_ids, std::vector<int64_t>* indices) const;

  /// Sampleable transitions of a game (snapshot).
  int64_t num_transitions(int32_t game) const;
  /// Records a game keeps now (at most its capacity).
  int64_t num_records(int32_t game) const;
  /// Records an env has added since creation (its next record's index).
  int64_t env_written(int32_t env) const;
  /// Bytes allocated by all rings (frames, actions, rewards, flags, guard slots included).
  int64_t nbytes() const;
  /// Draws thrown away because the writer overwrote them mid-copy (seqlock check failed).
  int64_t overwrite_redraws() const { return overwrite_redraws_.load(std::memory_order_relaxed); }
  /// A fresh seed for a sample() call made without one (from config.seed and a call counter).
  uint64_t next_seed();

  int num_envs() const { return static_cast<int>(rings_.size()); }
  int num_games() const { return static_cast<int>(capacity_per_game_.size()); }
  const ReplayConfig& config() const { return config_; }
  const std::vector<int32_t>& env_game_ids() const { return env_game_ids_; }
  const std::vector<int64_t>& capacity_per_game() const { return capacity_per_game_; }
  int64_t env_capacity(int32_t env) const { return rings_[env]->capacity(); }
  int num_threads() const { return threads_.num_threads(); }
  uint64_t seed_calls() const { return seed_calls_.load(std::memory_order_relaxed); }

  /// Records env keeps now (= min(env_written, env_capacity)).
  int64_t env_records(int32_t env) const;
  /// Copies every env's kept records into the arrays allocate(total) returns: env 0's oldest first, then
  /// env 1's...; env_written receives each env's record count (writer side: must not overlap add()).
  void export_records(std::vector<int64_t>* env_written, const std::function<RecordArrays(int64_t)>& allocate);
  /// Replaces every ring's content (load_state_dict) by records laid out as export_records() writes them;
  /// the arrays must hold sum_e min(env_written[e], env_capacity(e)) records.
  void restore(const std::vector<int64_t>& env_written, const ConstRecordArrays& records, uint64_t seed_calls);
  /// Records restore() expects for these env_written counts; std::invalid_argument if any is negative or
  /// their number is not num_envs.
  int64_t records_for(const std::vector<int64_t>& env_written) const;

  /// Test hook: skip the seqlock check so the stress test can show that its checker sees torn copies.
  void set_unsafe_skip_overwrite_check(bool skip) { skip_overwrite_check_.store(skip); }

 private:
  struct ReaderScope;
  struct WriterScope;
  void check_game(int32_t game, const char* what) const;
  bool write_transition(const EnvRing& ring, int32_t env, int64_t pos, const Walk& walk, int64_t first,
                        float reward_clip, const BatchOutput& out, int64_t row) const;
  std::string explain_invalid(int32_t env, int64_t pos) const;

  ReplayConfig config_;
  std::vector<int32_t> env_game_ids_;
  std::vector<int64_t> capacity_per_game_;
  std::vector<std::vector<int32_t>> game_envs_;
  std::vector<std::unique_ptr<EnvRing>> rings_;
  SamplerThreads threads_;
  std::atomic<bool> writer_busy_{false};
  mutable std::atomic<int> active_readers_{0};
  std::atomic<bool> restoring_{false};
  std::atomic<bool> skip_overwrite_check_{false};
  std::atomic<uint64_t> seed_calls_{0};
  mutable std::atomic<int64_t> overwrite_redraws_{0};
};

}  // namespace actormimic_fast::replay
