// The SIMT emulator's scheduler (simt.h says what the emulator is for): runs a launch's blocks one after another, each
// block's threads as Boost.Context fibers on the calling thread, switching only where CUDA threads meet. A cooperative
// launch keeps all its blocks alive together instead, so that they can meet at the grid barrier.
//
// A block runs in passes. Each pass resumes every thread that may run until it finishes or waits at a meeting point:
// the block barrier (__syncthreads and its variants) or a warp collective (shuffle, vote, match, __syncwarp); in plain
// builds each thread hands over to the next one itself (Pass), in the same order. After a pass
// every live thread waits; the scheduler then releases each warp collective whose mask is complete and, when every live
// thread of the block waits at the barrier, the barrier. A pass that releases nothing while threads still wait is a
// deadlock on the device, and a launch error here, with what each thread waits for. In a cooperative launch each block
// in turn runs so until all its threads wait at the grid barrier, which is released once every thread of the grid
// waits at it (run_cooperative).
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#endif

#include <boost/context/fiber.hpp>
#include <boost/context/stack_context.hpp>

#include <algorithm>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

#include "backend/cuda/emulator/emulator.h"
#include "backend/cuda/emulator/racecheck.h"
#include "backend/cuda/emulator/simt.h"

namespace winnow::emu {

Coordinates g_coordinates;

namespace ctx = boost::context;

namespace {

// Fiber stacks, kept for the next thread, as a launch starts millions of threads and a block holds at most 1024 at
// once. The first kGuarded are mmap'd one by one with a guard page below, so that an overflow faults instead of
// corrupting a neighbour. Each of those is two memory mappings, and Linux allows 65530 per process by default
// (vm.max_map_count), while a cooperative launch keeps every thread of its grid alive at once (an H200-sized grid of
// the adaptive head's persistent kernel: 49152 threads). So the stacks beyond them come from slabs of kSlab stacks in
// one mapping, where the lowest page of each stack is a canary instead: filled with a pattern, and checked when the
// thread's stack is returned, so an overflow is still reported (afterwards, not at the faulting write).
size_t page_size() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

class StackPool {
public:
    static constexpr size_t kSize = 256 * 1024; // pages are committed only when touched
    static constexpr size_t kGuarded = 16384;
    static constexpr size_t kSlab = 256;
    static constexpr unsigned char kCanary = 0x5c;
    static constexpr size_t kCanaryBytes = 256; // checked: the top of the canary page, which an overflow reaches first

    ctx::stack_context allocate() {
        void* base = nullptr;
        if (!free_.empty()) {
            base = free_.back();
            free_.pop_back();
        } else if (guarded_ < kGuarded) {
            base = map(kSize);
            mprotect(base, page_size(), PROT_NONE);
            ++guarded_;
        } else {
            if (slab_left_ == 0) slab_next_ = static_cast<char*>(map(kSize * kSlab)), slab_left_ = kSlab;
            base = slab_next_;
            slab_next_ += kSize;
            --slab_left_;
            std::memset(base, kCanary, page_size());
            canaried_.insert(base);
        }
        // Stack tops 64 bytes apart modulo 64 KiB (a "colour" per stack): at the same offset in every 256 KiB stack the
        // 1024 threads of a block would fight over the same cache sets at every switch.
        const size_t colour = (next_colour_++ % 1021) * 64;
#ifdef __SANITIZE_ADDRESS__
        // A reused stack still carries the shadow of its last thread's frames (their redzones): ASan would read the next
        // thread's frames there as overflows. (Boost.Context tells ASan of its switches only in its ucontext variant.)
        ASAN_UNPOISON_MEMORY_REGION(static_cast<char*>(base) + page_size(), kSize - page_size());
#endif
        ctx::stack_context sc;
        sc.size = kSize - colour;
        sc.sp = static_cast<char*>(base) + kSize - colour;
        return sc;
    }
    void deallocate(ctx::stack_context& sc) {
        char* base = static_cast<char*>(sc.sp) - sc.size;
        if (is_canaried(base)) {
            const char* top = base + page_size() - kCanaryBytes;
            for (size_t i = 0; i < kCanaryBytes; ++i)
                if (static_cast<unsigned char>(top[i]) != kCanary) {
                    std::fprintf(stderr, "SIMT emulator: a GPU thread overflowed its %zu KiB stack\n", kSize / 1024);
                    std::abort(); // its frames have overwritten another thread's: nothing after this can be trusted
                }
        }
        free_.push_back(base);
    }
    ~StackPool() {
        for (void* base : free_)
            if (!is_canaried(base)) munmap(base, kSize);
        // the slabs stay mapped until the process ends (their stacks are not tracked per slab)
    }

private:
    static void* map(size_t bytes) {
        void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
        return p;
    }
    bool is_canaried(const void* base) const { return !canaried_.empty() && canaried_.count(base) != 0; }

    std::vector<void*> free_;
    std::unordered_set<const void*> canaried_; // the slab stacks' bases
    size_t guarded_ = 0, slab_left_ = 0, next_colour_ = 0;
    char* slab_next_ = nullptr;
};

// The allocator handle Boost.Context copies into each fiber.
struct PooledStack {
    StackPool* pool;
    ctx::stack_context* last; // where the fiber being made records its stack (for ASan's switch notes)
    ctx::stack_context allocate() { return *last = pool->allocate(); }
    void deallocate(ctx::stack_context& sc) noexcept { pool->deallocate(sc); }
};

// ASan's notes of each stack switch (the fcontext fibers Boost.Context gives do not make them): without them an
// exception in a thread, or a frame on a reused stack, reads as a stack overflow. No-ops without ASan.
#ifdef __SANITIZE_ADDRESS__
void switch_start(void** fake, const void* bottom, size_t size) { __sanitizer_start_switch_fiber(fake, bottom, size); }
void switch_finish(void* fake, const void** bottom, size_t* size) { __sanitizer_finish_switch_fiber(fake, bottom, size); }
#else
void switch_start(void**, const void*, size_t) {}
void switch_finish(void*, const void**, size_t*) {}
#endif
const void* g_scheduler_stack = nullptr; // the scheduler's stack, as ASan gives it at a thread's first switch in
size_t g_scheduler_stack_size = 0;

enum class Wait : uint8_t { none, block, warp, grid, done };

struct SimThread {
    ctx::fiber fiber; // the thread, while the scheduler runs
    ctx::fiber sink;  // the scheduler, while the thread runs
    uint3 idx{0, 0, 0};
    int lane = 0;
    Wait wait = Wait::none;
    bool started = false;
    // the collective this thread waits at, and its result
    Collective kind = Collective::sync;
    unsigned mask = 0;
    uint64_t value = 0;
    int source = 0;
    int predicate = 0;
    uint64_t result = 0;
    ctx::stack_context stack; // for ASan's switch notes
    void* fake_stack = nullptr;
    race::ThreadClock race; // the race detector's view of it (racecheck.h)
};

struct BlockRun {
    uint3 idx{0, 0, 0};
    std::vector<SimThread> threads;
    SimThread* current = nullptr;
    int live = 0;
    std::exception_ptr error;
    std::vector<unsigned char> shared;
    std::string where; // "block (x, y, z)" for messages
    race::BlockClock race;
};

// One block runs at a time in the process: launches from several host threads take turns (g_launch), which also makes
// the kernels' function-local statics their block's shared memory (simt.h). Plain globals: the fast path of every
// meeting point reads them.
std::mutex g_launch;
BlockRun* g_block = nullptr;
bool g_cooperative = false; // the running launch is cooperative (grid_barrier() is legal)
StackPool g_stacks;

SimThread& current_thread() {
    if (!g_block || !g_block->current) throw std::logic_error("SIMT emulator: a device function was called outside a kernel");
    return *g_block->current;
}

// A pass's hand-over (plain builds: neither the race detector nor ASan, whose notes need each switch to pass through
// the scheduler): the threads that may run, in the pass's order, and a thread that waits or ends resumes the next one
// itself, so a thread costs one stack switch a pass, not two (to it and back). The order, and so every result, is the
// scheduler's: only who makes the switch changes.
struct Pass {
    BlockRun* block = nullptr;
    std::vector<SimThread*> queue;
    size_t next = 0;
    ctx::fiber scheduler;      // the scheduler's continuation while the pass's threads run
    SimThread* from = nullptr; // who switched last (nullptr: the scheduler), whose continuation the next one keeps
};
Pass* g_pass = nullptr;

// The continuation of whoever switched to the running thread: kept where the one who switched will be resumed from.
void receive(ctx::fiber&& c) {
    if (g_pass->from) g_pass->from->fiber = std::move(c);
    else g_pass->scheduler = std::move(c);
}

// Makes t (started by run_pass_direct) the running thread and gives the fiber to switch to.
ctx::fiber enter_thread(BlockRun& b, SimThread& t) {
    b.current = &t;
    g_coordinates.thread_idx = t.idx;
    return std::move(t.fiber);
}

// What `self` switches to when it waits or ends: the pass's next thread, or the scheduler at the pass's end or after
// an error (which the scheduler then throws).
ctx::fiber hand_over(SimThread& self) {
    Pass& p = *g_pass;
    BlockRun& b = *p.block;
    p.from = &self;
    if (p.next < p.queue.size() && !b.error) return enter_thread(b, *p.queue[p.next++]);
    b.current = nullptr;
    return std::move(p.scheduler);
}

// A GPU thread's life on its fiber: the kernel's body (an exception becomes the block's error), then done.
void run_thread(BlockRun& b, SimThread& t, const std::function<void()>& body) {
    try {
        body();
    } catch (const ctx::detail::forced_unwind&) {
        throw; // the block is being torn down: let Boost.Context unwind this stack
    } catch (...) {
        if (!b.error) b.error = std::current_exception();
    }
    t.wait = Wait::done;
    --b.live;
}

void start_direct(BlockRun& b, SimThread& t, const std::function<void()>& body) {
    t.started = true;
    t.fiber = ctx::fiber(std::allocator_arg, PooledStack{&g_stacks, &t.stack}, [&b, &t, &body](ctx::fiber&& c) {
        receive(std::move(c));
        run_thread(b, t, body);
        return hand_over(t);
    });
}

// Suspends the running thread at a meeting point until the scheduler releases it.
void wait_here(Wait w) {
    SimThread& t = current_thread();
    t.wait = w;
    if (g_pass) {
        receive(hand_over(t).resume());
        return;
    }
    switch_start(&t.fake_stack, g_scheduler_stack, g_scheduler_stack_size);
    t.sink = std::move(t.sink).resume();
    switch_finish(t.fake_stack, nullptr, nullptr);
}

std::string describe(const SimThread& t) {
    char buf[160];
    const char* what = t.wait == Wait::block ? "the block barrier"
                       : t.wait == Wait::grid ? "the grid barrier"
                       : t.wait == Wait::done ? "its end"
                       : t.kind == Collective::shuffle ? "a shuffle"
                       : t.kind == Collective::vote ? "a vote"
                       : t.kind == Collective::match ? "a match" : "__syncwarp";
    std::snprintf(buf, sizeof buf, "thread (%u, %u, %u) (lane %d, mask 0x%08x) at %s", t.idx.x, t.idx.y, t.idx.z, t.lane, t.mask, what);
    return buf;
}

[[noreturn]] void fail(const BlockRun& b, const std::string& what) {
    throw std::runtime_error("SIMT emulator: " + b.where + ": " + what);
}

void resume(BlockRun& b, SimThread& t, const std::function<void()>& body) {
    b.current = &t;
    g_coordinates.thread_idx = t.idx;
    if (!t.started) {
        t.started = true;
        t.fiber = ctx::fiber(std::allocator_arg, PooledStack{&g_stacks, &t.stack}, [&b, &t, &body](ctx::fiber&& sink) {
            switch_finish(nullptr, &g_scheduler_stack, &g_scheduler_stack_size);
            t.sink = std::move(sink);
            run_thread(b, t, body);
            race::thread_exit(t.race);
            switch_start(nullptr, g_scheduler_stack, g_scheduler_stack_size); // this stack is done with
            return std::move(t.sink);
        });
    }
    t.wait = Wait::none;
    t.race.stack_low = static_cast<const char*>(t.stack.sp) - t.stack.size;
    t.race.stack_high = static_cast<const char*>(t.stack.sp);
    race::enter(t.race);
    void* fake = nullptr;
    switch_start(&fake, static_cast<char*>(t.stack.sp) - t.stack.size, t.stack.size);
    t.fiber = std::move(t.fiber).resume();
    switch_finish(fake, nullptr, nullptr);
    race::leave();
    b.current = nullptr;
    if (race::enabled())
        if (std::string r = race::take_report(); !r.empty()) fail(b, r);
}

// Releases every warp collective whose mask is complete. A collective names lanes that have exited, or lanes that wait
// at a different collective or with a different mask: undefined on the device, an error here.
bool release_warps(BlockRun& b) {
    bool released = false;
    const int n = static_cast<int>(b.threads.size());
    for (int base = 0; base < n; base += 32) {
        SimThread* lanes[32] = {};
        for (int l = 0; l < 32 && base + l < n; ++l) lanes[l] = &b.threads[base + l];
        for (int l = 0; l < 32 && lanes[l]; ++l) {
            SimThread& t = *lanes[l];
            if (t.wait != Wait::warp) continue;
            if (!(t.mask >> l & 1u)) fail(b, describe(t) + ": the mask does not include the calling lane");
            bool ready = true;
            for (int m = 0; m < 32; ++m) {
                if (!(t.mask >> m & 1u)) continue;
                if (!lanes[m]) fail(b, describe(t) + ": the mask names lane " + std::to_string(m) + ", which the block does not have");
                const SimThread& o = *lanes[m];
                if (o.wait == Wait::done) fail(b, describe(t) + ": the mask names lane " + std::to_string(m) + ", which has exited");
                // a lane elsewhere, or at a collective of another mask (legal: lanes may meet in smaller groups
                // first): not yet; a deadlock if no pass ever releases it (run_block says what each waits at)
                if (o.wait != Wait::warp || o.mask != t.mask) { ready = false; break; }
                if (o.kind != t.kind) fail(b, describe(t) + " meets " + describe(o) + ": a shuffle, a vote, a match and __syncwarp are different collectives");
            }
            if (!ready) continue;
            uint64_t vote = 0;
            race::ThreadClock* met[32];
            int n_met = 0;
            for (int m = 0; m < 32; ++m)
                if (t.mask >> m & 1u) vote |= (lanes[m]->value != 0 ? 1ull : 0ull) << m, met[n_met++] = &lanes[m]->race;
            // only __syncwarp orders memory between the lanes (PTX: bar.warp.sync does; shfl.sync, vote.sync and
            // match.sync only exchange values), so shuffles and votes give the race detector nothing
            if (t.kind == Collective::sync) race::syncwarp(met, n_met);
            for (int m = 0; m < 32; ++m) {
                if (!(t.mask >> m & 1u)) continue;
                SimThread& o = *lanes[m];
                if (o.kind == Collective::shuffle) {
                    const int s = o.source;
                    if (s < 0 || s >= 32 || !(t.mask >> s & 1u))
                        fail(b, describe(o) + ": reads lane " + std::to_string(s) + ", which is not in the mask");
                    o.result = lanes[s]->value;
                } else if (o.kind == Collective::match) {
                    uint64_t peers = 0;
                    for (int p = 0; p < 32; ++p)
                        if (t.mask >> p & 1u) peers |= (lanes[p]->value == o.value ? 1ull : 0ull) << p;
                    o.result = peers;
                } else {
                    o.result = vote;
                }
                o.wait = Wait::none;
            }
            released = true;
        }
    }
    return released;
}

// Releases the block barrier once every live thread waits at it.
bool release_block(BlockRun& b) {
    int waiting = 0, count = 0;
    for (const SimThread& t : b.threads)
        if (t.wait == Wait::block) ++waiting, count += t.predicate != 0;
    if (waiting == 0 || waiting != b.live) return false;
    if (race::enabled()) {
        std::vector<race::ThreadClock*> met;
        for (SimThread& t : b.threads)
            if (t.wait == Wait::block) met.push_back(&t.race);
        race::block_barrier(b.race, met.data(), static_cast<int>(met.size()));
    }
    for (SimThread& t : b.threads) {
        if (t.wait != Wait::block) continue;
        t.result = t.kind == Collective::vote ? static_cast<uint64_t>(count) : (count == waiting ? 1u : 0u);
        t.wait = Wait::none;
    }
    return true;
}

// The order threads run in between meeting points, and blocks in a grid (WINNOW_EMU_SCHEDULE): forward (the default),
// reverse, or shuffle (a fixed seed). Races the meeting points do not order (a shared-memory read a barrier does not
// separate from its write, a block that reads what another block writes) give another answer in another order, so a
// run in each order finds some of them.
enum class Order { forward, reverse, shuffle };
Order schedule_order() {
    static const Order order = [] {
        const char* e = std::getenv("WINNOW_EMU_SCHEDULE");
        const std::string v = e ? e : "forward";
        if (v == "reverse") return Order::reverse;
        if (v == "shuffle") return Order::shuffle;
        if (v != "forward") throw std::invalid_argument("WINNOW_EMU_SCHEDULE must be forward, reverse or shuffle, not '" + v + "'");
        return Order::forward;
    }();
    return order;
}

std::vector<int> run_order(int n) {
    static std::mt19937 rng(20261202);
    std::vector<int> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    if (schedule_order() == Order::reverse) std::reverse(order.begin(), order.end());
    if (schedule_order() == Order::shuffle) std::shuffle(order.begin(), order.end(), rng);
    return order;
}

// run_pass by hand-over (Pass): the scheduler switches to the first thread and is switched back to by the last.
void run_pass_direct(BlockRun& b, const std::vector<int>& order, const std::function<void()>& body) {
    Pass p;
    p.block = &b;
    p.queue.reserve(order.size());
    for (int i : order)
        if (b.threads[static_cast<size_t>(i)].wait == Wait::none) p.queue.push_back(&b.threads[static_cast<size_t>(i)]);
    if (p.queue.empty()) return;
    // new threads get their fibers (and stacks) here, where a failed allocation is the launch's error, not an
    // exception inside a thread that is handing over
    for (SimThread* t : p.queue)
        if (!t->started) start_direct(b, *t, body);
    g_pass = &p;
    struct ClearPass {
        ~ClearPass() { g_pass = nullptr; }
    } clear_pass;
    ctx::fiber back = enter_thread(b, *p.queue[p.next++]).resume();
    p.from->fiber = std::move(back); // the last thread of the pass switched back (empty if it ended)
    b.current = nullptr;
    if (b.error) std::rethrow_exception(b.error);
}

// Switches go through the scheduler only where the race detector or ASan must see each one.
bool hand_over_passes() {
#ifdef __SANITIZE_ADDRESS__
    return false;
#else
    return !race::enabled();
#endif
}

// Resumes, in the schedule's order, every thread of b that may run, until it finishes or waits at a meeting point.
void run_pass(BlockRun& b, const std::vector<int>& order, const std::function<void()>& body) {
    g_block = &b;
    g_coordinates.block_idx = b.idx;
    if (hand_over_passes()) {
        run_pass_direct(b, order, body);
        return;
    }
    for (int i : order) {
        SimThread& t = b.threads[static_cast<size_t>(i)];
        if (t.wait != Wait::none) continue;
        resume(b, t, body);
        if (b.error) std::rethrow_exception(b.error);
    }
}

[[noreturn]] void deadlock(const BlockRun& b, int live) {
    std::string what = "deadlock: ";
    int shown = 0;
    for (const SimThread& t : b.threads)
        if (t.wait != Wait::done && shown++ < 4) what += describe(t) + "; ";
    fail(b, what + std::to_string(live) + " threads wait, none can go on (a barrier or collective some threads never reach)");
}

// Passes over b, releasing its warp collectives and its barrier after each, until a pass releases nothing: every live
// thread then waits where this block alone cannot release it (the grid barrier, or a deadlock), or none is left.
void run_until_stuck(BlockRun& b, std::vector<int>& order, const std::function<void()>& body) {
    const int n = static_cast<int>(b.threads.size());
    for (;;) {
        if (schedule_order() == Order::shuffle) order = run_order(n); // a new order every pass
        run_pass(b, order, body);
        const bool warps = release_warps(b);
        const bool block = release_block(b);
        if (!warps && !block) return;
    }
}

void run_block(BlockRun& b, const std::function<void()>& body) {
    std::vector<int> order = run_order(static_cast<int>(b.threads.size()));
    run_until_stuck(b, order, body);
    if (b.live > 0) deadlock(b, b.live);
}

// WINNOW_EMU_TRACE=1 prints each cooperative launch's grid and the grid barriers it met (on stderr): the count that
// decides a persistent kernel's time on a device, where each barrier costs microseconds.
bool trace_cooperative() {
    static const bool on = [] {
        const char* e = std::getenv("WINNOW_EMU_TRACE");
        return e && std::string(e) == "1";
    }();
    return on;
}

// A cooperative launch: between two grid barriers the blocks run one after another (in the schedule's block order),
// each as run_block runs it until all its live threads wait at the grid barrier; then the barrier is released once every
// thread of the grid waits at it. Running a block as far as it can go before the next one starts is the interleaving
// that shows a step whose early block writes what a later block reads before the barrier that should separate them
// (a thread that reads a value another block has already changed takes another branch, skips a barrier, and the grid
// deadlocks here as it would hang on the device); the reverse and shuffled block orders show the other direction. A
// thread that has exited never reaches the barrier, so the others' wait is a deadlock (on the device,
// cooperative_groups requires every thread of the grid to call sync()).
void run_cooperative(std::vector<std::unique_ptr<BlockRun>>& blocks, const std::vector<int>& block_order, const std::function<void()>& body) {
    const int n = static_cast<int>(blocks.front()->threads.size());
    std::vector<int> order = run_order(n);
    long barriers = 0;
    struct Trace {
        const long& barriers;
        size_t blocks;
        int threads;
        ~Trace() {
            if (trace_cooperative()) std::fprintf(stderr, "SIMT emulator: cooperative launch of %zu blocks x %d threads: %ld grid barriers\n", blocks, threads, barriers);
        }
    } trace{barriers, blocks.size(), n};
    for (;;) {
        int live = 0, at_grid = 0;
        for (int k : block_order) {
            BlockRun& b = *blocks[static_cast<size_t>(k)];
            run_until_stuck(b, order, body); // every live thread waits at the grid barrier, or the block is stuck
            live += b.live;
            for (const SimThread& t : b.threads) at_grid += t.wait == Wait::grid;
        }
        if (live == 0) return;
        const int all = n * static_cast<int>(blocks.size());
        if (at_grid == live && live != all)
            fail(*blocks.front(), "deadlock: " + std::to_string(live) + " threads wait at the grid barrier, which the grid's " + std::to_string(all - live) +
                                      " exited threads never reach");
        if (at_grid != live) { // a block stuck short of the barrier: name its threads
            for (auto& b : blocks)
                for (const SimThread& t : b->threads)
                    if (t.wait != Wait::grid && t.wait != Wait::done) deadlock(*b, live);
        }
        for (auto& b : blocks)
            for (SimThread& t : b->threads) t.wait = Wait::none;
        race::grid_barrier();
        ++barriers;
    }
}

} // namespace

uint64_t warp_collective(Collective kind, unsigned mask, uint64_t value, int source) {
    SimThread& t = current_thread();
    t.kind = kind, t.mask = mask, t.value = value, t.source = source;
    wait_here(Wait::warp);
    return t.result;
}

int block_barrier(int predicate, bool count) {
    SimThread& t = current_thread();
    t.predicate = predicate;
    t.kind = count ? Collective::vote : Collective::sync;
    t.mask = 0;
    wait_here(Wait::block);
    return static_cast<int>(t.result);
}

void grid_barrier() {
    SimThread& t = current_thread();
    if (!g_cooperative) throw std::runtime_error("SIMT emulator: " + g_block->where + ": a grid barrier in a kernel not launched cooperatively");
    t.mask = 0;
    wait_here(Wait::grid);
}

int lane_id() { return current_thread().lane; }

unsigned char* dynamic_shared() {
    if (!g_block) throw std::logic_error("SIMT emulator: dynamic shared memory outside a kernel");
    return g_block->shared.data();
}

namespace {

// The writable segments (.data, .bss) of the executable or library the emulator is linked into, found once from its
// program headers: the kernels' __shared__ variables are function-local statics there (simt.h), beside the program's
// host globals, none of which a device's global loads can reach.
struct AddressRange {
    uintptr_t lo = 0, hi = 0;
};
std::vector<AddressRange> writable_segments_of_this_object() {
    struct Search {
        uintptr_t probe;
        std::vector<AddressRange> found;
    } search{reinterpret_cast<uintptr_t>(&g_block), {}};
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* data) {
            auto& s = *static_cast<Search*>(data);
            std::vector<AddressRange> writable;
            bool holds_probe = false;
            for (int i = 0; i < info->dlpi_phnum; ++i) {
                const ElfW(Phdr)& ph = info->dlpi_phdr[i];
                if (ph.p_type != PT_LOAD) continue;
                const uintptr_t lo = info->dlpi_addr + ph.p_vaddr, hi = lo + ph.p_memsz;
                holds_probe = holds_probe || (s.probe >= lo && s.probe < hi);
                if (ph.p_flags & PF_W) writable.push_back({lo, hi});
            }
            if (!holds_probe) return 0;
            s.found = std::move(writable);
            return 1;
        },
        &search);
    return search.found;
}

} // namespace

bool outside_global_memory(const void* p) {
    static const std::vector<AddressRange> statics = writable_segments_of_this_object();
    const auto a = reinterpret_cast<uintptr_t>(p);
    for (const AddressRange& r : statics)
        if (a >= r.lo && a < r.hi) return true;
    if (g_block && !g_block->shared.empty()) { // the block's dynamic shared memory
        const auto lo = reinterpret_cast<uintptr_t>(g_block->shared.data());
        if (a >= lo && a < lo + g_block->shared.size()) return true;
    }
    return false;
}

void global_load_outside_global_memory(const void* p) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "SIMT emulator: %s: a global-memory load (__ldg, __ldcg, ...) of %p, an address in shared memory or host static "
                  "storage: a device would read other bytes or fault there",
                  g_block ? g_block->where.c_str() : "outside a kernel", p);
    throw std::runtime_error(buf);
}

void trap() { throw std::runtime_error("SIMT emulator: a kernel called __trap()"); }

namespace {
std::unique_ptr<BlockRun> make_block(unsigned long long id, dim3 grid, dim3 block, size_t shared) {
    auto b = std::make_unique<BlockRun>();
    b->idx = {static_cast<unsigned>(id % grid.x), static_cast<unsigned>(id / grid.x % grid.y), static_cast<unsigned>(id / (1ull * grid.x * grid.y))};
    b->where = "block (" + std::to_string(b->idx.x) + ", " + std::to_string(b->idx.y) + ", " + std::to_string(b->idx.z) + ")";
    // exactly the launch's bytes (an overrun is a heap overflow under ASan), 16-byte aligned as operator new aligns;
    // not zeroed on the device either, so filled with a pattern
    b->shared.assign(shared, 0xa5);
    const int n = static_cast<int>(block.x * block.y * block.z);
    b->threads.resize(n);
    for (int i = 0; i < n; ++i) {
        SimThread& t = b->threads[i];
        t.idx = {static_cast<unsigned>(i) % block.x, static_cast<unsigned>(i) / block.x % block.y, static_cast<unsigned>(i) / (block.x * block.y)};
        t.lane = i % 32;
    }
    b->live = n;
    b->race.id = static_cast<uint32_t>(id);
    for (int i = 0; i < n; ++i) b->threads[i].race.block = &b->race, b->threads[i].race.tid = static_cast<uint32_t>(i);
    return b;
}
} // namespace

// g_launch makes a launch the only one running (a kernel cannot launch another), so nothing outer is saved; g_block is
// cleared on the way out, exception or not. A cooperative launch's grid is small (the runtime refuses more blocks than
// an H200 holds at once), so all its blocks' threads can exist together. Its blocks interleave, so a function-local
// static (simt.h's __shared__) would be shared by every block: cooperative kernels keep their shared memory dynamic.
void run_grid(dim3 grid, dim3 block, size_t shared, const std::function<void()>& body, bool cooperative) {
    std::lock_guard lock(g_launch);
    g_coordinates.grid_dim = grid;
    g_coordinates.block_dim = block;
    struct ClearBlock {
        ~ClearBlock() { g_block = nullptr, g_cooperative = false, race::end_launch(); }
    } clear_block;
    race::begin_launch(grid.x, grid.y, block.x, block.y);
    g_cooperative = cooperative;
    const unsigned long long blocks = 1ull * grid.x * grid.y * grid.z;
    std::vector<int> block_order; // forward when empty; grids beyond 2^24 blocks always run forward
    if ((cooperative || schedule_order() != Order::forward) && blocks <= (1u << 24)) block_order = run_order(static_cast<int>(blocks));
    if (cooperative) {
        std::vector<std::unique_ptr<BlockRun>> all;
        for (unsigned long long k = 0; k < blocks; ++k) all.push_back(make_block(k, grid, block, shared));
        run_cooperative(all, block_order, body);
        return;
    }
    for (unsigned long long k = 0; k < blocks; ++k) {
        const unsigned long long id = block_order.empty() ? k : static_cast<unsigned long long>(block_order[k]);
        std::unique_ptr<BlockRun> b = make_block(id, grid, block, shared);
        run_block(*b, body); // each pass sets g_block and the block's coordinates
    }
}

} // namespace winnow::emu
