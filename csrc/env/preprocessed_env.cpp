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
      latest_gray_(kScreenHeight * kScreenWidth, 0),
      previous_screen_(kScreenHeight * kScreenWidth, 0),
      prepared_frame_(kFramePixels, 0),
      last_screen_(kScreenHeight * kScreenWidth, 0) {
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

const uint8_t* PreprocessedEnv::screen() const { return ale_->getScreen().getArray(); }

void PreprocessedEnv::screen_rgb(uint8_t* out) const {
  // applyPaletteRGB only reads its source, though ALE declares it non-const.
  uint8_t* indices = const_cast<uint8_t*>(show_last_screen_ ? last_screen_.data() : screen());
  ale_->theOSystem->colourPalette().applyPaletteRGB(out, indices, static_cast<std::size_t>(kScreenHeight) * kScreenWidth);
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
  previous_is_zero_ = true;
  needs_reset_ = false;
}

// Moves the stack one frame older (or zeroes it for a new episode); returns where the newest goes.
uint8_t* PreprocessedEnv::shift_stack(const EnvSlot& slot, bool new_episode) {
  const std::size_t older = static_cast<std::size_t>(config_.stack - 1) * kFramePixels;
  if (new_episode) std::memset(slot.obs, 0, older);
  else std::memmove(slot.obs, slot.obs + kFramePixels, older);
  return slot.obs + older;
}

void PreprocessedEnv::reset(const EnvSlot& slot) {
  start_episode();
  resizer_.resize_frames(screen(), nullptr, gray_table_, latest_gray_.data(), shift_stack(slot, true));
  write_reset_outputs(slot);
}

void PreprocessedEnv::prepare_reset() {
  start_episode();
  resizer_.resize_frames(screen(), nullptr, gray_table_, latest_gray_.data(), prepared_frame_.data());
}

void PreprocessedEnv::publish_reset(const EnvSlot& slot) {
  std::memcpy(shift_stack(slot, true), prepared_frame_.data(), kFramePixels);
  write_reset_outputs(slot);
}

// A reset's outputs besides the observation.
void PreprocessedEnv::write_reset_outputs(const EnvSlot& slot) {
  show_last_screen_ = false;
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
  const int skip = config_.frame_skip;
  float reward = 0.0f;
  bool terminated = false, truncated = false;
  int t = 0;
  for (; t < skip; ++t) {
    reward += static_cast<float>(ale_->act(ale_action));
    terminated = ale_->game_over(/*with_truncation=*/false);
    truncated = ale_->game_truncated();
    if (terminated || truncated) break;
    // Only the last two frames feed the max-pool; fetching the others would waste time.
    if (t == skip - 2) {
      std::memcpy(previous_screen_.data(), screen(), previous_screen_.size());
      previous_is_zero_ = false;
    }
  }
  uint8_t* newest = shift_stack(slot, false);
  const bool pool_two = skip > 1 && !previous_is_zero_;
  if (t == skip) {  // the common case: the last frame is on screen now
    resizer_.resize_frames(screen(), pool_two ? previous_screen_.data() : nullptr, gray_table_,
                           latest_gray_.data(), newest);
  } else {
    // Ended inside the frame skip: like gymnasium, the max uses the previous observation's frame and
    // whatever obs_buffer[1] holds now.
    if (pool_two) {
      std::vector<uint8_t> previous_gray(previous_screen_.size());
      to_grayscale(previous_screen_.data(), gray_table_, previous_gray.data(), previous_gray.size());
      max_inplace(latest_gray_.data(), previous_gray.data(), latest_gray_.size());
    }
    resizer_.resize(latest_gray_.data(), newest);
  }
  const int lives = ale_->lives();
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
    std::memcpy(last_screen_.data(), screen(), last_screen_.size());  // prepare_reset() may move on
    show_last_screen_ = true;
  }
}

}  // namespace actormimic_fast::env
