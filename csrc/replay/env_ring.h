// EnvRing: the records of one env in a circular store, each 84x84 frame stored once, plus the rules
// that turn consecutive records into stacked, n-step transitions.
//
// Data flow: ReplayMemory::add() appends one record per env per pool step: (frame s_p, the action
// a_{p-1} that produced it, the raw reward r_p that came with it, flags terminated / truncated /
// life_loss / episode_start). Record positions count the env's appends from 0; position p lives in
// slot p % slots, slots = capacity + guard. The ring keeps the newest `capacity` records, the window
// [written - capacity, written). Samplers rebuild stacks from consecutive positions of this ring,
// which hold only this env's frames, so envs of one game never mix (per-env rings).
//
// Stacks and transitions (the reference actormimic_fast/reference/replay_reference.py spells the
// same rules out in numpy):
//  - The stack of record p is frames [p - stack + 1, p], oldest first. It stops at an episode start:
//    frames before the first frame of p's episode are zero, as the pool's own obs are after a reset.
//    history_start(p) is its oldest real frame; p's stack is usable while that is in the window.
//  - The transition from record p (state s_p, action a_p = the action stored in record p + 1) walks
//    k = 1..n_step over q = p + k:
//      q not written yet                       -> not valid yet (pending);
//      q starts an episode (a reset with no done flag before it, e.g. a second pool.reset()):
//          k == 1 -> never valid; else the return ends at q - 1 and bootstraps (a truncation);
//      add gamma^(k-1) * r_q;
//      q terminated, or lost a life under life_loss_terminal -> ends at q, discount 0;
//      q truncated                              -> ends at q, discount gamma^k (bootstrap from s_q);
//      k == n_step                              -> ends at q, discount gamma^n_step.
//    A record that is terminated or truncated has no outgoing transition. The transition is valid
//    when the walk ends and p's stack history is in the window (the end's stack history then is too).
//
// Concurrency contract (one writer thread, any number of reader threads, no locks):
//  - Only the writer calls append() and restore(); readers use the const accessors.
//  - Writer, for position a:  claimed_.exchange(a + 1, acquire); write slot a % slots (frame, action,
//    reward, flags); written_.store(a + 1, release).
//  - Reader:  w = written_.load(acquire) (records < w are complete and visible); read records of the
//    window [w - capacity, w) only; then check_intact(oldest position read):
//    c = claimed_.fetch_add(0, release); the reads are intact iff that position >= c - slots, i.e. the
//    writer had claimed no slot holding any of them before the reader's last read.
//    Why (Boehm, "Can seqlocks get along with programming language memory models?", 2012): both are
//    read-modify-writes of claimed_, so they are totally ordered. If the reader's check came first, the
//    writer's acquire exchange reads the reader's release write, so every read of the reader happens
//    before the overwrite's stores and saw none of them. Otherwise the check returns c >= a + 1, so
//    a copy that read position a - slots fails it and is thrown away. Flags, actions and rewards are
//    relaxed atomics, frames are memcpy'd (relaxed atomic words under ThreadSanitizer; seqlock_copy.h):
//    the intended race on a slot being overwritten never reaches a caller.
//  - Capacity invariant: claimed_ - written_ is 0 or 1, and the only slot being written holds position
//    written - slots, `guard` positions older than the window. Readers never index outside [0, slots).
//  - Guard region: a reader's copy fails the check only if the writer appends guard + 1 records to this
//    env during it (with guard 0: if it appends one while the reader copies the window's oldest record);
//    the sampler then redraws that row, gather() reports the record as overwritten.
//  - valid_count_ (sampleable transitions in the window) is stored relaxed by the writer after each
//    append: a snapshot for weighting draws, exact whenever the writer is idle.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "replay/seqlock_copy.h"
#include "replay/types.h"

namespace actormimic_fast::replay {

/// Outcome of the n-step walk from a record (see the header comment).
struct Walk {
  enum Status : uint8_t { kPending, kInvalid, kValid };
  Status status = kPending;
  int64_t stop = 0;       // position whose arrival decided the walk (valid or invalid)
  int64_t end = 0;        // record of s_{t+k}, the bootstrap state (valid walks)
  bool terminal = false;  // the return ended at a termination: discount 0
};

class EnvRing {
 public:
  /// A ring that keeps `capacity` records of one env and `guard` more slots that readers never use.
  EnvRing(int64_t capacity, int guard, const ReplayConfig& config);
  EnvRing(const EnvRing&) = delete;
  EnvRing& operator=(const EnvRing&) = delete;

  // --- writer side (one thread) -----------------------------------------------------------------
  /// Appends one record (frame: 84 rows of 84 contiguous bytes) and updates the valid count.
  void append(const uint8_t* frame, int32_t action, float reward, uint8_t flags);
  /// Replaces the content by `count` records (oldest first) ending at position `written`; no reader may
  /// run concurrently (ReplayMemory::load_state_dict guarantees it).
  void restore(int64_t written, int64_t count, const uint8_t* frames, const int32_t* actions,
               const float* rewards, const uint8_t* flags);

  // --- reader side (any thread) -----------------------------------------------------------------
  int64_t capacity() const { return capacity_; }
  int64_t slots() const { return slots_; }
  /// Records appended so far; every record below it is complete and visible after this load.
  int64_t written() const { return written_.load(std::memory_order_acquire); }
  /// Oldest position of the window when `written` records exist.
  int64_t oldest(int64_t written) const { return written > capacity_ ? written - capacity_ : 0; }
  /// Sampleable transitions in the window (a snapshot).
  int64_t valid_count() const { return valid_count_.load(std::memory_order_relaxed); }
  /// Bytes this ring allocated.
  int64_t nbytes() const;

  uint8_t flags(int64_t pos) const { return racy_load(flags_[slot(pos)]); }
  int32_t action(int64_t pos) const { return racy_load(actions_[slot(pos)]); }
  float reward(int64_t pos) const { return racy_load(rewards_[slot(pos)]); }
  const uint8_t* frame(int64_t pos) const { return frames_.get() + slot(pos) * kFrameBytes; }

  /// Oldest real frame of the stack of record pos (pos - stack + 1, or its episode's first frame);
  /// -1 when that is older than floor (flags below floor are never read).
  int64_t history_start(int64_t pos, int64_t floor) const;
  /// The n-step walk from pos over records up to newest.
  Walk walk(int64_t pos, int64_t newest) const;
  /// Whether the transition from pos is sampleable when `written` records exist; if so fills its walk
  /// and the oldest real frame of its stack.
  bool is_valid(int64_t pos, int64_t written, Walk* walk_out, int64_t* first_out) const;
  /// Writes the stack of record pos into dst [stack, 84, 84], zeros before first (= history_start).
  void copy_stack(int64_t pos, int64_t first, uint8_t* dst) const;
  /// Same, but frames that the stack `earlier` of record earlier_pos (written just before, so cache-hot)
  /// already holds are copied from there instead of from the ring.
  void copy_stack_reusing(int64_t pos, int64_t first, uint8_t* dst, int64_t earlier_pos, int64_t earlier_first,
                          const uint8_t* earlier) const;
  /// After reading records >= oldest_read: true iff none of them was being overwritten meanwhile.
  bool check_intact(int64_t oldest_read) const;
  /// Counts valid transitions by scanning the window (exact when the writer is idle).
  int64_t count_valid() const;

 private:
  struct AlignedFree {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  int64_t slot(int64_t pos) const { return pos % slots_; }
  void drop_oldest(int64_t dropped, int64_t newest);
  void count_decided(int64_t newest);

  int64_t capacity_, slots_;
  int stack_, n_step_;
  bool life_loss_terminal_;
  std::unique_ptr<uint8_t[], AlignedFree> frames_;
  std::unique_ptr<int32_t[]> actions_;
  std::unique_ptr<float[]> rewards_;
  std::unique_ptr<uint8_t[]> flags_;
  int64_t writer_written_ = 0;  // writer-private copies
  int64_t writer_valid_ = 0;
  alignas(64) mutable std::atomic<int64_t> claimed_{0};  // mutable: readers' checks are RMWs
  std::atomic<int64_t> written_{0};
  std::atomic<int64_t> valid_count_{0};
};

}  // namespace actormimic_fast::replay
