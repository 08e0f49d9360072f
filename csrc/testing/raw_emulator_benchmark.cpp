#include "testing/raw_emulator_benchmark.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "ale/ale_interface.hpp"
#include "ale/common/Log.hpp"

namespace actormimic_fast::testing {

double raw_emulator_frames_per_second(const std::string& rom_path, int num_threads, int64_t frames_per_thread,
                                      int frame_skip, uint64_t seed) {
  if (num_threads < 1) throw std::invalid_argument("num_threads must be >= 1, got " + std::to_string(num_threads));
  if (frames_per_thread < 1 || frame_skip < 1)
    throw std::invalid_argument("frames_per_thread and frame_skip must be >= 1");
  ale::Logger::setMode(ale::Logger::Error);
  std::vector<std::unique_ptr<ale::ALEInterface>> emulators;
  for (int t = 0; t < num_threads; ++t) {
    auto ale = std::make_unique<ale::ALEInterface>();
    ale->setInt("random_seed", static_cast<int>((seed + t) & 0x7fffffff));
    ale->setFloat("repeat_action_probability", 0.0f);
    ale->loadROM(rom_path);
    emulators.push_back(std::move(ale));
  }
  std::atomic<int> waiting{num_threads};
  auto play = [&](int t) {
    ale::ALEInterface& ale = *emulators[t];
    const ale::ActionVect actions = ale.getMinimalActionSet();
    std::mt19937 rng(static_cast<uint32_t>(seed + 7919 * t));
    std::uniform_int_distribution<std::size_t> pick(0, actions.size() - 1);
    waiting--;
    while (waiting.load() > 0) {}  // start together
    ale::Action action = actions[0];
    for (int64_t f = 0; f < frames_per_thread; ++f) {
      if (f % frame_skip == 0) action = actions[pick(rng)];
      ale.act(action);
      if (ale.game_over()) ale.reset_game();
    }
  };
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < num_threads; ++t) threads.emplace_back(play, t);
  for (auto& th : threads) th.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(frames_per_thread) * num_threads / seconds;
}

}  // namespace actormimic_fast::testing
