// Plain value types of the replay memory: settings, record flags, one add() call's inputs and one
// sample()'s output pointers. No behaviour lives here.
#pragma once

#include <cstdint>

namespace actormimic_fast::replay {

constexpr int kFrameSize = 84;                         // frames are kFrameSize x kFrameSize uint8
constexpr int64_t kFrameBytes = kFrameSize * kFrameSize;

/// Bits of a record's flags byte, as the pool reports them for that step.
enum RecordFlag : uint8_t {
  kTerminated = 1,    // real game over at this frame
  kTruncated = 2,     // episode cut by the frame cap at this frame (bootstrap from it)
  kLifeLoss = 4,      // a life was lost on the step that produced this frame
  kEpisodeStart = 8,  // this frame is the first of an episode (no incoming transition)
};

/// Settings fixed for the life of a memory (they decide which transitions are valid).
struct ReplayConfig {
  int stack = 4;                    // frames per observation, oldest first; frames before an episode's first are 0
  int n_step = 1;                   // transitions return up to n_step rewards
  float gamma = 0.99f;              // discount of the n-step return and of the bootstrap
  bool life_loss_terminal = false;  // a life loss ends the return with discount 0 (the episode goes on)
  int guard = 8;                    // slots per env ring beyond its capacity that readers never sample
  int num_threads = 1;              // threads that copy one sample() call's batch (the caller included)
  uint64_t seed = 0;                // seeds sample() calls made without an explicit seed
};

/// One add() call: record i is for env env_ids[i]. Frame i starts at frames + i * frame_row_stride and
/// is 84 rows of 84 contiguous bytes, so a pool's strided obs[:, -1] is read in place.
struct StepInput {
  int64_t count = 0;
  const int32_t* env_ids = nullptr;
  const uint8_t* frames = nullptr;
  int64_t frame_row_stride = kFrameBytes;
  const int64_t* actions = nullptr;  // a_{t-1}: the action sent on the step that produced frame i
  const float* rewards = nullptr;    // raw reward that came with frame i
  const bool* terminated = nullptr;
  const bool* truncated = nullptr;
  const bool* life_loss = nullptr;
  const bool* episode_start = nullptr;
};

/// Where a batch of transitions is written; each pointer addresses batch_size rows, contiguous.
struct BatchOutput {
  uint8_t* obs = nullptr;       // [B, stack, 84, 84]
  uint8_t* next_obs = nullptr;  // [B, stack, 84, 84]
  int64_t* action = nullptr;    // [B]
  float* reward = nullptr;      // [B] n-step return, rewards clipped to [-reward_clip, reward_clip]
  float* discount = nullptr;    // [B] gamma^k for a return of k rewards that bootstraps, 0 at a termination
  bool* done = nullptr;         // [B] the return ended at a termination (discount is 0)
  int64_t* game_id = nullptr;   // [B]
  int64_t* env_id = nullptr;    // [B]
  int64_t* index = nullptr;     // [B] position of s_t in its env's record sequence (0 = the env's first add)
};

}  // namespace actormimic_fast::replay
