// One ALE emulator plus the standard DQN preprocessing, stepped by exactly one thread at a time.
//
// Matches gymnasium's AtariPreprocessing (frame_skip, max over the last two frames, grayscale,
// INTER_AREA resize) followed by a zero-padded frame stack, including its behaviour when an episode
// ends inside a frame skip (the max then uses the previous step's buffer, as gymnasium and the
// baselines wrappers do). Episodes reset on the step after they end ("next-step" autoreset, as in
// EnvPool, ale-py's vector env and gymnasium's default): that step ignores its action and reports
// the reset observation with episode_start set.
//
// The reset that follows an episode's end can also run ahead of that step (prepare_reset(), on a pool
// thread while the caller is busy elsewhere), its observation kept until publish_reset() writes it: the
// same emulator calls and random draws in the same order, so the outputs are those of reset(). Until
// then screen_rgb() shows the episode's last screen, kept at its end.
//
// Concurrency: not thread-safe; the pool guarantees one owner thread at a time. The AreaResizer it
// references is shared and immutable.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "env/frame_ops.h"
#include "env/types.h"

namespace ale {
class ALEInterface;
}

namespace actormimic_fast::env {

class PreprocessedEnv {
 public:
  /// Loads the ROM (throws std::runtime_error when ALE rejects it). seed fixes ALE's RNG and the no-ops.
  PreprocessedEnv(const std::string& rom_path, const EnvConfig& config, uint64_t seed,
                  const AreaResizer& resizer);
  ~PreprocessedEnv();
  PreprocessedEnv(const PreprocessedEnv&) = delete;
  PreprocessedEnv& operator=(const PreprocessedEnv&) = delete;

  /// Starts a new episode and writes its first observation into slot.
  void reset(const EnvSlot& slot);
  /// Whether the last step ended the episode (the next step() resets).
  bool needs_reset() const { return needs_reset_; }
  /// Starts a new episode now and keeps its first observation for publish_reset().
  void prepare_reset();
  /// Writes the observation of the episode prepare_reset() started into slot, as reset() would have.
  void publish_reset(const EnvSlot& slot);
  /// Plays action (an index into the full 18-action set) for one agent step, or resets when the
  /// previous step ended the episode.
  void step(int action, const EnvSlot& slot);

  /// Writes the emulator's colour screen as it is now ([210, 160, 3] RGB, ALE's palette, what
  /// ALEInterface::getScreenRGB returns): after a step, its last emulator frame, not max-pooled.
  void screen_rgb(uint8_t* out) const;

  /// The game's minimal action set, as indices into the full 18-action set.
  const std::vector<int>& minimal_actions() const { return minimal_actions_; }

 private:
  void start_episode();
  uint8_t* shift_stack(const EnvSlot& slot, bool new_episode);
  void write_reset_outputs(const EnvSlot& slot);
  const uint8_t* screen() const;

  EnvConfig config_;
  const AreaResizer& resizer_;
  std::unique_ptr<ale::ALEInterface> ale_;
  std::mt19937_64 rng_;
  GrayscaleTable gray_table_{};
  std::vector<int> minimal_actions_;
  bool fire_legal_ = false;

  // gymnasium's obs_buffer[0] (the last observation's max-pooled grayscale frame) and obs_buffer[1]
  // (the frame grabbed at t = frame_skip - 2), the latter kept as palette indices: copying indices is
  // cheaper than converting them, and the fused pass converts both frames at once.
  std::vector<uint8_t> latest_gray_, previous_screen_;
  bool previous_is_zero_ = true;  // obs_buffer[1] is zero-filled after a reset
  std::vector<uint8_t> prepared_frame_;  // [84, 84]: the first frame of the episode prepare_reset() began
  std::vector<uint8_t> last_screen_;     // palette indices of the screen an episode ended on
  bool show_last_screen_ = false;        // screen_rgb() shows last_screen_ (the emulator moved on ahead)
  bool needs_reset_ = true;
  float episode_return_ = 0.0f;
  int32_t episode_length_ = 0;
  int lives_ = 0;
};

}  // namespace actormimic_fast::env
