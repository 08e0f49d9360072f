#include "env/multi_game_env_pool.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "ale/ale_interface.hpp"
#include "ale/common/Log.hpp"
#include "common/splitmix64.h"
#include "version.hpp"

namespace actormimic_fast::env {

namespace {

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

// An env's seed depends on the pool seed, its game and its copy index only, so a game's envs see the
// same streams in a mixed pool as in a pool of that game alone, whatever the thread count.
uint64_t env_seed(uint64_t seed, const std::string& game, int copy) {
  return splitmix64(splitmix64(seed ^ fnv1a(game)) + static_cast<uint64_t>(copy));
}

// Runs body(i) for i in [0, count) on up to num_threads threads; rethrows the first exception here.
template <typename Body>
void parallel_for(int count, int num_threads, Body body) {
  std::atomic<int> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto run = [&] {
    for (int i = next++; i < count; i = next++) {
      try {
        body(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < std::min(num_threads, count); ++t) threads.emplace_back(run);
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

// A ROM must be its game's: ALE recognises a ROM by its MD5 checksum only, so Breakout's ROM given for
// "pong" would otherwise run Breakout under Pong's name (and ALE would exit() on an unknown ROM).
void check_rom(const MultiGameEnvPool::Game& game) {
  const std::string where = "could not load game '" + game.name + "' from ROM '" + game.rom_path + "': ";
  std::optional<std::string> recognised;
  try {
    recognised = ale::ALEInterface::isSupportedROM(game.rom_path);
  } catch (const std::exception& ex) {
    throw std::runtime_error(where + ex.what());
  }
  if (!recognised) {
    throw std::runtime_error(where + "its MD5 checksum is not one of the ROMs that ALE " ALE_VERSION " supports");
  }
  if (*recognised != game.name) {
    throw std::invalid_argument("roms['" + game.name + "']: ROM '" + game.rom_path + "' is the ROM of '" +
                                *recognised + "' by its MD5 checksum, not of '" + game.name + "'");
  }
}

std::string join_actions(const std::vector<int>& actions) {
  std::ostringstream out;
  for (std::size_t i = 0; i < actions.size(); ++i) out << (i ? ", " : "") << actions[i];
  return out.str();
}

}  // namespace

PoolOutputs::PoolOutputs(int rows_, int stack)
    : rows(rows_),
      obs(static_cast<std::size_t>(rows_) * stack * kFramePixels, 0),
      reward(rows_, 0.0f),
      terminated(new bool[rows_]()),
      truncated(new bool[rows_]()),
      life_loss(new bool[rows_]()),
      episode_start(new bool[rows_]()),
      episode_return(rows_, 0.0f),
      episode_length(rows_, 0),
      lives(rows_, 0),
      env_id(rows_, 0),
      game_id(rows_, 0) {}

EnvSlot PoolOutputs::slot(int row, int stack) {
  return EnvSlot{obs.data() + static_cast<std::size_t>(row) * stack * kFramePixels,
                 &reward[row], &terminated[row], &truncated[row], &life_loss[row], &episode_start[row],
                 &episode_return[row], &episode_length[row], &lives[row]};
}

MultiGameEnvPool::MultiGameEnvPool(const std::vector<Game>& games, int envs_per_game, int num_threads,
                                   int batch_size, uint64_t seed, const EnvConfig& config,
                                   bool invalid_action_to_noop)
    : games_(games),
      config_(config),
      batch_size_(batch_size),
      invalid_action_to_noop_(invalid_action_to_noop),
      resizer_(kScreenHeight, kScreenWidth, kFrameSize, kFrameSize),
      env_outputs_(std::max<int>(1, static_cast<int>(games.size()) * envs_per_game), std::max(config.stack, 1)),
      batch_outputs_(std::max(batch_size, 1), std::max(config.stack, 1)) {
  const int num_envs = static_cast<int>(games.size()) * envs_per_game;
  auto fail = [](const std::string& what) { throw std::invalid_argument(what); };
  if (games.empty()) fail("games must name at least one game");
  if (envs_per_game < 1) fail("envs_per_game must be >= 1, got " + std::to_string(envs_per_game));
  if (num_threads < 1) fail("num_threads must be >= 1, got " + std::to_string(num_threads));
  if (batch_size < 1 || batch_size > num_envs)
    fail("batch_size must be in [1, num_envs=" + std::to_string(num_envs) + "], got " + std::to_string(batch_size));
  if (config.frame_skip < 1) fail("frame_skip must be >= 1, got " + std::to_string(config.frame_skip));
  if (config.stack < 1) fail("stack must be >= 1, got " + std::to_string(config.stack));
  if (config.noop_max < 0) fail("noop_max must be >= 0, got " + std::to_string(config.noop_max));
  if (config.max_episode_frames < 0)
    fail("max_episode_frames must be >= 0, got " + std::to_string(config.max_episode_frames));
  if (!(config.repeat_action_probability >= 0.0f && config.repeat_action_probability <= 1.0f))
    fail("repeat_action_probability must be in [0, 1], got " + std::to_string(config.repeat_action_probability));

  ale::Logger::setMode(ale::Logger::Error);  // ALE's banner and ROM notices would flood stderr
  for (const Game& game : games_) check_rom(game);
  envs_.resize(num_envs);
  game_ids_.resize(num_envs);
  for (int e = 0; e < num_envs; ++e) {
    game_ids_[e] = e / envs_per_game;
    env_outputs_.env_id[e] = e;
    env_outputs_.game_id[e] = game_ids_[e];
  }
  parallel_for(num_envs, num_threads, [&](int e) {
    const Game& game = games_[game_ids_[e]];
    try {
      envs_[e] = std::make_unique<PreprocessedEnv>(game.rom_path, config_,
                                                   env_seed(seed, game.name, e % envs_per_game), resizer_);
    } catch (const std::exception& ex) {
      throw std::runtime_error("could not load game '" + game.name + "' from ROM '" + game.rom_path +
                               "': " + ex.what());
    }
  });
  action_masks_.assign(static_cast<std::size_t>(games_.size()) * kFullActionCount, 0);
  for (int g = 0; g < num_games(); ++g)
    for (int a : envs_[g * envs_per_game]->minimal_actions()) action_masks_[g * kFullActionCount + a] = 1;

  actions_.assign(num_envs, kNoopAction);
  step_nanos_.assign(num_envs, 0);
  sort_keys_.assign(num_envs, 0);
  reset_state_.assign(num_envs, kNoReset);
  reset_requested_.assign(num_envs, 0);
  reset_queued_.assign(num_envs, 0);
  reset_next_.assign(num_envs, 0);
  in_flight_.assign(num_envs, 0);
  capture_screen_.assign(num_envs, 0);
  scratch_ids_.resize(num_envs);
  // The caller's thread is the last worker (see collect()); more background threads than envs would idle.
  for (int t = 0; t < std::min(num_threads - 1, num_envs); ++t) workers_.emplace_back([this] { worker_loop(); });
}

MultiGameEnvPool::~MultiGameEnvPool() { close(); }

void MultiGameEnvPool::close() {
  if (closed_.exchange(true)) return;
  tasks_.close();
  done_.close();
  for (auto& w : workers_) w.join();
}

void MultiGameEnvPool::check_open() const {
  if (closed_) throw std::runtime_error("this MultiGameEnvPool is closed");
}

void MultiGameEnvPool::run_task(int env) {
  try {
    const auto start = std::chrono::steady_clock::now();
    const EnvSlot slot = env_outputs_.slot(env, config_.stack);
    uint8_t reset_state;
    {
      std::lock_guard<std::mutex> lock(reset_mutex_);
      reset_state = reset_state_[env];
      if (reset_state == kResetRunning) {  // the thread running its reset finishes this task
        reset_requested_[env] = 1;
        return;
      }
      reset_state_[env] = kNoReset;
    }
    if (reset_state == kResetReady) envs_[env]->publish_reset(slot);
    else if (reset_next_[env] || reset_state == kResetPending) envs_[env]->reset(slot);
    else envs_[env]->step(actions_[env], slot);
    if (capture_screen_[env]) envs_[env]->screen_rgb(screens_.data() + static_cast<std::size_t>(env) * kScreenRgbBytes);
    step_nanos_[env] =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
    if (envs_[env]->needs_reset()) {
      // Before done_ hands the env back: from here a background thread may start its reset.
      bool queue;
      {
        std::lock_guard<std::mutex> lock(reset_mutex_);
        reset_state_[env] = kResetPending;
        queue = !workers_.empty() && !reset_queued_[env];
        if (queue) reset_queued_[env] = 1;
      }
      if (queue) tasks_.push_background(env);
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(error_mutex_);
    if (!error_) error_ = std::current_exception();
  }
  done_.push(env);
}

void MultiGameEnvPool::run_background_reset(int env) {
  {
    std::lock_guard<std::mutex> lock(reset_mutex_);
    reset_queued_[env] = 0;
    if (reset_state_[env] != kResetPending) return;  // a task has reset it already
    reset_state_[env] = kResetRunning;
  }
  try {
    envs_[env]->prepare_reset();
  } catch (...) {
    std::lock_guard<std::mutex> lock(error_mutex_);
    if (!error_) error_ = std::current_exception();
  }
  bool requested;
  {
    std::lock_guard<std::mutex> lock(reset_mutex_);
    reset_state_[env] = kResetReady;
    requested = reset_requested_[env];
    reset_requested_[env] = 0;
  }
  if (requested) run_task(env);  // its task arrived meanwhile: publish the reset and hand the env back
}

void MultiGameEnvPool::worker_loop() {
  while (const auto next = tasks_.pop()) {
    if (next->background) run_background_reset(next->id);
    else run_task(next->id);
  }
}

int MultiGameEnvPool::checked_action(int env, int64_t action) const {
  const int game = game_ids_[env];
  if (action < 0 || action >= kFullActionCount) {
    throw std::invalid_argument("actions: action " + std::to_string(action) + " for env " + std::to_string(env) +
                                " is outside the full action set [0, 17]");
  }
  if (action_masks_[game * kFullActionCount + action]) return static_cast<int>(action);
  if (invalid_action_to_noop_) return kNoopAction;
  throw std::invalid_argument("actions: action " + std::to_string(action) + " for env " + std::to_string(env) +
                              " (game '" + games_[game].name + "') is not in its legal set [" +
                              join_actions(envs_[env]->minimal_actions()) +
                              "]; pass invalid_action='noop' to play NOOP instead");
}

void MultiGameEnvPool::dispatch(const std::vector<int>& env_ids) {
  for (int e : env_ids) in_flight_[e] = 1;
  num_in_flight_ += static_cast<int>(env_ids.size());
  tasks_.push_many(env_ids.begin(), env_ids.end());
}

void MultiGameEnvPool::collect(std::size_t count, int* env_ids_out) {
  // Work while waiting: only this thread queues tasks, so once tasks_ is empty no more can appear
  // before the wait below, and blocking is safe.
  while (done_.size() < count) {
    const auto next = tasks_.try_pop();
    if (!next) break;
    run_task(*next);
  }
  if (!done_.pop_many(count, env_ids_out)) check_open();
  for (std::size_t i = 0; i < count; ++i) in_flight_[env_ids_out[i]] = 0;
  num_in_flight_ -= static_cast<int>(count);
  std::exception_ptr error;
  {
    std::lock_guard<std::mutex> lock(error_mutex_);
    error = error_;
  }
  if (error) {
    close();
    std::rethrow_exception(error);
  }
}

void MultiGameEnvPool::reset() {
  std::lock_guard<std::mutex> lock(api_mutex_);
  queue_resets("reset()");
  collect(num_envs(), scratch_ids_.data());
}

void MultiGameEnvPool::step(const int64_t* actions) {
  std::lock_guard<std::mutex> lock(api_mutex_);
  check_open();
  if (num_in_flight_ > 0) throw std::runtime_error("step(): " + std::to_string(num_in_flight_) +
                                                  " envs still have actions in flight; recv() them first");
  std::vector<int> all(num_envs());
  for (int e = 0; e < num_envs(); ++e) actions_[e] = checked_action(e, actions[e]);  // all valid first
  std::iota(all.begin(), all.end(), 0);
  {
    // A reset that has not started yet is the longest task by far (ALE's reset emulates ~60-300 frames).
    std::lock_guard<std::mutex> lock(reset_mutex_);
    for (int e = 0; e < num_envs(); ++e)
      sort_keys_[e] = reset_state_[e] == kResetPending ? std::numeric_limits<int64_t>::max() : step_nanos_[e];
  }
  std::stable_sort(all.begin(), all.end(), [&](int a, int b) { return sort_keys_[a] > sort_keys_[b]; });
  std::fill(reset_next_.begin(), reset_next_.end(), 0);
  dispatch(all);
  collect(all.size(), scratch_ids_.data());
}

void MultiGameEnvPool::async_reset() {
  std::lock_guard<std::mutex> lock(api_mutex_);
  queue_resets("async_reset()");
}

void MultiGameEnvPool::queue_resets(const char* caller) {
  check_open();
  if (num_in_flight_ > 0) throw std::runtime_error(std::string(caller) + ": " + std::to_string(num_in_flight_) +
                                                   " envs still have actions in flight; recv() them first");
  std::vector<int> all(num_envs());
  std::iota(all.begin(), all.end(), 0);
  std::fill(reset_next_.begin(), reset_next_.end(), 1);
  dispatch(all);
}

void MultiGameEnvPool::send(const int64_t* actions, const int32_t* env_ids, int count) {
  std::lock_guard<std::mutex> lock(api_mutex_);
  check_open();
  std::vector<int> ids(count);
  std::vector<uint8_t> seen(num_envs(), 0);
  for (int i = 0; i < count; ++i) {  // validate everything before anything is queued
    const int e = env_ids[i];
    if (e < 0 || e >= num_envs())
      throw std::out_of_range("env_ids: env id " + std::to_string(e) + " is out of range [0, " +
                              std::to_string(num_envs()) + ")");
    if (in_flight_[e] || seen[e])
      throw std::invalid_argument("env_ids: env " + std::to_string(e) +
                                  " already has an action in flight; recv() it before sending again");
    seen[e] = 1;
    checked_action(e, actions[i]);
    ids[i] = e;
  }
  for (int i = 0; i < count; ++i) {
    actions_[ids[i]] = checked_action(ids[i], actions[i]);
    reset_next_[ids[i]] = 0;
  }
  dispatch(ids);
}

void MultiGameEnvPool::capture_screens(const uint8_t* flags) {
  std::lock_guard<std::mutex> lock(api_mutex_);
  check_open();
  for (int e = 0; e < num_envs(); ++e) {  // validate everything before anything changes
    if (in_flight_[e] && (flags[e] != 0) != (capture_screen_[e] != 0))
      throw std::invalid_argument("env_ids: env " + std::to_string(e) +
                                  " has an action in flight; recv() it before changing its screen capture");
  }
  const bool any = std::any_of(flags, flags + num_envs(), [](uint8_t f) { return f != 0; });
  if (any && screens_.empty()) screens_.assign(static_cast<std::size_t>(num_envs()) * kScreenRgbBytes, 0);
  for (int e = 0; e < num_envs(); ++e) {
    const bool on = flags[e] != 0;
    // The env is idle (not in flight), so this thread may read its emulator.
    if (on && !capture_screen_[e]) envs_[e]->screen_rgb(screens_.data() + static_cast<std::size_t>(e) * kScreenRgbBytes);
    capture_screen_[e] = on;
  }
}

void MultiGameEnvPool::recv() {
  std::lock_guard<std::mutex> lock(api_mutex_);
  check_open();
  if (num_in_flight_ < batch_size_)
    throw std::runtime_error("recv(): only " + std::to_string(num_in_flight_) + " envs are in flight but batch_size is " +
                             std::to_string(batch_size_) + "; recv() would wait forever, send() more first");
  collect(batch_size_, scratch_ids_.data());
  const std::size_t frame_bytes = static_cast<std::size_t>(config_.stack) * kFramePixels;
  PoolOutputs& in = env_outputs_;
  PoolOutputs& out = batch_outputs_;
  for (int b = 0; b < batch_size_; ++b) {
    const int e = scratch_ids_[b];
    std::memcpy(out.obs.data() + b * frame_bytes, in.obs.data() + e * frame_bytes, frame_bytes);
    out.reward[b] = in.reward[e];
    out.terminated[b] = in.terminated[e];
    out.truncated[b] = in.truncated[e];
    out.life_loss[b] = in.life_loss[e];
    out.episode_start[b] = in.episode_start[e];
    out.episode_return[b] = in.episode_return[e];
    out.episode_length[b] = in.episode_length[e];
    out.lives[b] = in.lives[e];
    out.env_id[b] = e;
    out.game_id[b] = game_ids_[e];
  }
}

}  // namespace actormimic_fast::env
