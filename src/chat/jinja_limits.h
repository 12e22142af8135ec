#pragma once
// Errors and resource bounds of the chat-template engine. Templates come from model files, which are untrusted: every
// failure is a one-line winnow::Error naming what is wrong and where ("chat template: unknown filter 'foo' at line
// 3"), and a render is bounded in output, work and nesting so that no template can hang, exhaust memory or recurse
// without limit.
#include <cstddef>
#include <cstdint>
#include <string>

#include "winnow/error.h"

namespace winnow::jinja {

// Throws winnow::Error "chat template: <what> at line <line>" (line 0: no location).
[[noreturn]] void fail(ErrorKind kind, const std::string& what, int line);

struct Limits {
    size_t max_output = size_t{16} << 20; // bytes of rendered text, and of any one string a template builds
    size_t max_items = size_t{1} << 18;   // items of any one list a template builds (or characters it iterates)
    int64_t max_steps = 5'000'000;        // work units: evaluations, loop iterations, 16 bytes or 4 items made
    int max_call_depth = 32;              // nested macro calls
    int max_parse_depth = 100;            // nested blocks, and nested expressions within one tag
};

// Counts the work of one render against Limits::max_steps: this also bounds the memory a render can allocate (every
// string or list it makes is paid for by size), so a hostile template ends in an error, not an exhausted machine.
class Budget {
public:
    explicit Budget(const Limits& limits) : limits_(limits) {}
    void charge(int64_t units, int line) {
        steps_ += units;
        if (steps_ > limits_.max_steps)
            fail(ErrorKind::invalid_argument, "the template does too much work (over " + std::to_string(limits_.max_steps) + " steps)", line);
    }
    // A string of `size` bytes is about to be made.
    void check_size(size_t size, int line) { grow(size, size, line); }
    // A string grows by `added` bytes to `size`.
    void grow(size_t size, size_t added, int line) {
        if (size > limits_.max_output)
            fail(ErrorKind::invalid_argument, "the template builds a value over " + std::to_string(limits_.max_output) + " bytes", line);
        charge(1 + static_cast<int64_t>(added / 16), line);
    }
    // A list of `n` items is about to be made.
    void check_items(size_t n, int line) {
        if (n > limits_.max_items)
            fail(ErrorKind::invalid_argument, "the template builds a list of over " + std::to_string(limits_.max_items) + " items", line);
        charge(1 + static_cast<int64_t>(n / 4), line);
    }
    // A linear pass over `size` bytes (indexing a string by code point, stripping, splitting).
    void scan(size_t size, int line) { charge(1 + static_cast<int64_t>(size / 16), line); }
    // Searching for a `needle`-byte string in a `haystack`-byte one (std::string::find is O(haystack * needle) at worst).
    void search(size_t haystack, size_t needle, int line) {
        const long double cost = 1.0L + haystack / 16.0L + static_cast<long double>(haystack) * needle / 1024.0L;
        charge(cost > 1e15L ? int64_t{1} << 50 : static_cast<int64_t>(cost), line);
    }
    const Limits& limits() const { return limits_; }

private:
    const Limits& limits_;
    int64_t steps_ = 0;
};

} // namespace winnow::jinja
