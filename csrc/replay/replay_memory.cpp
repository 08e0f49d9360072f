#include "replay/replay_memory.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "common/splitmix64.h"

namespace actormimic_fast::replay {

namespace {

constexpr int kPositionDraws = 64;  // rejected positions in one ring before scanning it for valid ones
constexpr int kMinRowsPerChunk = 32;  // waking a helper costs about as much as copying a few dozen rows
constexpr int kRounds = 64;         // ring choices per item before giving up (only a writer that keeps
                                    // overwriting every draw could exhaust them)

// SplitMix64 stream; below(n) is unbiased (rejects the short top range).
class ItemRng {
 public:
  explicit ItemRng(uint64_t seed, int64_t item) : state_(splitmix64(seed ^ splitmix64(static_cast<uint64_t>(item)))) {}
  uint64_t next() { return splitmix64(state_ += kGoldenGamma); }
  int64_t below(int64_t n) {
    const uint64_t un = static_cast<uint64_t>(n);
    const uint64_t threshold = (0 - un) % un;
    for (;;) {
      const uint64_t x = next();
      if (x >= threshold) return static_cast<int64_t>(x % un);
    }
  }

 private:
  uint64_t state_;
};

// Two chunks per thread (late helpers leave theirs to the others), never fewer rows than kMinRowsPerChunk.
int64_t rows_per_chunk(int64_t rows, int threads) {
  return std::max<int64_t>(kMinRowsPerChunk, (rows + 2 * threads - 1) / (2 * threads));
}

template <typename T>
std::string str(const T& v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

}  // namespace

struct ReplayMemory::ReaderScope {
  ReaderScope(const ReplayMemory& m, const char* what) : memory(m) {
    memory.active_readers_.fetch_add(1, std::memory_order_seq_cst);
    if (memory.restoring_.load(std::memory_order_seq_cst)) {
      memory.active_readers_.fetch_sub(1, std::memory_order_seq_cst);
      throw std::runtime_error(std::string(what) + ": load_state_dict is running on another thread");
    }
  }
  ~ReaderScope() { memory.active_readers_.fetch_sub(1, std::memory_order_seq_cst); }
  const ReplayMemory& memory;
};

struct ReplayMemory::WriterScope {
  WriterScope(ReplayMemory& m, const char* what) : memory(m) {
    if (memory.writer_busy_.exchange(true, std::memory_order_acquire))
      throw std::runtime_error(std::string(what) +
                               ": another thread is in add/state_dict/load_state_dict; the memory has "
                               "a single writer");
  }
  ~WriterScope() { memory.writer_busy_.store(false, std::memory_order_release); }
  ReplayMemory& memory;
};

ReplayMemory::ReplayMemory(std::vector<int32_t> env_game_ids, std::vector<int64_t> capacity_per_game,
                           const ReplayConfig& config)
    : config_(config),
      env_game_ids_(std::move(env_game_ids)),
      capacity_per_game_(std::move(capacity_per_game)),
      threads_(config.num_threads) {
  if (config_.stack < 1) throw std::invalid_argument("stack must be >= 1, got " + str(config_.stack));
  if (config_.n_step < 1) throw std::invalid_argument("n_step must be >= 1, got " + str(config_.n_step));
  if (!(config_.gamma >= 0.0f && config_.gamma <= 1.0f))
    throw std::invalid_argument("gamma must be in [0, 1], got " + str(config_.gamma));
  if (config_.guard < 0) throw std::invalid_argument("guard must be >= 0, got " + str(config_.guard));
  if (capacity_per_game_.empty()) throw std::invalid_argument("capacity_per_game must name at least one game");
  if (env_game_ids_.empty()) throw std::invalid_argument("env_game_ids must name at least one env");
  const int games = num_games();
  game_envs_.resize(games);
  for (std::size_t e = 0; e < env_game_ids_.size(); ++e) {
    const int32_t g = env_game_ids_[e];
    if (g < 0 || g >= games)
      throw std::invalid_argument("env_game_ids[" + str(e) + "] = " + str(g) + " is not a game in [0, " +
                                  str(games) + ")");
    game_envs_[g].push_back(static_cast<int32_t>(e));
  }
  const int64_t min_share = config_.stack + config_.n_step;
  for (int g = 0; g < games; ++g) {
    const auto envs = static_cast<int64_t>(game_envs_[g].size());
    if (envs == 0) throw std::invalid_argument("game " + str(g) + " has no env in env_game_ids");
    if (capacity_per_game_[g] < envs * min_share)
      throw std::invalid_argument("capacity of game " + str(g) + " is " + str(capacity_per_game_[g]) +
                                  "; with " + str(envs) + " envs it must be >= " + str(envs * min_share) +
                                  " (each env's ring needs stack + n_step = " + str(min_share) + " records)");
  }
  rings_.resize(env_game_ids_.size());
  for (int g = 0; g < games; ++g) {
    const auto& envs = game_envs_[g];
    const int64_t n = static_cast<int64_t>(envs.size());
    for (int64_t k = 0; k < n; ++k) {
      const int64_t share = capacity_per_game_[g] / n + (k < capacity_per_game_[g] % n ? 1 : 0);
      rings_[envs[k]] = std::make_unique<EnvRing>(share, config_.guard, config_);
    }
  }
}

void ReplayMemory::check_game(int32_t game, const char* what) const {
  if (game < 0 || game >= num_games())
    throw std::out_of_range(std::string(what) + ": game " + str(game) + " is out of range [0, " +
                            str(num_games()) + ")");
}

void ReplayMemory::add(const StepInput& step) {
  WriterScope writer(*this, "add");
  for (int64_t i = 0; i < step.count; ++i) {
    const int32_t env = step.env_ids[i];
    if (env < 0 || env >= num_envs())
      throw std::out_of_range("add: env_ids[" + str(i) + "] = " + str(env) + " is out of range [0, " +
                              str(num_envs()) + ")");
    const int64_t a = step.actions[i];
    if (a < 0 || a > std::numeric_limits<int32_t>::max())
      throw std::invalid_argument("add: actions[" + str(i) + "] = " + str(a) + " is not in [0, 2^31)");
    // A NaN or infinite reward would poison every return that sums it, clipped or not.
    if (!std::isfinite(step.rewards[i]))
      throw std::invalid_argument("add: rewards[" + str(i) + "] = " + str(step.rewards[i]) + " for env " + str(env) +
                                  " is not finite");
  }
  for (int64_t i = 0; i < step.count; ++i) {
    const uint8_t flags = (step.terminated[i] ? kTerminated : 0) | (step.truncated[i] ? kTruncated : 0) |
                          (step.life_loss[i] ? kLifeLoss : 0) | (step.episode_start[i] ? kEpisodeStart : 0);
    rings_[step.env_ids[i]]->append(step.frames + i * step.frame_row_stride, static_cast<int32_t>(step.actions[i]),
                                    step.rewards[i], flags);
  }
}

bool ReplayMemory::write_transition(const EnvRing& ring, int32_t env, int64_t pos, const Walk& walk,
                                    int64_t first, float reward_clip, const BatchOutput& out,
                                    int64_t row) const {
  const int64_t stack_bytes = config_.stack * kFrameBytes;
  uint8_t* obs = out.obs + row * stack_bytes;
  ring.copy_stack(pos, first, obs);
  const int64_t next_first = ring.history_start(walk.end, first);
  if (next_first < 0) return false;  // only possible with flags torn by an overwrite
  // next_obs shares its older frames with obs (3 of 4 for n_step 1): those come from obs, in cache.
  ring.copy_stack_reusing(walk.end, next_first, out.next_obs + row * stack_bytes, pos, first, obs);
  float ret = 0.0f, weight = 1.0f;
  for (int64_t q = pos + 1; q <= walk.end; ++q) {
    const float r = std::min(std::max(ring.reward(q), -reward_clip), reward_clip);
    ret += weight * r;
    weight *= config_.gamma;
  }
  out.action[row] = ring.action(pos + 1);
  out.reward[row] = ret;
  out.discount[row] = walk.terminal ? 0.0f : weight;
  out.done[row] = walk.terminal;
  out.game_id[row] = env_game_ids_[env];
  out.env_id[row] = env;
  out.index[row] = pos;
  return ring.check_intact(first) || skip_overwrite_check_.load(std::memory_order_relaxed);
}

void ReplayMemory::sample(const std::vector<int32_t>& games, int64_t per_game, int64_t batch_size, uint64_t seed,
                          float reward_clip, const BatchOutput& out) {
  ReaderScope reader(*this, "sample");
  if (games.empty()) throw std::invalid_argument("sample: games must name at least one game");
  std::vector<uint8_t> seen(num_games(), 0);
  for (const int32_t g : games) {
    check_game(g, "sample");
    if (seen[g]++) throw std::invalid_argument("sample: game " + str(g) + " is requested twice");
  }
  if (per_game < 0) throw std::invalid_argument("sample: per_game must be >= 0, got " + str(per_game));
  if (per_game == 0 && batch_size < 1)
    throw std::invalid_argument("sample: batch_size must be >= 1, got " + str(batch_size));
  if (!(reward_clip > 0.0f)) throw std::invalid_argument("sample: reward_clip must be > 0, got " + str(reward_clip));

  // Snapshot of every requested ring's valid count; draws pick a ring in proportion to it.
  std::vector<int32_t> ring_env;
  std::vector<int64_t> cumulative;  // inclusive prefix sums within each game's segment
  std::vector<int64_t> segment_begin, segment_total;
  int64_t all_total = 0;
  for (const int32_t g : games) {
    segment_begin.push_back(static_cast<int64_t>(ring_env.size()));
    int64_t total = 0;
    for (const int32_t e : game_envs_[g]) {
      total += rings_[e]->valid_count();
      ring_env.push_back(e);
      cumulative.push_back(total);
    }
    if (total == 0)
      throw std::invalid_argument("sample: game " + str(g) + " has no transitions to sample yet (it holds " +
                                  str(num_records(g)) + " records)");
    if (per_game > total)
      throw std::invalid_argument("sample: per_game = " + str(per_game) + " is more than the " + str(total) +
                                  " transitions game " + str(g) + " holds");
    segment_total.push_back(total);
    all_total += total;
  }
  const int64_t rows = per_game > 0 ? per_game * static_cast<int64_t>(games.size()) : batch_size;
  if (per_game == 0) {
    if (batch_size > all_total)
      throw std::invalid_argument("sample: batch_size = " + str(batch_size) + " is more than the " +
                                  str(all_total) + " transitions the requested games hold");
    // One segment over all requested rings: prefix sums continue across games.
    int64_t running = 0;
    for (std::size_t s = 0; s < games.size(); ++s) {
      const int64_t begin = segment_begin[s];
      const int64_t end = s + 1 < games.size() ? segment_begin[s + 1] : static_cast<int64_t>(ring_env.size());
      for (int64_t r = begin; r < end; ++r) cumulative[r] += running;
      running += segment_total[s];
    }
  }

  auto draw = [&](int64_t row) {
    ItemRng rng(seed, row);
    // Rings [begin, end) hold this row's candidates; their prefix sums start at 0 at begin.
    const auto num_rings = static_cast<int64_t>(ring_env.size());
    const int64_t seg = per_game > 0 ? row / per_game : 0;
    const int64_t begin = per_game > 0 ? segment_begin[seg] : 0;
    const int64_t end = per_game > 0 && seg + 1 < static_cast<int64_t>(games.size()) ? segment_begin[seg + 1]
                                                                                       : num_rings;
    const int64_t total = cumulative[end - 1];
    std::vector<int64_t> scanned;
    for (int round = 0; round < kRounds; ++round) {
      const int64_t u = rng.below(total);
      const int64_t r = std::upper_bound(cumulative.begin() + begin, cumulative.begin() + end, u) - cumulative.begin();
      const int32_t env = ring_env[r];
      const EnvRing& ring = *rings_[env];
      Walk walk;
      int64_t first = -1, pos = -1;
      for (int draw_i = 0; draw_i < kPositionDraws && pos < 0; ++draw_i) {
        const int64_t w = ring.written();
        const int64_t old = ring.oldest(w);
        if (w == old) break;
        const int64_t p = old + rng.below(w - old);
        if (ring.is_valid(p, w, &walk, &first)) pos = p;
      }
      if (pos < 0) {  // few valid records in this ring: pick uniformly among the ones a scan finds
        scanned.clear();
        const int64_t w = ring.written();
        for (int64_t p = ring.oldest(w); p < w; ++p)
          if (ring.is_valid(p, w, &walk, &first)) scanned.push_back(p);
        if (scanned.empty()) continue;
        pos = scanned[rng.below(static_cast<int64_t>(scanned.size()))];
        if (!ring.is_valid(pos, ring.written(), &walk, &first)) continue;
      }
      if (write_transition(ring, env, pos, walk, first, reward_clip, out, row)) return;
      overwrite_redraws_.fetch_add(1, std::memory_order_relaxed);
    }
    throw std::runtime_error("sample: could not draw an intact transition for row " + str(row) + " in " +
                             str(kRounds) + " rounds (the writer overwrote every draw)");
  };
  threads_.parallel_for(rows, rows_per_chunk(rows, num_threads()), [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) draw(row);
  });
}

std::string ReplayMemory::explain_invalid(int32_t env, int64_t pos) const {
  const EnvRing& ring = *rings_[env];
  const int64_t w = ring.written();
  const int64_t old = ring.oldest(w);
  std::string where = "(env " + str(env) + ", index " + str(pos) + ")";
  if (pos < 0) return where + " has a negative index";
  if (pos >= w) return where + " is not written yet (env " + str(env) + " has " + str(w) + " records)";
  if (pos < old) return where + " was overwritten (env " + str(env) + " keeps indices [" + str(old) + ", " + str(w) + "))";
  const Walk walk = ring.walk(pos, w - 1);
  if (walk.status == Walk::kPending) return where + " has no complete n-step transition yet";
  if (walk.status == Walk::kInvalid) return where + " ends its episode: it has no outgoing transition";
  return where + " needs frames of its stack that were overwritten";
}

void ReplayMemory::gather(const int32_t* env_ids, const int64_t* indices, int64_t count, float reward_clip,
                          const BatchOutput& out) {
  ReaderScope reader(*this, "gather");
  if (!(reward_clip > 0.0f)) throw std::invalid_argument("gather: reward_clip must be > 0, got " + str(reward_clip));
  for (int64_t i = 0; i < count; ++i) {
    const int32_t env = env_ids[i];
    if (env < 0 || env >= num_envs())
      throw std::out_of_range("gather: env_ids[" + str(i) + "] = " + str(env) + " is out of range [0, " +
                              str(num_envs()) + ")");
    Walk walk;
    int64_t first;
    if (!rings_[env]->is_valid(indices[i], rings_[env]->written(), &walk, &first))
      throw std::out_of_range("gather: transition " + explain_invalid(env, indices[i]) + " cannot be sampled");
  }
  threads_.parallel_for(count, rows_per_chunk(count, num_threads()), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int32_t env = env_ids[i];
      const EnvRing& ring = *rings_[env];
      Walk walk;
      int64_t first;
      if (!ring.is_valid(indices[i], ring.written(), &walk, &first) ||
          !write_transition(ring, env, indices[i], walk, first, reward_clip, out, i))
        throw std::out_of_range("gather: transition (env " + str(env) + ", index " + str(indices[i]) +
                                ") was overwritten while being copied");
    }
  });
}

void ReplayMemory::valid_indices(int32_t game, std::vector<int32_t>* env_ids, std::vector<int64_t>* indices) const {
  ReaderScope reader(*this, "valid_indices");
  check_game(game, "valid_indices");
  for (const int32_t e : game_envs_[game]) {
    const EnvRing& ring = *rings_[e];
    const int64_t w = ring.written();
    Walk walk;
    int64_t first;
    for (int64_t p = ring.oldest(w); p < w; ++p) {
      if (ring.is_valid(p, w, &walk, &first)) {
        env_ids->push_back(e);
        indices->push_back(p);
      }
    }
  }
}

int64_t ReplayMemory::num_transitions(int32_t game) const {
  check_game(game, "num_transitions");
  int64_t total = 0;
  for (const int32_t e : game_envs_[game]) total += rings_[e]->valid_count();
  return total;
}

int64_t ReplayMemory::num_records(int32_t game) const {
  check_game(game, "num_records");
  int64_t total = 0;
  for (const int32_t e : game_envs_[game]) total += env_records(e);
  return total;
}

int64_t ReplayMemory::env_written(int32_t env) const {
  if (env < 0 || env >= num_envs())
    throw std::out_of_range("env " + str(env) + " is out of range [0, " + str(num_envs()) + ")");
  return rings_[env]->written();
}

int64_t ReplayMemory::env_records(int32_t env) const {
  const int64_t w = env_written(env);
  return w - rings_[env]->oldest(w);
}

int64_t ReplayMemory::nbytes() const {
  int64_t total = static_cast<int64_t>(sizeof(*this));
  for (const auto& ring : rings_) total += ring->nbytes();
  return total;
}

uint64_t ReplayMemory::next_seed() {
  return splitmix64(config_.seed + kGoldenGamma * seed_calls_.fetch_add(1, std::memory_order_relaxed));
}

void ReplayMemory::export_records(std::vector<int64_t>* env_written,
                                  const std::function<RecordArrays(int64_t)>& allocate) {
  WriterScope writer(*this, "state_dict");
  env_written->assign(num_envs(), 0);
  int64_t total = 0;
  for (int e = 0; e < num_envs(); ++e) {
    (*env_written)[e] = rings_[e]->written();
    total += env_records(e);
  }
  const RecordArrays out = allocate(total);
  int64_t row = 0;
  for (int e = 0; e < num_envs(); ++e) {
    const EnvRing& ring = *rings_[e];
    const int64_t w = (*env_written)[e];
    for (int64_t p = ring.oldest(w); p < w; ++p, ++row) {
      std::memcpy(out.frames + row * kFrameBytes, ring.frame(p), kFrameBytes);
      out.actions[row] = ring.action(p);
      out.rewards[row] = ring.reward(p);
      out.flags[row] = ring.flags(p);
    }
  }
}

int64_t ReplayMemory::records_for(const std::vector<int64_t>& env_written) const {
  if (static_cast<int>(env_written.size()) != num_envs())
    throw std::invalid_argument("load_state_dict: env_written has " + str(env_written.size()) +
                                " entries, the memory has " + str(num_envs()) + " envs");
  int64_t total = 0;
  for (int e = 0; e < num_envs(); ++e) {
    if (env_written[e] < 0)
      throw std::invalid_argument("load_state_dict: env_written[" + str(e) + "] = " + str(env_written[e]) +
                                  " is negative");
    total += std::min(env_written[e], rings_[e]->capacity());
  }
  return total;
}

void ReplayMemory::restore(const std::vector<int64_t>& env_written, const ConstRecordArrays& records,
                           uint64_t seed_calls) {
  WriterScope writer(*this, "load_state_dict");
  records_for(env_written);
  restoring_.store(true, std::memory_order_seq_cst);
  if (active_readers_.load(std::memory_order_seq_cst) > 0) {
    restoring_.store(false, std::memory_order_seq_cst);
    throw std::runtime_error("load_state_dict: a sample/gather call is running on another thread");
  }
  int64_t offset = 0;
  for (int e = 0; e < num_envs(); ++e) {
    const int64_t count = std::min(env_written[e], rings_[e]->capacity());
    rings_[e]->restore(env_written[e], count, records.frames + offset * kFrameBytes, records.actions + offset,
                       records.rewards + offset, records.flags + offset);
    offset += count;
  }
  seed_calls_.store(seed_calls, std::memory_order_relaxed);
  restoring_.store(false, std::memory_order_seq_cst);
}

}  // namespace actormimic_fast::replay
