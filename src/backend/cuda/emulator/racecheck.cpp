// The SIMT emulator's race detector (racecheck.h says what it checks and why). Each checked access is recorded per
// 4-byte word of memory with a byte mask: who (block, thread), when (the block's phase, the thread's clock, the grid's
// phase) and where in the code (the instrumented call's return address). A new access is checked against the records
// of the bytes it touches; a write then replaces every record of those bytes, and a read replaces the newest read when
// that one happened before it (a later write unordered with the dropped read is unordered with the read that replaced
// it, so no race is lost). Reads that no order relates (many threads reading one word) keep at most kReads records per
// word, the newest: a race can go unseen there, a false one is never made up.
#include "backend/cuda/emulator/racecheck.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/cuda/emulator/emulator.h"
#include "backend/cuda/emulator/simt.h"

namespace winnow::emu::race {

namespace {
bool g_enabled = false;
} // namespace

bool enabled() { return g_enabled; }

namespace {
// Merges sorted (key, value) pairs, the larger value where a key is in both.
template <class K>
void merge_max(std::vector<std::pair<K, uint32_t>>& into, const std::vector<std::pair<K, uint32_t>>& from) {
    if (from.empty()) return;
    std::vector<std::pair<K, uint32_t>> out;
    out.reserve(into.size() + from.size());
    auto a = into.begin(), b = from.begin();
    while (a != into.end() || b != from.end()) {
        if (b == from.end() || (a != into.end() && a->first < b->first)) out.push_back(*a++);
        else if (a == into.end() || b->first < a->first) out.push_back(*b++);
        else out.emplace_back(a->first, std::max(a->second, b->second)), ++a, ++b;
    }
    into.swap(out);
}

template <class K>
void raise(std::vector<std::pair<K, uint32_t>>& v, K key, uint32_t value) {
    auto it = std::lower_bound(v.begin(), v.end(), key, [](const auto& e, K k) { return e.first < k; });
    if (it != v.end() && it->first == key) it->second = std::max(it->second, value);
    else v.emplace(it, key, value);
}

template <class K>
const uint32_t* find(const std::vector<std::pair<K, uint32_t>>& v, K key) {
    auto it = std::lower_bound(v.begin(), v.end(), key, [](const auto& e, K k) { return e.first < k; });
    return it != v.end() && it->first == key ? &it->second : nullptr;
}
} // namespace

void Knowledge::add_block(uint32_t block, uint32_t phase) { raise(blocks, block, phase); }
void Knowledge::add_thread(uint64_t key, uint32_t clock) { raise(threads, key, clock); }
void Knowledge::join(const Knowledge& other) {
    merge_max(blocks, other.blocks);
    merge_max(threads, other.threads);
}
bool Knowledge::covers_block(uint32_t block, uint32_t phase) const {
    const uint32_t* p = find(blocks, block);
    return p && phase < *p;
}
bool Knowledge::covers_thread(uint64_t key, uint32_t clock) const {
    const uint32_t* c = find(threads, key);
    return c && clock <= *c;
}

namespace {

struct Access {
    const void* pc;
    uint32_t block, tid, phase, clock, grid_phase;
    uint8_t mask;  // the bytes of the word
    bool write;
};

constexpr size_t kReads = 8;

struct Word {
    std::vector<Access> writes; // at most 4: one per byte
    std::vector<Access> reads;
};

uint64_t thread_key(uint32_t block, uint32_t tid) { return static_cast<uint64_t>(block) << 10 | tid; }

// A copy of k to extend (Knowledge held by pointer is never changed in place: others may share it).
std::shared_ptr<Knowledge> copy_of(const std::shared_ptr<const Knowledge>& k) {
    return k ? std::make_shared<Knowledge>(*k) : std::make_shared<Knowledge>();
}

} // namespace

// Records in pages of 1024 words (4 KiB of memory), found through a hash of the page address behind a small
// direct-mapped cache of pages: a kernel walks a few arrays at once, so most accesses skip the hash (a hash lookup per
// access was 60% of a checked run's time).
struct Shadow {
    static constexpr int kPageBits = 12;
    static constexpr size_t kWordsPerPage = size_t{1} << (kPageBits - 2);
    static constexpr size_t kCached = 64;
    std::unordered_map<uintptr_t, std::unique_ptr<Word[]>> pages;
    uintptr_t cached_page[kCached];
    Word* cached_words[kCached];

    Shadow() { clear(); }
    Word& word(uintptr_t address) {
        const uintptr_t page = address >> kPageBits;
        const size_t slot = page % kCached;
        if (cached_page[slot] != page) {
            std::unique_ptr<Word[]>& words = pages[page];
            if (!words) words = std::make_unique<Word[]>(kWordsPerPage);
            cached_page[slot] = page, cached_words[slot] = words.get();
        }
        return cached_words[slot][(address >> 2) & (kWordsPerPage - 1)];
    }
    void clear() {
        std::unordered_map<uintptr_t, std::unique_ptr<Word[]>>().swap(pages); // frees the buckets too
        std::fill(std::begin(cached_page), std::end(cached_page), ~uintptr_t{0});
        std::fill(std::begin(cached_words), std::end(cached_words), nullptr);
    }
};

BlockClock::BlockClock() = default;
BlockClock::~BlockClock() = default;

namespace {

struct SyncObject {
    std::shared_ptr<const Knowledge> known;  // what fenced atomics here released; replaced, never changed, so that an
                                             // atomic observes it as it was by keeping the pointer
    std::shared_ptr<const Knowledge> last_release; // the last release joined (a thread's many atomics after one fence)
};

struct Launch {
    uint32_t grid_x = 1, grid_y = 1, block_x = 1, block_y = 1;
    uint32_t grid_phase = 0;
    Shadow device;
    std::vector<std::pair<const char*, const char*>> allocations; // sorted [base, end)
    std::pair<const char*, const char*> last_hit{nullptr, nullptr};
    std::unordered_map<const void*, SyncObject> sync_objects;    // atomics' addresses (nodes: stable addresses)
    // threads that exited before a block barrier their block then released: thread key -> the phase they exited in
    // (their accesses in that phase are ordered by no barrier). Empty in most launches, so the lookup is skipped.
    std::unordered_map<uint64_t, uint32_t> early_exits;
    std::string report;
};
Launch g_launch;
thread_local ThreadClock* g_current = nullptr;

std::string coordinates(uint64_t linear, uint64_t x, uint64_t y) {
    return "(" + std::to_string(linear % x) + ", " + std::to_string(linear / x % y) + ", " + std::to_string(linear / (x * y)) + ")";
}

// "function at file:line" for a code address, by addr2line on the module that holds it (reports are rare: one process
// per address is fine); the module and offset when that fails.
std::string code_location(const void* pc) {
    Dl_info info{};
    if (!dladdr(pc, &info) || !info.dli_fname) return "an unknown place";
    const auto offset = static_cast<uintptr_t>(static_cast<const char*>(pc) - static_cast<const char*>(info.dli_fbase)) - 1;
    char fallback[64];
    std::snprintf(fallback, sizeof fallback, "+0x%zx", static_cast<size_t>(offset));
    const std::string module = info.dli_fname;
    const std::string command = "addr2line -Cfip -e '" + module + "' " + fallback + " 2>/dev/null";
    std::string out;
    if (FILE* p = popen(command.c_str(), "r")) {
        char buf[512];
        while (std::fgets(buf, sizeof buf, p)) out += buf;
        pclose(p);
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    if (out.empty() || out.rfind("??", 0) == 0) return module + fallback;
    return out;
}

std::string describe(const Access& a) {
    return std::string(a.write ? "a write" : "a read") + " by thread " + coordinates(a.tid, g_launch.block_x, g_launch.block_y) + " of block " +
           coordinates(a.block, g_launch.grid_x, g_launch.grid_y) + " in " + code_location(a.pc);
}

std::string memory_name(uintptr_t address, bool device) {
    char buf[96];
    if (device) {
        auto it = std::upper_bound(g_launch.allocations.begin(), g_launch.allocations.end(), reinterpret_cast<const char*>(address),
                                   [](const char* p, const auto& r) { return p < r.first; });
        --it;
        std::snprintf(buf, sizeof buf, "byte %zu of a device allocation of %zu bytes", static_cast<size_t>(reinterpret_cast<const char*>(address) - it->first),
                      static_cast<size_t>(it->second - it->first));
    } else {
        std::snprintf(buf, sizeof buf, "the block's shared memory (address %p)", reinterpret_cast<const void*>(address));
    }
    return buf;
}

void report(const Access& earlier, const Access& now, uintptr_t address, bool device) {
    if (!g_launch.report.empty()) return; // the first one is enough: the launch fails with it
    g_launch.report = "racecheck: " + describe(now) + " and " + describe(earlier) + " touch " + memory_name(address, device) +
                      " with no barrier, __syncwarp or fence + atomic ordering them";
    // printed now as well: the racing access still happens, and a kernel that then crashes or spins never returns to
    // the scheduler, which raises the report at the thread's next meeting point
    std::fprintf(stderr, "SIMT emulator: %s\n", g_launch.report.c_str());
}

// Whether r was made by a thread that exited in r's phase and its block then released a barrier without it: block
// barriers after r's phase do not order r.
bool exited_before_a_barrier(const Access& r) {
    if (g_launch.early_exits.empty()) return false;
    const auto it = g_launch.early_exits.find(thread_key(r.block, r.tid));
    return it != g_launch.early_exits.end() && it->second == r.phase;
}

bool happens_before(const Access& r, const ThreadClock& t) {
    if (r.grid_phase < g_launch.grid_phase) return true;
    if (r.block == t.block->id) {
        if (r.tid == t.tid) return true;
        if (r.phase < t.block->phase && !exited_before_a_barrier(r)) return true;
        if (r.tid / 32 == t.tid / 32 && r.clock <= t.lane_clock[r.tid % 32]) return true;
    }
    if (!t.known) return false;
    if (t.known->covers_thread(thread_key(r.block, r.tid), r.clock)) return true;
    return t.known->covers_block(r.block, r.phase) && !exited_before_a_barrier(r);
}

void check_word(Word& w, const Access& now, const ThreadClock& t, uintptr_t address, bool device) {
    for (const Access& r : w.writes)
        if ((r.mask & now.mask) && !happens_before(r, t)) report(r, now, address, device);
    if (now.write) {
        for (const Access& r : w.reads)
            if ((r.mask & now.mask) && !happens_before(r, t)) report(r, now, address, device);
        auto drop_covered = [&](std::vector<Access>& v) {
            for (Access& r : v) r.mask &= static_cast<uint8_t>(~now.mask);
            v.erase(std::remove_if(v.begin(), v.end(), [](const Access& r) { return r.mask == 0; }), v.end());
        };
        drop_covered(w.writes);
        drop_covered(w.reads);
        w.writes.push_back(now);
        return;
    }
    // a read: the newest read of these bytes, when it happened before this one, is covered by it (only the newest is
    // tried: a scan of all of them on every read took most of a checked run's time)
    if (!w.reads.empty() && (w.reads.back().mask & ~now.mask) == 0 && happens_before(w.reads.back(), t)) {
        w.reads.back() = now;
        return;
    }
    if (w.reads.size() >= kReads) w.reads.erase(w.reads.begin());
    w.reads.push_back(now);
}

// Whether p lies in device memory (an allocation as of the launch's start), with the last allocation hit remembered.
bool is_device(const char* p) {
    const auto& last = g_launch.last_hit;
    if (p >= last.first && p < last.second) return true;
    const auto& a = g_launch.allocations;
    auto it = std::upper_bound(a.begin(), a.end(), p, [](const char* q, const auto& r) { return q < r.first; });
    if (it == a.begin()) return false;
    --it;
    if (p >= it->second) return false;
    g_launch.last_hit = *it;
    return true;
}

// Checks and records one access by the running GPU thread (the __tsan_ entry points below call it).
[[maybe_unused]] void access(const void* address, size_t size, bool write, const void* pc) {
    ThreadClock* t = g_current;
    if (!t || size == 0) return;
    const char* p = static_cast<const char*>(address);
    if (p >= t->stack_low && p < t->stack_high) return; // the thread's own locals
    const char* coords = reinterpret_cast<const char*>(&g_coordinates);
    if (p >= coords && p < coords + sizeof g_coordinates) return; // threadIdx and friends: the scheduler's
    const bool device = is_device(p);
    Shadow& shadow = device ? g_launch.device : *t->block->private_records;
    Access now{pc, t->block->id, t->tid, t->block->phase, t->clock, g_launch.grid_phase, 0, write};
    const uintptr_t begin = reinterpret_cast<uintptr_t>(p), end = begin + size;
    for (uintptr_t word = begin & ~uintptr_t{3}; word < end; word += 4) {
        uint8_t mask = 0;
        for (uintptr_t b = std::max(word, begin); b < std::min(word + 4, end); ++b) mask |= static_cast<uint8_t>(1u << (b - word));
        now.mask = mask;
        check_word(shadow.word(word), now, *t, std::max(word, begin), device);
    }
}

} // namespace

void begin_launch(uint32_t grid_x, uint32_t grid_y, uint32_t block_x, uint32_t block_y) {
    if (!g_enabled) return;
    g_launch.grid_x = grid_x, g_launch.grid_y = grid_y, g_launch.block_x = block_x, g_launch.block_y = block_y;
    g_launch.grid_phase = 0;
    g_launch.allocations = device_allocations();
    g_launch.last_hit = {nullptr, nullptr};
    g_launch.device.clear();
    g_launch.sync_objects.clear();
    g_launch.early_exits.clear();
    g_launch.report.clear();
}

void end_launch() {
    if (!g_enabled) return;
    g_launch.device.clear();
    g_launch.sync_objects.clear();
    g_launch.early_exits.clear();
    g_current = nullptr;
}

void enter(ThreadClock& t) {
    if (!g_enabled) return;
    if (!t.block->private_records) t.block->private_records = std::make_unique<Shadow>();
    g_current = &t;
}

void leave() { g_current = nullptr; }

std::string take_report() {
    std::string r;
    r.swap(g_launch.report);
    return r;
}

namespace {
// The join of the members' `field` (their knowledge, or what their fences release), shared by all of them afterwards:
// the one copy they already hold when there is one, else a new join of each distinct copy once.
void share(ThreadClock* const* members, int n, std::shared_ptr<const Knowledge> ThreadClock::*field) {
    std::vector<const Knowledge*> seen;
    for (int i = 0; i < n; ++i) {
        const Knowledge* k = (members[i]->*field).get();
        if (k && std::find(seen.begin(), seen.end(), k) == seen.end()) seen.push_back(k);
    }
    if (seen.empty()) return;
    std::shared_ptr<const Knowledge> joined;
    if (seen.size() == 1) {
        for (int i = 0; i < n && !joined; ++i) joined = members[i]->*field;
    } else {
        auto k = std::make_shared<Knowledge>();
        for (const Knowledge* m : seen) k->join(*m);
        joined = std::move(k);
    }
    for (int i = 0; i < n; ++i) members[i]->*field = joined;
}
} // namespace

void syncwarp(ThreadClock* const* lanes, int n) {
    if (!g_enabled || n == 0) return;
    uint32_t joined[32] = {};
    for (int i = 0; i < n; ++i) {
        const ThreadClock& t = *lanes[i];
        for (int l = 0; l < 32; ++l) joined[l] = std::max(joined[l], t.lane_clock[l]);
        joined[t.tid % 32] = std::max(joined[t.tid % 32], t.clock);
    }
    share(lanes, n, &ThreadClock::known);
    for (int i = 0; i < n; ++i) {
        ThreadClock& t = *lanes[i];
        std::memcpy(t.lane_clock, joined, sizeof joined);
        t.syncwarp_phase = t.block->phase;
        ++t.clock;
    }
}

void thread_exit(ThreadClock& t) {
    if (g_enabled) t.block->exited_this_phase.push_back(t.tid);
}

void block_barrier(BlockClock& block, ThreadClock* const* threads, int n) {
    if (!g_enabled) return;
    // An exited lane's accesses up to a __syncwarp it shared with a lane that arrives here are ordered before that lane's
    // arrival, and so before every thread after the barrier: the barrier's phase rule no longer covers them
    // (exited_before_a_barrier), so they are handed on by clock, as the joined knowledge's entry for the exited thread.
    std::vector<std::pair<uint64_t, uint32_t>> handed;
    for (uint32_t tid : block.exited_this_phase) {
        g_launch.early_exits[thread_key(block.id, tid)] = block.phase;
        uint32_t seen = 0;
        for (int i = 0; i < n; ++i)
            if (threads[i]->tid / 32 == tid / 32) seen = std::max(seen, threads[i]->lane_clock[tid % 32]);
        if (seen > 0) handed.emplace_back(thread_key(block.id, tid), seen);
    }
    block.exited_this_phase.clear();
    ++block.phase;
    share(threads, n, &ThreadClock::known);
    if (!handed.empty() && n > 0) {
        auto known = copy_of(threads[0]->known); // after share() every arriving thread holds the same join
        for (const auto& [key, clock] : handed) known->add_thread(key, clock);
        const std::shared_ptr<const Knowledge> joined = std::move(known);
        for (int i = 0; i < n; ++i) threads[i]->known = joined;
    }
    // What each thread released by its fence before the barrier, every thread releases after it (fences are
    // cumulative): "every writer fences, a barrier, then one thread counts" (attention.cu's arrive_last) publishes
    // every writer's results.
    share(threads, n, &ThreadClock::release);
}

void grid_barrier() {
    if (g_enabled) ++g_launch.grid_phase;
}

} // namespace winnow::emu::race

namespace winnow::emu {

// __threadfence() by the running thread (simt.h calls it in a racecheck build), as the PTX memory model's fence: it
// acquires what the fenced atomics it has made since its last fence observed (the atomic, then the fence: the reading
// side of the last-block pattern), and from now on every atomic it makes releases what it knew here (the fence, then
// the atomic: the writing side). Its clock advances, so accesses after the fence are not released by it.
void fence_sync() {
    using namespace race;
    ThreadClock* t = g_current;
    if (!t) return;
    if (!t->observed.empty()) {
        auto known = copy_of(t->known);
        for (const auto& object : t->observed) known->join(*object);
        t->observed.clear();
        t->known = std::move(known);
    }
    auto release = copy_of(t->known);
    release->add_block(t->block->id, t->block->phase);
    release->add_thread(thread_key(t->block->id, t->tid), t->clock);
    // the lanes' accesses it knows of through a __syncwarp since its block's last barrier (earlier ones are in the
    // block's earlier phases, which the block's entry covers)
    if (t->syncwarp_phase == t->block->phase) {
        const uint32_t warp = t->tid / 32 * 32;
        for (uint32_t l = 0; l < 32; ++l)
            if (t->lane_clock[l] > 0) release->add_thread(thread_key(t->block->id, warp + l), t->lane_clock[l]);
    }
    t->release = std::move(release);
    ++t->clock;
}

// An atomic read-modify-write at p by the running thread (simt.h's atomics call it in a racecheck build). After a
// fence it releases what the thread knew at that fence, and its next fence acquires what p's earlier releases left;
// a thread that never fenced orders nothing through atomics (relaxed, as on the device; and the compaction counters
// that thousands of threads bump stay cheap).
void atomic_sync(const void* p) {
    using namespace race;
    ThreadClock* t = g_current;
    if (!t) return;
    SyncObject& object = g_launch.sync_objects[p];
    if (object.known && (t->observed.empty() || t->observed.back() != object.known))
        t->observed.push_back(object.known); // what earlier releases here left, as of this atomic
    if (t->release && object.last_release != t->release) { // a release joined once per fence and object
        auto known = copy_of(object.known);
        known->join(*t->release);
        object.known = std::move(known);
        object.last_release = t->release;
    }
}

} // namespace winnow::emu

#ifdef WINNOW_EMU_RACECHECK
// The ThreadSanitizer runtime's entry points that GCC's instrumentation calls (-fsanitize=thread), for the kernel
// sources of a racecheck build: loads and stores go to the detector; atomics of the host code in those sources (a
// shared_ptr's count) are done here, sequentially consistent whatever order was asked.
namespace {
using winnow::emu::race::access;
} // namespace

extern "C" {
void __tsan_init() { winnow::emu::race::g_enabled = true; }
void __tsan_func_entry(void*) {}
void __tsan_func_exit() {}
void __tsan_vptr_update(void**, void*) {}
void __tsan_vptr_read(void**) {}

#define WINNOW_TSAN_ACCESS(n)                                                                                             \
    void __tsan_read##n(void* p) { access(p, n, false, __builtin_return_address(0)); }                                    \
    void __tsan_write##n(void* p) { access(p, n, true, __builtin_return_address(0)); }                                    \
    void __tsan_unaligned_read##n(void* p) { access(p, n, false, __builtin_return_address(0)); }                          \
    void __tsan_unaligned_write##n(void* p) { access(p, n, true, __builtin_return_address(0)); }                          \
    void __tsan_volatile_read##n(void* p) { access(p, n, false, __builtin_return_address(0)); }                           \
    void __tsan_volatile_write##n(void* p) { access(p, n, true, __builtin_return_address(0)); }
WINNOW_TSAN_ACCESS(1)
WINNOW_TSAN_ACCESS(2)
WINNOW_TSAN_ACCESS(4)
WINNOW_TSAN_ACCESS(8)
WINNOW_TSAN_ACCESS(16)
#undef WINNOW_TSAN_ACCESS
void __tsan_read_range(void* p, unsigned long size) { access(p, size, false, __builtin_return_address(0)); }
void __tsan_write_range(void* p, unsigned long size) { access(p, size, true, __builtin_return_address(0)); }

#define WINNOW_TSAN_ATOMIC(bits, T)                                                                                       \
    T __tsan_atomic##bits##_load(const volatile T* a, int) { return __atomic_load_n(a, __ATOMIC_SEQ_CST); }               \
    void __tsan_atomic##bits##_store(volatile T* a, T v, int) { __atomic_store_n(a, v, __ATOMIC_SEQ_CST); }               \
    T __tsan_atomic##bits##_exchange(volatile T* a, T v, int) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); }     \
    T __tsan_atomic##bits##_fetch_add(volatile T* a, T v, int) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); }     \
    T __tsan_atomic##bits##_fetch_sub(volatile T* a, T v, int) { return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST); }     \
    T __tsan_atomic##bits##_fetch_and(volatile T* a, T v, int) { return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST); }     \
    T __tsan_atomic##bits##_fetch_or(volatile T* a, T v, int) { return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST); }       \
    T __tsan_atomic##bits##_fetch_xor(volatile T* a, T v, int) { return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST); }     \
    T __tsan_atomic##bits##_fetch_nand(volatile T* a, T v, int) { return __atomic_fetch_nand(a, v, __ATOMIC_SEQ_CST); }   \
    int __tsan_atomic##bits##_compare_exchange_strong(volatile T* a, T* c, T v, int, int) {                               \
        return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                           \
    }                                                                                                                     \
    int __tsan_atomic##bits##_compare_exchange_weak(volatile T* a, T* c, T v, int, int) {                                 \
        return __atomic_compare_exchange_n(a, c, v, true, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                            \
    }                                                                                                                     \
    T __tsan_atomic##bits##_compare_exchange_val(volatile T* a, T c, T v, int, int) {                                     \
        __atomic_compare_exchange_n(a, &c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                                 \
        return c;                                                                                                         \
    }
WINNOW_TSAN_ATOMIC(8, unsigned char)
WINNOW_TSAN_ATOMIC(16, unsigned short)
WINNOW_TSAN_ATOMIC(32, unsigned int)
WINNOW_TSAN_ATOMIC(64, unsigned long long)
#undef WINNOW_TSAN_ATOMIC
void __tsan_atomic_thread_fence(int) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
void __tsan_atomic_signal_fence(int) { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
} // extern "C"
#endif
