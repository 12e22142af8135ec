#pragma once
// The step program: a recorded decode step's kernels run as stages of one cooperative kernel (a "megakernel"), with a
// grid barrier between stages instead of a kernel boundary.
//
// Why: the H200's first run (bench/reports/h200-2026-12-04) found each of a SmolLM2 step's ~150 kernels costing 4-9 us
// whatever its bytes, and the kernels adding up to the whole step. Part of that is the boundary itself: the previous
// kernel draining, the next one's blocks launching, PDL's wait. A grid barrier between the stages of one resident grid
// may cost less; whether it does is what the next GPU run measures (WINNOW_CUDA_MEGAKERNEL=1 against the default, in
// bench/device/run.sh). Each stage runs the same body as its kernel (linear_bodies.cuh, qkv_rope_store_body.cuh,
// attention_split_body.cuh), virtual block by virtual block, so a recording with the step program has the bits of one
// without it (tests/gpu/test_cuda_decoder.cpp checks it on the SIMT emulator and on the GPU).
//
// How: while a step is recorded, the backend hands each GEMV, qkv and attention-split launch to a StepRecorder instead
// of the stream (CudaBackend::run). Consecutive stages of one weight type and one cache type become one run; any other
// op (the embedding lookup, the head, the sample op, a launch of another type) first ends the run, which is then
// captured as one cooperative launch reading its stages from device memory. The stages are copied there when the
// recording ends, before its first replay, so the program's buffer is allocated when the recording begins (capture
// allows no allocation) with room for kStepProgramCapacity stages; stages past it are launched as kernels.
#include <cstdint>
#include <vector>

#include "backend/cuda/stage.h"

namespace winnow::cuda {

constexpr int kStepProgramCapacity = 1024; // stages a recording's program holds (SmolLM2's step has 150)

// The blocks of a step program's cooperative grid for the runs of these types with `shared` dynamic bytes a block and
// at most `max_blocks` virtual blocks in any stage: every block resident at once (the occupancy calculator), no more
// than the largest stage uses, WINNOW_CUDA_MEGAKERNEL_BLOCKS when set (for tuning). 0: the device cannot launch it.
int step_program_blocks(GgmlType weight, GgmlType cache, uint32_t shared, uint64_t max_blocks);
// Whether the step program is built for stages of this weight type: the types winnow writes (F32, F16, BF16, Q8_0,
// Q4_0, Q4_1). The preset ones (Q5_0 ... Q6_K) run as kernels: each weight type multiplies the program's
// instantiations (one per cache type), and the program is still unmeasured on a GPU.
bool has_program_kernel(GgmlType weight);
// How many launch_step_program has issued in this process (a recording's launches count once, when captured).
int64_t step_program_launches();
// Runs stages[0, count) (device memory) as one cooperative kernel of `blocks` blocks.
void launch_step_program(const Stage* stages, int count, GgmlType weight, GgmlType cache, uint32_t shared, int blocks, cudaStream_t stream);

class StepRecorder {
public:
    // `program`: device memory for kStepProgramCapacity stages, which upload() fills.
    explicit StepRecorder(Stage* program) : program_(program) {}
    // Takes a stage into the current run (ending the run first when its types differ): true. False when the program is
    // full or the stage's weight type has no program kernel (has_program_kernel); the caller then ends the run (flush)
    // and launches the stage itself.
    bool add(const Stage& s, cudaStream_t stream);
    // Ends the current run: launches it into the stream (a single stage as its own kernel).
    void flush(cudaStream_t stream);
    // Copies the stages to the program's device memory in the stream's order and waits for the copy; after the capture
    // has ended.
    void upload(cudaStream_t stream) const;
    int stages() const { return static_cast<int>(stages_.size()); }

private:
    Stage* program_;
    std::vector<Stage> stages_; // every stage taken, in order; the current run is stages_[run_first_, end)
    int run_first_ = 0;
    bool has_weight_ = false, has_cache_ = false;
    GgmlType weight_ = GgmlType::F32, cache_ = GgmlType::F32;
};

} // namespace winnow::cuda
