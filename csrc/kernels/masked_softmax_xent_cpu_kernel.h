// CPU kernels of masked_softmax_xent (math and conventions in masked_softmax_xent.h), the counterpart of
// cuda/masked_softmax_xent_kernel.cu: raw pointers in (the structs of masked_softmax_xent.h), no tensors.
//
// Data flow: the torch glue (masked_softmax_xent_cpu.cpp) checks the tensors, turns a small per-game mask
// table into legal-action bits once (table_legal_bits), and splits the batch into ranges of tiles of
// kCpuTileRows rows that at::parallel_for hands to these functions. Each call reads its tiles' rows once and
// writes their outputs once; rows of different calls never overlap.
// Concurrency: the functions are reentrant; concurrent calls on disjoint tile ranges of one batch may share
// a status, which they update only by atomic min (so it holds the first failed row whatever the schedule).
#pragma once

#include <cstdint>

#include "kernels/masked_softmax_xent.h"

namespace actormimic_fast::kernels {

inline constexpr int kCpuTileRows = 8;            // rows per tile: 8 float lanes, one AVX2 register
inline constexpr int64_t kMaxTableGames = 256;    // per-game tables up to this many games are turned into bits

/// Tiles of a batch of `rows` rows.
inline int64_t cpu_tile_count(int64_t rows) { return (rows + kCpuTileRows - 1) / kCpuTileRows; }

/// Legal-action bits of every game of a per-game table (game_id set, at most kMaxTableGames games) written
/// into storage and returned; nullptr for per-row masks or larger tables (the kernels then read mask rows).
const uint32_t* table_legal_bits(const XentInputs& in, uint32_t (&storage)[kMaxTableGames]);

/// Forward over tiles [tile_begin, tile_end): loss[b] (math type: float, or double for float64 inputs) and,
/// when dloss_dlogits is not null, d loss_b / d student_logits[b] = p - q ([B, A] contiguous, math type).
/// Rows without a legal action or with a game_id out of range get NaN; when status is not null they are
/// also recorded in it (atomic min).
void masked_softmax_xent_forward_cpu_tiles(const XentInputs& in, const uint32_t* game_bits, int64_t tile_begin,
                                           int64_t tile_end, void* loss, void* dloss_dlogits, XentStatus* status);

/// Backward over tiles [tile_begin, tile_end), recomputing the row statistics; failed rows get NaN gradients.
void masked_softmax_xent_backward_cpu_tiles(const XentInputs& in, const uint32_t* game_bits,
                                            const XentGradients& grads, int64_t tile_begin, int64_t tile_end);

}  // namespace actormimic_fast::kernels
