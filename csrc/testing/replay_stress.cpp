#include "testing/replay_stress.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "common/splitmix64.h"
#include "replay/replay_memory.h"

namespace actormimic_fast::testing {

using replay::BatchOutput;
using replay::kFrameBytes;
using replay::ReplayConfig;
using replay::ReplayMemory;
using replay::StepInput;

namespace {

// The writer's whole history as pure functions of (env, t); the checker re-derives every transition
// from them with its own copy of the rules, independent of EnvRing.
struct History {
  int stack, n_step;
  bool life_loss_terminal;
  float gamma;

  uint64_t hash(int env, int64_t t) const { return splitmix64((static_cast<uint64_t>(env) << 40) ^ static_cast<uint64_t>(t)); }
  bool terminated(int env, int64_t t) const { return hash(env, t) % 23 == 0; }
  bool truncated(int env, int64_t t) const { return !terminated(env, t) && (hash(env, t) >> 8) % 29 == 0; }
  bool life_loss(int env, int64_t t) const { return (hash(env, t) >> 16) % 7 == 0; }
  bool episode_start(int env, int64_t t) const { return t == 0 || terminated(env, t - 1) || truncated(env, t - 1); }
  int32_t action(int env, int64_t t) const { return static_cast<int32_t>((hash(env, t) >> 24) % 18); }
  float reward(int env, int64_t t) const {
    return episode_start(env, t) ? 0.0f : static_cast<float>(static_cast<int>((hash(env, t) >> 32) % 5) - 2);
  }
  static uint64_t tag(int env, int64_t t) { return (static_cast<uint64_t>(env + 1) << 40) | static_cast<uint64_t>(t + 1); }

  void fill_frame(int env, int64_t t, uint8_t* frame) const {
    const uint64_t w = tag(env, t);
    for (int64_t i = 0; i < kFrameBytes / 8; ++i) std::memcpy(frame + 8 * i, &w, 8);
  }

  int64_t first(int env, int64_t p) const {
    int64_t x = p;
    while (x > p - stack + 1 && !episode_start(env, x)) --x;
    return x;
  }

  // Every word of the stack of record p equals the expected tag (0 before the episode start)?
  bool stack_matches(int env, int64_t p, const uint8_t* obs) const {
    const int64_t f = first(env, p);
    for (int k = 0; k < stack; ++k) {
      const int64_t x = p - (stack - 1 - k);
      const uint64_t expected = x < f ? 0 : tag(env, x);
      const uint8_t* frame = obs + k * kFrameBytes;
      uint64_t diff = 0;
      for (int64_t i = 0; i < kFrameBytes / 8; ++i) {
        uint64_t w;
        std::memcpy(&w, frame + 8 * i, 8);
        diff |= w ^ expected;
      }
      if (diff) return false;
    }
    return true;
  }

  // Empty string when row `row` of out is the transition (env, p) must be.
  std::string check(const BatchOutput& out, int64_t row, int num_games) const {
    const int env = static_cast<int>(out.env_id[row]);
    const int64_t p = out.index[row];
    const std::string where = "row " + std::to_string(row) + " (env " + std::to_string(env) + ", index " + std::to_string(p) + "): ";
    if (env < 0 || p < 0) return where + "bad env or index";
    if (out.game_id[row] != env % num_games) return where + "wrong game_id";
    if (terminated(env, p) || truncated(env, p)) return where + "an episode's last frame was sampled as a state";
    float ret = 0.0f, weight = 1.0f;
    int64_t end = -1;
    bool terminal = false;
    for (int k = 1; k <= n_step; ++k) {
      const int64_t q = p + k;
      if (episode_start(env, q)) {
        if (k == 1) return where + "the next record starts an episode";
        end = q - 1;
        break;
      }
      ret += weight * reward(env, q);
      weight *= gamma;
      if (terminated(env, q) || (life_loss_terminal && life_loss(env, q))) {
        end = q;
        terminal = true;
        break;
      }
      if (truncated(env, q) || k == n_step) {
        end = q;
        break;
      }
    }
    if (!stack_matches(env, p, out.obs + row * stack * kFrameBytes)) return where + "obs frames are wrong (torn)";
    if (!stack_matches(env, end, out.next_obs + row * stack * kFrameBytes)) return where + "next_obs frames are wrong (torn)";
    if (out.action[row] != action(env, p + 1)) return where + "wrong action";
    if (out.reward[row] != ret) return where + "wrong return";
    if (out.discount[row] != (terminal ? 0.0f : weight) || out.done[row] != terminal) return where + "wrong discount";
    return {};
  }
};

struct RowBuffers {
  RowBuffers(int64_t rows, int stack)
      : obs(rows * stack * kFrameBytes), next_obs(rows * stack * kFrameBytes), action(rows), reward(rows),
        discount(rows), done(new bool[rows]()), game_id(rows), env_id(rows), index(rows) {}
  BatchOutput view() {
    return {obs.data(), next_obs.data(), action.data(), reward.data(), discount.data(), done.get(),
            game_id.data(), env_id.data(), index.data()};
  }
  std::vector<uint8_t> obs, next_obs;
  std::vector<int64_t> action;
  std::vector<float> reward, discount;
  std::unique_ptr<bool[]> done;
  std::vector<int64_t> game_id, env_id, index;
};

}  // namespace

StressResult replay_stress_test(const StressSettings& s) {
  if (s.num_envs < 1 || s.num_games < 1 || s.num_games > s.num_envs)
    throw std::invalid_argument("replay_stress_test: need 1 <= num_games <= num_envs, got num_games=" +
                                std::to_string(s.num_games) + ", num_envs=" + std::to_string(s.num_envs));
  if (s.num_samplers < 1 || s.batch_size < s.num_games || s.min_samples < 1)
    throw std::invalid_argument("replay_stress_test: need num_samplers >= 1, batch_size >= num_games, min_samples >= 1");
  ReplayConfig config;
  config.stack = s.stack;
  config.n_step = s.n_step;
  config.gamma = 0.99f;
  config.life_loss_terminal = s.life_loss_terminal;
  config.guard = s.guard;
  config.num_threads = s.sampler_threads;
  config.seed = s.seed;
  std::vector<int32_t> env_game_ids(s.num_envs);
  for (int e = 0; e < s.num_envs; ++e) env_game_ids[e] = e % s.num_games;
  ReplayMemory memory(env_game_ids, std::vector<int64_t>(s.num_games, s.capacity_per_game), config);
  memory.set_unsafe_skip_overwrite_check(s.skip_overwrite_check);
  const History history{s.stack, s.n_step, s.life_loss_terminal, config.gamma};

  std::atomic<bool> stop_writer{false};
  std::atomic<int64_t> records{0}, checked{0}, torn{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  std::string first_error;
  auto fail = [&](std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (!error) error = e;
  };
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };

  std::thread writer([&] {
    try {
      const int n = s.num_envs;
      std::vector<int32_t> ids(n);
      std::vector<uint8_t> frames(n * kFrameBytes);
      std::vector<int64_t> actions(n);
      std::vector<float> rewards(n);
      std::unique_ptr<bool[]> term(new bool[n]), trunc(new bool[n]), life(new bool[n]), begin(new bool[n]);
      for (int64_t t = 0; !stop_writer.load(std::memory_order_relaxed); ++t) {
        for (int e = 0; e < n; ++e) {
          ids[e] = e;
          history.fill_frame(e, t, frames.data() + e * kFrameBytes);
          actions[e] = history.action(e, t);
          rewards[e] = history.reward(e, t);
          term[e] = history.terminated(e, t);
          trunc[e] = history.truncated(e, t);
          life[e] = history.life_loss(e, t);
          begin[e] = history.episode_start(e, t);
        }
        StepInput step{n, ids.data(), frames.data(), kFrameBytes, actions.data(), rewards.data(),
                       term.get(), trunc.get(), life.get(), begin.get()};
        memory.add(step);
        records.fetch_add(n, std::memory_order_relaxed);
      }
    } catch (...) {
      fail(std::current_exception());
    }
  });

  const int64_t quota = (s.min_samples + s.num_samplers - 1) / s.num_samplers;
  std::vector<std::thread> samplers;
  for (int i = 0; i < s.num_samplers; ++i) {
    samplers.emplace_back([&, i] {
      try {
        std::vector<int32_t> games(s.num_games);
        for (int g = 0; g < s.num_games; ++g) games[g] = g;
        auto ready = [&] {
          for (int g = 0; g < s.num_games; ++g)
            if (memory.num_transitions(g) < s.batch_size) return false;
          return true;
        };
        while (!ready()) {
          if (elapsed() > s.max_seconds) return;
          std::this_thread::yield();
        }
        RowBuffers rows(s.batch_size, s.stack);
        const BatchOutput out = rows.view();
        const int64_t per_game = s.batch_size / s.num_games;
        for (int64_t call = 0, done = 0; done < quota && elapsed() < s.max_seconds; ++call) {
          const uint64_t seed = splitmix64(s.seed ^ (static_cast<uint64_t>(i) << 48) ^ static_cast<uint64_t>(call));
          // Alternate the two modes: uniform over all games, and a fixed count per game.
          const int64_t n = call % 2 ? per_game * s.num_games : s.batch_size;
          memory.sample(games, call % 2 ? per_game : 0, s.batch_size, seed, std::numeric_limits<float>::infinity(), out);
          for (int64_t r = 0; r < n; ++r) {
            std::string problem = history.check(out, r, s.num_games);
            if (!problem.empty()) {
              torn.fetch_add(1, std::memory_order_relaxed);
              std::lock_guard<std::mutex> lock(error_mutex);
              if (first_error.empty()) first_error = std::move(problem);
            }
          }
          done += n;
          checked.fetch_add(n, std::memory_order_relaxed);
        }
      } catch (...) {
        fail(std::current_exception());
      }
    });
  }
  for (auto& t : samplers) t.join();
  stop_writer.store(true);
  writer.join();
  if (error) std::rethrow_exception(error);

  StressResult result;
  result.samples = checked.load();
  result.torn = torn.load();
  result.records_written = records.load();
  result.overwrite_redraws = memory.overwrite_redraws();
  result.seconds = elapsed();
  result.first_error = first_error;
  return result;
}

}  // namespace actormimic_fast::testing
