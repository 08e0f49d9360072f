// Plain value types shared by the env, the pool and the bindings: settings and per-env outputs.
#pragma once

#include <cstdint>
#include <string>

namespace actormimic_fast::env {

constexpr int kFullActionCount = 18;   // the full Atari action set; every game's actions index into it
constexpr int kScreenHeight = 210;
constexpr int kScreenWidth = 160;
constexpr int kFrameSize = 84;         // preprocessed frames are kFrameSize x kFrameSize
constexpr int kFramePixels = kFrameSize * kFrameSize;
constexpr int kScreenRgbBytes = kScreenHeight * kScreenWidth * 3;  // one colour screen, [210, 160, 3]
constexpr int kNoopAction = 0;
constexpr int kFireAction = 1;

/// Preprocessing and episode settings, identical for every env of a pool.
struct EnvConfig {
  int frame_skip = 4;                     // agent step = frame_skip emulator frames, max over the last two
  int stack = 4;                          // frames per observation; older frames are zero after a reset
  int noop_max = 30;                      // reset plays uniform{1..noop_max} NOOP frames (0: none)
  bool fire_reset = false;                // after the no-ops, one agent step of FIRE where FIRE is legal
  float repeat_action_probability = 0.0f; // ALE sticky actions
  int max_episode_frames = 108000;        // emulator frames before an episode is truncated (0: no cap)
};

/// Where one env writes the result of a reset or a step. All pointers address that env's slot in the
/// pool's per-env output arrays.
struct EnvSlot {
  uint8_t* obs;            // [stack, 84, 84], oldest frame first
  float* reward;           // raw (unclipped) reward of the step
  bool* terminated;        // real game over
  bool* truncated;         // episode frame cap reached
  bool* life_loss;         // a life was lost during the step (never a termination by itself)
  bool* episode_start;     // obs is the first of an episode (a reset happened; reward is 0)
  float* episode_return;   // return of the episode that just ended (valid when terminated or truncated)
  int32_t* episode_length; // agent steps of that episode (same validity)
  int32_t* lives;          // lives after the step
};

}  // namespace actormimic_fast::env
