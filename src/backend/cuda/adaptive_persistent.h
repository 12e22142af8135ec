#pragma once
// The GPU AdaptiveSoftmax's query in one kernel launch (issue #15 item 2, device-side control): a cooperative grid
// whose every thread runs the query's control flow (adaptive_control.cuh, the same code QueryDriver runs on the host)
// over grid-wide steps, so the host uploads the query, launches once and copies back one small result, instead of
// waiting for the device at each of the query's decisions.
//
// How a step is shared out: arms in chunks of kPersistentThreads consecutive ones (the "virtual blocks" of the
// host-driven kernels, so every per-block sum keeps its documented order), chunk c to block c mod gridDim; an exact
// row per warp. A step whose result decides what comes next is a grid-wide reduction: each block writes a
// BlockPartial, the grid meets (grid_sync.cuh), and in every block warp 0 combines all blocks' partials into the same
// value, which the block's threads read from shared memory. Integer mins, maxima and counts do not depend on the
// order; the normalizer's double sums are per chunk, in the documented order, then added in chunk order by one thread
// per block, as the host-driven path adds them. So the persistent
// query and the host-driven one (the same kernels' per-arm logic) decide alike and answer with the same bits
// (tests/gpu/test_cuda_adaptive_head.cpp).
//
// Scratch written before a grid barrier and read after it alternates between two slots, so that a block that has
// gone on to the next step never overwrites what a slower block is still reading.
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

#include "backend/cuda/adaptive_control.cuh"
#include "backend/cuda/adaptive_warmup_logic.cuh"
#include "io/ggml_type.h"

namespace winnow::cuda::adaptive {

constexpr int kPersistentThreads = kNormThreads; // threads per block = arms per chunk

// One block's part of a grid-wide reduction; every field starts at its operation's identity. Besides the step's own
// result, a reduction may carry the statistics of an arm set and advance()'s next group, computed in the same pass
// for the step the control will call next (GridSteps' speculation, adaptive_persistent.cu).
struct BlockPartial {
    unsigned long long key = 0;   // max of best_key (the round's argmax)
    int32_t first = kNoArm;       // min (the round's first candidate)
    int32_t count = 0;            // sum (kept arms, the normalizer's todo)
    int32_t all_exact = 1;        // and
    uint32_t max_key = 0;         // max of max_key (log alpha, logits)
    int32_t set_count = 0;        // a set's SetStats without the threshold: sum,
    int32_t set_min_T = kNoArm;   // min,
    uint32_t set_max_var_key = 0; // max (failing = the largest variance > thr)
    int32_t group_from = kNoArm;  // advance()'s group: the smallest prefix below the target,
    int32_t group_count = 0;      // and how many arms have it
};

// What the kernel writes at the end.
struct PersistentResult {
    ControlFinish finish;
    ControlCost cost;
};

// Everything the kernel reads and writes (device pointers) and the query's constants.
struct PersistentQuery {
    ColumnLayout layout;
    QueryOrder order;
    ArmState state;
    int64_t stride = 0;                 // arms the warm-up computes (the layout's padding included)
    GgmlType row_type = GgmlType::F32;  // the stored rows of the exact finish: one of exact_rows_supported()'s types
    const uint8_t* rows = nullptr;
    size_t row_bytes = 0;
    int d = 0;
    const float* x = nullptr;
    float beta = 1.0f;
    uint8_t* sets[4] = {};              // indexed by ArmSet; n flags each, sets[all] all ones
    int32_t* active = nullptr;          // n words (advance()'s marks)
    int32_t* list = nullptr;            // n arms (the exact rows' work list)
    float* e = nullptr;                 // n normalizer weights
    BlockPartial* partials = nullptr;   // 2 * (the grid's blocks)
    double* sums = nullptr;             // 2 * 2 * norm_blocks(n)
    int32_t* list_counts = nullptr;     // 2 counters; the launch zeroes them
    ControlConstants constants;
    PersistentResult* result = nullptr;
};

// The most blocks a cooperative launch of the query kernel for rows of `type` can have on the current device (0: the
// device cannot launch cooperatively).
int persistent_grid_limit(GgmlType type);

// Runs the query: `blocks` blocks (1 .. persistent_grid_limit; more than norm_blocks(n) leaves blocks idle), in
// `stream`, without waiting. q.partials must hold 2 * blocks entries. winnow::Error on a refused launch.
void launch_persistent_query(const PersistentQuery& q, int blocks, cudaStream_t stream);

} // namespace winnow::cuda::adaptive
