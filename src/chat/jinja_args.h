#pragma once
// Reading the arguments of a filter, test, method or global function by position or keyword, with the type the
// callee needs; a missing or mistyped argument is an error naming the callee and the argument.
#include <string>

#include "chat/jinja_limits.h"
#include "chat/jinja_value.h"

namespace winnow::jinja {

class ArgReader {
public:
    ArgReader(const CallArgs& args, std::string callee, int line) : args_(args), callee_(std::move(callee)), line_(line) {}

    const Value* get(size_t index, const char* name) const { return args_.get(index, name); }
    bool has(size_t index, const char* name) const {
        const Value* v = get(index, name);
        return v && !v->is_none() && !v->is_undefined();
    }
    std::string str(size_t index, const char* name, const std::string& fallback) const {
        const Value* v = get(index, name);
        if (!v || v->is_none() || v->is_undefined()) return fallback;
        if (!v->is_string()) error(name, "a string", *v);
        return v->as_string();
    }
    std::string required_str(size_t index, const char* name) const {
        const Value* v = get(index, name);
        if (!v || !v->is_string()) error(name, "a string", v ? *v : Value());
        return v->as_string();
    }
    int64_t integer(size_t index, const char* name, int64_t fallback) const {
        const Value* v = get(index, name);
        if (!v || v->is_none() || v->is_undefined()) return fallback;
        if (!v->is_integral()) error(name, "an integer", *v);
        return v->as_int();
    }
    bool boolean(size_t index, const char* name, bool fallback) const {
        const Value* v = get(index, name);
        return v ? v->truthy() : fallback;
    }
    // At most `n` positional arguments and only the named keywords.
    void allow(size_t n, std::initializer_list<const char*> keywords) const {
        if (args_.positional.size() > n)
            fail(ErrorKind::invalid_argument, callee_ + " takes at most " + std::to_string(n) + " argument" + (n == 1 ? "" : "s") + ", got " +
                                                  std::to_string(args_.positional.size()), line_);
        for (const auto& [k, v] : args_.keyword) {
            bool ok = false;
            for (const char* kw : keywords) ok |= k == kw;
            if (!ok) fail(ErrorKind::invalid_argument, callee_ + " got an unexpected keyword argument '" + k + "'", line_);
        }
    }
    [[noreturn]] void error(const char* name, const char* expected, const Value& got) const {
        fail(ErrorKind::invalid_argument, callee_ + ": argument '" + name + "' must be " + expected + ", not " + got.type_name(), line_);
    }

private:
    const CallArgs& args_;
    std::string callee_;
    int line_;
};

} // namespace winnow::jinja
