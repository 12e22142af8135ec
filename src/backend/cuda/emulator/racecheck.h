#pragma once
// The SIMT emulator's race detector (racecheck.cpp; a build with -DWINNOW_EMU_RACECHECK=ON, scripts/test-emulated.sh
// --racecheck): compute-sanitizer's racecheck, for shared and global memory, on the CPU.
//
// Why: the emulator runs a block's threads one at a time and switches only where CUDA threads meet, so a read that no
// barrier separates from another thread's write usually gets the value the schedule happened to leave, and a kernel
// that is wrong on a GPU passes here. Running other orders (WINNOW_EMU_SCHEDULE) shows such a race only when it changes
// an answer. The detector shows every one it sees: the kernel sources are compiled with GCC's ThreadSanitizer
// instrumentation (-fsanitize=thread), whose calls before each load and store land in racecheck.cpp instead of
// libtsan, and two accesses to the same bytes by different GPU threads, one a write, are a launch error unless one
// happens before the other by CUDA's rules as the emulator models them:
//   - a block barrier (__syncthreads and its variants) between them, in the same block;
//   - a __syncwarp both lanes met after the first access, in the same warp (shuffles and votes order no memory: PTX
//     promises that for bar.warp.sync only);
//   - a grid barrier between them (cooperative launches);
//   - fences and atomics, as the PTX memory model's fence-fence synchronisation: the first thread (or a thread of its
//     block after a barrier that followed the access) calls __threadfence() and then makes an atomic on some address;
//     the second thread (or a thread of its block before a barrier that precedes the access) makes an atomic on the
//     same address after it and then calls __threadfence(). A fence is cumulative: what a thread's fence released
//     before a block barrier, every thread of the block releases after it. That is how the last split block of the
//     flash-decoding kernels (attention.cu, arrive_last: every writer fences, a barrier, one thread counts) reads every
//     block's result. An atomic with no fence around it orders nothing (relaxed, as on the device).
// Kernel launches on a stream are ordered: the records of one launch go with it. Each block's private memory (its
// dynamic shared memory, the function-local statics that stand for __shared__, kernel arguments) has records of its
// own; device memory (cudaMalloc, cudaMallocHost) has one set for the launch, so a race between blocks shows too.
// A thread that exits before a block barrier the others go on to meet is not ordered by it (bar.sync orders the
// memory of the threads that arrive; an exited thread arrives nowhere): what it wrote or read in its last phase races
// with the other threads' accesses after the barrier, as on the device, unless a __syncwarp or fence + atomic ordered
// it (a __syncwarp with a lane that then arrives at the barrier orders it before every thread after the barrier).
// Lenient where CUDA is stricter: a failed atomicCAS releases too. Not checked: atomics against plain accesses,
// races between streams or across a PDL launch's overlap (launches run one after another here, and each launch's
// records go with it), memcpy / memset calls inside a kernel (left to libc, uninstrumented), a cooperative kernel's
// function-local statics shared across blocks (each block's private memory has records of its own), the fiber's own
// stack (a thread's locals), and code outside the instrumented sources.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace winnow::emu::race {

// What a thread knows happened before its next access beyond its block's earlier phases and its warp's lane clocks:
// other blocks' and threads' accesses, learnt through atomics (and passed on at barriers and __syncwarp). Sorted by
// block and by thread key, so that a join is a merge and a lookup a binary search; a thread shares its block's copy
// after a barrier (ThreadClock::known) instead of holding its own.
struct Knowledge {
    std::vector<std::pair<uint32_t, uint32_t>> blocks;  // block -> phase: that block's accesses in earlier phases
    std::vector<std::pair<uint64_t, uint32_t>> threads; // thread key -> clock: its accesses at that clock or before
    bool empty() const { return blocks.empty() && threads.empty(); }
    void join(const Knowledge& other);
    void add_block(uint32_t block, uint32_t phase);
    void add_thread(uint64_t key, uint32_t clock);
    bool covers_block(uint32_t block, uint32_t phase) const;
    bool covers_thread(uint64_t key, uint32_t clock) const;
};

struct Shadow; // the access records of some memory (racecheck.cpp)

// A block's part: its phase (block barriers released so far) and its private memory's records.
struct BlockClock {
    uint32_t id = 0; // the block's linear index in the grid
    uint32_t phase = 0;
    std::vector<uint32_t> exited_this_phase; // threads (tid) that exited since the last block barrier
    std::unique_ptr<Shadow> private_records;
    BlockClock();
    ~BlockClock();
};

struct ThreadClock {
    BlockClock* block = nullptr;
    uint32_t tid = 0;   // linear index in the block
    uint32_t clock = 1; // advances after each __syncwarp or atomic the thread takes part in
    uint32_t lane_clock[32] = {}; // the clock of each lane of its warp as of the last __syncwarp they shared
    uint32_t syncwarp_phase = ~0u; // the block's phase at the thread's last __syncwarp
    std::shared_ptr<const Knowledge> release; // what its atomics release: what it knew at its last __threadfence()
    std::vector<std::shared_ptr<const Knowledge>> observed; // what its atomics since then saw: its next fence acquires it
    std::shared_ptr<const Knowledge> known; // null: nothing beyond the block and warp
    const char* stack_low = nullptr; // the thread's own stack: its locals are private, never checked
    const char* stack_high = nullptr;
};

// Whether instrumented code is linked in (its module constructors called __tsan_init): when not, every call here returns
// at once.
bool enabled();

// A launch's records live from begin_launch to end_launch. The device allocations are read once, at its start.
void begin_launch(uint32_t grid_x, uint32_t grid_y, uint32_t block_x, uint32_t block_y);
void end_launch();

// The scheduler runs `t` between enter and leave; accesses from other code (the host, the scheduler) are not checked.
void enter(ThreadClock& t);
void leave();

// The first race seen since the last call, as a message; empty when none.
std::string take_report();

// A __syncwarp released `n` lanes of one warp together (shuffles and votes are not reported: they order no memory).
void syncwarp(ThreadClock* const* lanes, int n);
// A thread of the block reached its end (returned from the kernel).
void thread_exit(ThreadClock& t);
// A block barrier released every live thread of the block; those that exited in the phase it ends are not ordered by it.
void block_barrier(BlockClock& block, ThreadClock* const* threads, int n);
// A grid barrier released the whole grid (a cooperative launch).
void grid_barrier();

} // namespace winnow::emu::race
