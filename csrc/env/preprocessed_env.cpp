#include "env/preprocessed_env.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "ale/ale_interface.hpp"
#include "ale/common/ColourPalette.hpp"
#include "version.hpp"

namespace actormimic_fast::env {

namespace {

GrayscaleTable grayscale_table(ale::ALEInterface& ale) {
  // ALE only ever writes even palette indices; ask ALE's own palette for each of them.
  std::array<uint8_t, 128> even{};
  for (int i = 0; i < 128; ++i) even[i] = static_cast<uint8_t>(2 * i);
  std::array<uint8_t, 128> gray{};
  ale.theOSystem->colourPalette().applyPaletteGrayscale(gray.data(), even.data(), even.size());
  GrayscaleTable table{};
  for (int v = 0; v < 256; ++v) table[v] = gray[v / 2];
  return table;
}

}  // namespace

PreprocessedEnv::PreprocessedEnv(const std::string& rom_path, const EnvConfig& config, uint64_t seed,
                                 const AreaResizer& resizer)
    : config_(config),
      resizer_(resizer),
      ale_(std::make_unique<ale::ALEInterface>()),
      rng_(seed),
      latest_(kScreenHeight * kScreenWidth, 0),
      previous_(kScreenHeight * kScreenWidth, 0) {
  // ALE calls std::exit() on a missing or unrecognised ROM; refuse those here so they raise instead.
  // isSupportedROM throws for a missing file and requires a checksum ALE knows.
  if (!ale::ALEInterface::isSupportedROM(rom_path)) {
    throw std::runtime_error("its MD5 checksum is not one of the ROMs that ALE " ALE_VERSION " supports");
  }
  ale_->setInt("random_seed", static_cast<int>(seed & 0x7fffffff));
  ale_->setFloat("repeat_action_probability", config.repeat_action_probability);
  ale_->setInt("max_num_frames_per_episode", config.max_episode_frames);
  ale_->loadROM(rom_path);
  const auto& screen = ale_->getScreen();
  if (static_cast<int>(screen.height()) != kScreenHeight || static_cast<int>(screen.width()) != kScreenWidth) {
    throw std::runtime_error("ROM '" + rom_path + "' has a " + std::to_string(screen.height()) + "x" +
                             std::to_string(screen.width()) + " screen; only 210x160 is supported");
  }
  gray_table_ = grayscale_table(*ale_);
  for (ale::Action a : ale_->getMinimalActionSet()) minimal_actions_.push_back(static_cast<int>(a));
  fire_legal_ = std::find(minimal_actions_.begin(), minimal_actions_.end(), kFireAction) != minimal_actions_.end();
}

PreprocessedEnv::~PreprocessedEnv() = default;

void PreprocessedEnv::grab_grayscale(uint8_t* out) {
  to_grayscale(ale_->getScreen().getArray(), gray_table_, out, latest_.size());
}

void PreprocessedEnv::start_episode() {
  ale_->reset_game();
  if (config_.noop_max > 0) {
    const int noops = std::uniform_int_distribution<int>(1, config_.noop_max)(rng_);
    for (int i = 0; i < noops; ++i) {
      ale_->act(static_cast<ale::Action>(kNoopAction));
      if (ale_->game_over()) ale_->reset_game();
    }
  }
  if (config_.fire_reset && fire_legal_) {
    for (int i = 0; i < config_.frame_skip; ++i) ale_->act(static_cast<ale::Action>(kFireAction));
    if (ale_->game_over()) ale_->reset_game();
  }
  lives_ = ale_->lives();
  episode_return_ = 0.0f;
  episode_length_ = 0;
  grab_grayscale(latest_.data());
  std::fill(previous_.begin(), previous_.end(), 0);
  needs_reset_ = false;
}

void PreprocessedEnv::write_observation(const EnvSlot& slot, bool new_episode) {
  if (config_.frame_skip > 1) max_inplace(latest_.data(), previous_.data(), latest_.size());
  uint8_t* newest = slot.obs + static_cast<std::size_t>(config_.stack - 1) * kFramePixels;
  if (new_episode) {
    std::memset(slot.obs, 0, static_cast<std::size_t>(config_.stack - 1) * kFramePixels);
  } else {
    std::memmove(slot.obs, slot.obs + kFramePixels, static_cast<std::size_t>(config_.stack - 1) * kFramePixels);
  }
  resizer_.resize(latest_.data(), newest);
}

void PreprocessedEnv::reset(const EnvSlot& slot) {
  start_episode();
  write_observation(slot, true);
  *slot.reward = 0.0f;
  *slot.terminated = false;
  *slot.truncated = false;
  *slot.life_loss = false;
  *slot.episode_start = true;
  *slot.lives = lives_;
}

void PreprocessedEnv::step(int action, const EnvSlot& slot) {
  if (needs_reset_) {
    reset(slot);
    return;
  }
  const auto ale_action = static_cast<ale::Action>(action);
  float reward = 0.0f;
  bool terminated = false, truncated = false;
  for (int t = 0; t < config_.frame_skip; ++t) {
    reward += static_cast<float>(ale_->act(ale_action));
    terminated = ale_->game_over(/*with_truncation=*/false);
    truncated = ale_->game_truncated();
    if (terminated || truncated) break;
    // Only the last two frames feed the max-pool; fetching the others would waste time.
    if (t == config_.frame_skip - 2) grab_grayscale(previous_.data());
    else if (t == config_.frame_skip - 1) grab_grayscale(latest_.data());
  }
  const int lives = ale_->lives();
  write_observation(slot, false);
  episode_return_ += reward;
  episode_length_ += 1;
  *slot.reward = reward;
  *slot.terminated = terminated;
  *slot.truncated = truncated;
  *slot.life_loss = lives < lives_;
  *slot.episode_start = false;
  *slot.lives = lives;
  lives_ = lives;
  if (terminated || truncated) {
    *slot.episode_return = episode_return_;
    *slot.episode_length = episode_length_;
    needs_reset_ = true;
  }
}

}  // namespace actormimic_fast::env
