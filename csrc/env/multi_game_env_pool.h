// MultiGameEnvPool: many preprocessed ALE envs, of any mix of games, stepped by worker threads.
//
// Data flow: the caller writes one action per env and pushes env ids into `tasks_`; a worker pops an
// id, steps (or resets) that env, which writes straight into the env's row of the per-env outputs
// (`env_outputs()`), then pushes the id into `done_`. The caller's own thread is one of the
// `num_threads` workers: while step()/reset()/recv() wait, it runs queued tasks itself, so only
// num_threads - 1 background threads exist and a small pool never pays two thread wake-ups per step. step()/reset() wait for every env and return the
// per-env rows; send()/recv() are the asynchronous pair (EnvPool style): recv() waits for the first
// `batch_size` finished envs and gathers their rows, in finishing order, into `batch_outputs()`.
//
// Concurrency contract:
//  - Public methods are serialized by `api_mutex_`; call them from any thread (the GIL is released).
//  - An env id is in flight from send() until recv() returns it; while in flight only its worker
//    touches the env and its output row, and sending to it again is an error. The queue handoff
//    (mutex) orders the caller's action write before the worker's read, and the worker's output writes
//    before the caller's read in recv().
//  - Capacity invariant: each env id is in at most one queue at a time (besides, at most once, tasks_'
//    background queue), so queues never hold more than num_envs ids of each kind.
//  - Workers never let an exception escape: the first one is stored and rethrown on the caller's
//    thread by the step()/recv() that collects that env; the pool is then closed. recv() refuses to
//    wait when fewer than batch_size envs are in flight, so it cannot hang.
//  - step() queues envs longest-last-step first (LPT scheduling): envs of slow games start first, so
//    fewer workers idle at the end of a synchronous step; a reset not yet started goes first of all.
//  - Eager resets: ALE's reset emulates some 60-300 frames, the work of 15-75 steps, which a synchronous
//    step would wait for on one thread while the others idle. So when a task ends an episode, the env (its
//    next task being that reset, whatever the action) is also queued as a background item; a background
//    thread with no step to run takes it and resets the env ahead (PreprocessedEnv::prepare_reset), in a
//    step's tail or while the caller is busy between calls, and the env's next task only publishes the
//    result. The caller's thread never takes one (that would delay its return). reset_state_ (under
//    reset_mutex_) hands the env over: pending -> running (background) -> ready; a task arriving while
//    it runs is left to the background thread, which publishes and pushes the env into done_ itself.
//    Same emulator calls and random draws, so the outputs equal a single thread's (tests/test_env.py).
//  - The destructor (and close()) closes both queues, which wakes and ends every worker, then joins.
//  - Colour screens (for videos): capture_screens() sets a per-env flag, only for envs not in flight, so
//    the queue handoff orders the flag before the worker reads it, as for actions. After each reset/step
//    a flagged env's worker writes its RGB screen into its row of screens(); an unflagged env pays one
//    byte read. A row is valid, like the env's output row, until that env is next queued.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "env/action_queue.h"
#include "env/frame_ops.h"
#include "env/preprocessed_env.h"
#include "env/types.h"

namespace actormimic_fast::env {

/// Output arrays with one row per env (per-env outputs) or per batch entry (batch outputs).
struct PoolOutputs {
  explicit PoolOutputs(int rows, int stack);
  int rows;
  std::vector<uint8_t> obs;  // [rows, stack, 84, 84]
  std::vector<float> reward;
  std::unique_ptr<bool[]> terminated, truncated, life_loss, episode_start;
  std::vector<float> episode_return;
  std::vector<int32_t> episode_length, lives, env_id, game_id;
  EnvSlot slot(int row, int stack);
};

class MultiGameEnvPool {
 public:
  struct Game {
    std::string name;
    std::string rom_path;
  };

  /// Builds games.size() * envs_per_game envs (env i plays game i / envs_per_game), loading ROMs on
  /// the worker threads; throws std::invalid_argument for bad sizes or a ROM that ALE knows as another
  /// game's (by MD5), std::runtime_error for unreadable or unknown ROMs.
  MultiGameEnvPool(const std::vector<Game>& games, int envs_per_game, int num_threads, int batch_size,
                   uint64_t seed, const EnvConfig& config, bool invalid_action_to_noop);
  ~MultiGameEnvPool();
  MultiGameEnvPool(const MultiGameEnvPool&) = delete;
  MultiGameEnvPool& operator=(const MultiGameEnvPool&) = delete;

  /// Resets every env and waits; results are in env_outputs().
  void reset();
  /// Steps every env with actions[env] (full 18-action indices) and waits; results in env_outputs().
  void step(const int64_t* actions);
  /// Queues a reset of every env without waiting; collect the results with recv().
  void async_reset();
  /// Queues actions[i] for env_ids[i] without waiting.
  void send(const int64_t* actions, const int32_t* env_ids, int count);
  /// Waits for the first batch_size finished envs; their rows land in batch_outputs(), in finishing order.
  void recv();
  /// Stops the workers; later calls throw std::runtime_error.
  void close();
  /// Sets which envs write their colour screen into screens() after every reset/step (flags[env] != 0;
  /// num_envs flags); an env switched on gets its current screen at once. Throws std::invalid_argument
  /// if the flag of an env in flight would change.
  void capture_screens(const uint8_t* flags);

  int num_envs() const { return static_cast<int>(envs_.size()); }
  int num_games() const { return static_cast<int>(games_.size()); }
  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }
  int batch_size() const { return batch_size_; }
  int stack() const { return config_.stack; }
  bool closed() const { return closed_; }
  const std::vector<Game>& games() const { return games_; }
  /// [num_games, 18] legal-action mask, row-major.
  const std::vector<uint8_t>& action_masks() const { return action_masks_; }
  /// env -> game index.
  const std::vector<int32_t>& game_ids() const { return game_ids_; }
  PoolOutputs& env_outputs() { return env_outputs_; }
  PoolOutputs& batch_outputs() { return batch_outputs_; }
  /// Per env: 1 while capture_screens() has it write its colour screen.
  const std::vector<uint8_t>& capturing() const { return capture_screen_; }
  /// [num_envs, 210, 160, 3] RGB screens of the capturing envs; empty until the first capture, then never
  /// reallocated (so views of it stay valid).
  std::vector<uint8_t>& screens() { return screens_; }

 private:
  void worker_loop();
  void run_task(int env);
  void run_background_reset(int env);
  void check_open() const;
  void dispatch(const std::vector<int>& env_ids);
  void queue_resets(const char* caller);
  void collect(std::size_t count, int* env_ids_out);
  int checked_action(int env, int64_t action) const;

  std::vector<Game> games_;
  EnvConfig config_;
  int batch_size_;
  bool invalid_action_to_noop_;
  AreaResizer resizer_;
  std::vector<std::unique_ptr<PreprocessedEnv>> envs_;
  std::vector<int32_t> game_ids_;
  std::vector<uint8_t> action_masks_;

  std::vector<int> actions_;           // written by the caller before an env is queued
  std::vector<int64_t> step_nanos_;    // each env's last step duration, written by its worker; orders
                                       // step() dispatch longest-first so the step's tail is short
  std::vector<int64_t> sort_keys_;     // step()'s dispatch order, scratch
  std::vector<uint8_t> reset_next_;    // 1: the queued task is a reset, not a step
  // Eager resets, guarded by reset_mutex_: per env, the state of the reset that follows its episode's end,
  // whether its task arrived while that reset ran on another thread, and whether it is in tasks_'
  // background queue (at most once).
  enum ResetState : uint8_t { kNoReset, kResetPending, kResetRunning, kResetReady };
  std::vector<uint8_t> reset_state_, reset_requested_, reset_queued_;
  std::mutex reset_mutex_;
  std::vector<uint8_t> in_flight_;     // caller-side bookkeeping, guarded by api_mutex_
  int num_in_flight_ = 0;
  PoolOutputs env_outputs_, batch_outputs_;
  std::vector<uint8_t> capture_screen_;  // per env, written by the caller only while the env is idle
  std::vector<uint8_t> screens_;         // [num_envs, kScreenRgbBytes] once any env captured
  std::vector<int> scratch_ids_;

  ActionQueue tasks_, done_;
  std::vector<std::thread> workers_;
  std::mutex api_mutex_, error_mutex_;
  std::exception_ptr error_;
  std::atomic<bool> closed_{false};
};

}  // namespace actormimic_fast::env
