// jinja2's built-in filters and tests (the subset chat templates use), with HF's tojson (ensure_ascii=False, no HTML
// escaping). Unknown names are refused when the template is parsed, as jinja2 does.
#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "chat/jinja_args.h"
#include "chat/jinja_builtins.h"
#include "chat/jinja_interpreter.h"
#include "chat/jinja_python.h"
#include "chat/jinja_strings.h"

namespace winnow::jinja {

namespace {

constexpr std::array kFilters = {"trim", "length", "count", "upper", "lower", "capitalize", "title", "tojson", "default", "d", "first",
                                 "last", "join", "replace", "string", "list", "items", "int", "float", "abs", "reverse", "sort",
                                 "map", "select", "reject", "selectattr", "rejectattr", "sum", "indent", "safe", "escape", "e", "attr",
                                 "unique", "min", "max", "wordcount", "dictsort"};
constexpr std::array kTests = {"defined", "undefined", "none", "boolean", "false", "true", "integer", "float", "number", "string",
                               "mapping", "iterable", "sequence", "callable", "odd", "even", "divisibleby", "eq", "equalto", "==",
                               "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=", "in", "sameas",
                               "lower", "upper", "escaped", "filter", "test"};

// "a.b.c" looked up item by item (jinja2's attribute= arguments); a number part indexes a list.
Value lookup_path(Interpreter& in, const Value& v, const std::string& path, int line) {
    Value cur = v;
    size_t start = 0;
    while (true) {
        const size_t dot = path.find('.', start);
        const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        if (cur.is_undefined()) return cur;
        const bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; }) && part.size() < 18;
        cur = in.get_item(cur, numeric ? Value::integer(std::stoll(part)) : Value::string(part), line);
        if (dot == std::string::npos) return cur;
        start = dot + 1;
    }
}

int64_t length_of(const Value& v, int line) {
    switch (v.kind()) {
    case Value::Kind::undefined: return 0;
    case Value::Kind::string: return static_cast<int64_t>(code_points(v.as_string()).size());
    case Value::Kind::list: return static_cast<int64_t>(v.as_list().size());
    case Value::Kind::dict: return static_cast<int64_t>(v.as_dict().entries.size());
    default: fail(ErrorKind::invalid_argument, std::string("object of type '") + v.type_name() + "' has no len()", line);
    }
}

std::string html_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&#34;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
        }
    }
    return out;
}

// select/reject/selectattr/rejectattr: keep items whose test (or truthiness) is `keep`. A false input (none, an empty
// sequence) gives nothing without a look at the arguments, as jinja2's select_or_reject: templates filter `tools`
// when the caller passed none (functionary's `tools | selectattr("type", "equalto", "code_interpreter")`).
Value filter_items(Interpreter& in, const Value& input, CallArgs& args, bool by_attr, bool keep, const std::string& name, int line) {
    if (!input.truthy()) return Value::list({});
    size_t at = 0;
    std::string attr;
    if (by_attr) {
        if (args.positional.empty() || !args.positional[0].is_string()) fail(ErrorKind::invalid_argument, name + " needs an attribute name", line);
        attr = args.positional[0].as_string();
        at = 1;
    }
    std::string test;
    if (args.positional.size() > at) {
        if (!args.positional[at].is_string()) fail(ErrorKind::invalid_argument, name + ": the test name must be a string", line);
        test = args.positional[at].as_string();
        if (!is_known_test(test)) fail(ErrorKind::invalid_argument, "unknown test '" + test + "'", line);
    }
    CallArgs test_args;
    for (size_t k = at + 1; k < args.positional.size(); ++k) test_args.positional.push_back(args.positional[k]);
    List out;
    for (const Value& item : in.iterate(input, line)) {
        in.budget().charge(1, line);
        const Value subject = by_attr ? lookup_path(in, item, attr, line) : item;
        CallArgs a = test_args;
        const bool passed = test.empty() ? subject.truthy() : apply_test(in, test, subject, a, line);
        if (passed == keep) out.push_back(item);
    }
    return Value::list(std::move(out));
}

List sorted(Interpreter& in, List items, bool reverse, bool case_sensitive, const std::string& attr, int line) {
    const auto key = [&](const Value& v) {
        Value k = attr.empty() ? v : lookup_path(in, v, attr, line);
        if (!case_sensitive && k.is_string()) k = Value::string(py_lower(k.as_string()));
        return k;
    };
    std::vector<std::pair<Value, Value>> keyed;
    for (const Value& v : items) keyed.emplace_back(key(v), v);
    std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
        return reverse ? python_compare(b.first, a.first, in.budget(), line) < 0 : python_compare(a.first, b.first, in.budget(), line) < 0;
    });
    List out;
    for (auto& [k, v] : keyed) out.push_back(std::move(v));
    return out;
}

std::string indent_text(const std::string& s, const std::string& pad, bool first, bool blank) {
    const std::vector<std::string> lines = py_splitlines(s + "\n");
    std::string rv;
    for (size_t k = 0; k < lines.size(); ++k) {
        if (k > 0) rv += "\n";
        if (k == 0 && !first) rv += lines[k];
        else if (k == 0) rv += pad + lines[k];
        else rv += (blank || !lines[k].empty()) ? pad + lines[k] : lines[k];
    }
    return rv;
}

} // namespace

bool is_known_filter(std::string_view name) { return std::find(kFilters.begin(), kFilters.end(), name) != kFilters.end(); }
bool is_known_test(std::string_view name) { return std::find(kTests.begin(), kTests.end(), name) != kTests.end(); }

Value apply_filter(Interpreter& in, const std::string& name, const Value& v, CallArgs& args, int line) {
    const ArgReader a(args, "filter '" + name + "'", line);
    Budget& budget = in.budget();
    // every filter is at most a few linear passes over its input (and replace a search: charged there)
    if (v.is_string()) budget.scan(v.as_string().size(), line);
    const auto text = [&] { return in.str(v, line); };
    if (name == "trim") {
        a.allow(1, {"chars"});
        const std::string chars = a.str(0, "chars", "");
        return Value::string(py_strip(text(), a.has(0, "chars") ? &chars : nullptr, true, true));
    }
    if (name == "length" || name == "count") return a.allow(0, {}), Value::integer(length_of(v, line));
    if (name == "upper") return a.allow(0, {}), Value::string(py_upper(text()));
    if (name == "lower") return a.allow(0, {}), Value::string(py_lower(text()));
    if (name == "capitalize") return a.allow(0, {}), Value::string(py_capitalize(text()));
    if (name == "title") return a.allow(0, {}), Value::string(jinja_title(text()));
    if (name == "tojson") {
        a.allow(1, {"indent", "ensure_ascii", "sort_keys"});
        if (a.has(99, "ensure_ascii") && a.get(99, "ensure_ascii")->truthy())
            fail(ErrorKind::unsupported, "tojson(ensure_ascii=true) is not supported", line);
        const int64_t indent = a.integer(0, "indent", -1);
        if (indent > 64) fail(ErrorKind::invalid_argument, "tojson: indent over 64", line);
        return Value::string(python_json(v, static_cast<int>(indent), a.boolean(99, "sort_keys", false), budget, line));
    }
    if (name == "default" || name == "d") {
        a.allow(2, {"default_value", "boolean"});
        const bool use_default = v.is_undefined() || (a.boolean(1, "boolean", false) && !v.truthy());
        if (!use_default) return v;
        const Value* d = a.get(0, "default_value");
        return d ? *d : Value::string("");
    }
    if (name == "first" || name == "last") {
        a.allow(0, {});
        if (v.is_undefined()) fail(ErrorKind::invalid_argument, v.as_string(), line);
        const List items = in.iterate(v, line);
        if (items.empty()) return Value::undefined("'" + name + "' of an empty sequence");
        return name == "first" ? items.front() : items.back();
    }
    if (name == "join") {
        a.allow(2, {"d", "attribute"});
        const std::string sep = a.str(0, "d", "");
        const std::string attr = a.str(1, "attribute", "");
        std::string out;
        bool first = true;
        for (const Value& item : in.iterate(v, line)) {
            if (!first) out += sep;
            first = false;
            const std::string piece = in.str(attr.empty() ? item : lookup_path(in, item, attr, line), line);
            budget.grow(out.size() + piece.size(), piece.size(), line);
            out += piece;
        }
        return Value::string(std::move(out));
    }
    if (name == "replace") {
        a.allow(3, {"old", "new", "count"});
        const std::string s = text(), old = in.str(a.get(0, "old") ? *a.get(0, "old") : Value(), line),
                          with = in.str(a.get(1, "new") ? *a.get(1, "new") : Value(), line);
        if (!a.get(0, "old") || !a.get(1, "new")) fail(ErrorKind::invalid_argument, "filter 'replace' needs the old and the new text", line);
        const size_t occurrences = old.empty() ? code_points(s).size() + 1 : s.size() / old.size();
        budget.check_size(s.size() + occurrences * with.size(), line);
        budget.search(s.size(), old.size(), line);
        return Value::string(py_replace(s, old, with, a.integer(2, "count", -1)));
    }
    if (name == "string") return a.allow(0, {}), Value::string(text());
    if (name == "safe") return a.allow(0, {}), v;
    if (name == "escape" || name == "e") return a.allow(0, {}), Value::string(html_escape(text()));
    if (name == "list") return a.allow(0, {}), Value::list(in.iterate(v, line));
    if (name == "items") {
        a.allow(0, {});
        if (v.is_undefined()) return Value::list({});
        if (!v.is_dict()) fail(ErrorKind::invalid_argument, std::string("filter 'items' needs a mapping, not ") + v.type_name(), line);
        List out;
        for (const auto& [k, x] : v.as_dict().entries) out.push_back(Value::list({k, x}, true));
        return Value::list(std::move(out));
    }
    if (name == "int") {
        a.allow(2, {"default", "base"});
        const int64_t fallback = a.integer(0, "default", 0);
        if (v.is_integral()) return Value::integer(v.as_int());
        if (v.kind() == Value::Kind::floating) {
            const double d = v.as_double();
            if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return Value::integer(fallback);
            return Value::integer(static_cast<int64_t>(d));
        }
        if (v.is_string()) {
            const std::string s = py_strip(v.as_string(), nullptr, true, true);
            char* end = nullptr;
            errno = 0;
            const long long n = std::strtoll(s.c_str(), &end, static_cast<int>(std::clamp<int64_t>(a.integer(1, "base", 10), 2, 36)));
            if (!s.empty() && end == s.c_str() + s.size() && errno == 0) return Value::integer(n);
            const double d = std::strtod(s.c_str(), &end);
            if (!s.empty() && end == s.c_str() + s.size() && std::isfinite(d) && std::fabs(d) < 9.2e18) return Value::integer(static_cast<int64_t>(d));
        }
        return Value::integer(fallback);
    }
    if (name == "float") {
        a.allow(1, {"default"});
        if (v.is_number()) return Value::floating(v.as_double());
        if (v.is_string()) {
            const std::string s = py_strip(v.as_string(), nullptr, true, true);
            char* end = nullptr;
            const double d = std::strtod(s.c_str(), &end);
            if (!s.empty() && end == s.c_str() + s.size()) return Value::floating(d);
        }
        const Value* d = a.get(0, "default");
        return d ? *d : Value::floating(0.0);
    }
    if (name == "abs") {
        a.allow(0, {});
        if (v.kind() == Value::Kind::floating) return Value::floating(std::fabs(v.as_double()));
        if (!v.is_integral()) fail(ErrorKind::invalid_argument, std::string("bad operand type for abs(): '") + v.type_name() + "'", line);
        if (v.as_int() == INT64_MIN) fail(ErrorKind::invalid_argument, "integer overflow", line);
        return Value::integer(std::llabs(v.as_int()));
    }
    if (name == "reverse") {
        a.allow(0, {});
        if (v.is_string()) {
            auto cps = code_points(v.as_string());
            std::string out;
            for (auto it = cps.rbegin(); it != cps.rend(); ++it) out += *it;
            return Value::string(std::move(out));
        }
        List items = in.iterate(v, line);
        std::reverse(items.begin(), items.end());
        return Value::list(std::move(items));
    }
    if (name == "sort") {
        a.allow(3, {"reverse", "case_sensitive", "attribute"});
        return Value::list(sorted(in, in.iterate(v, line), a.boolean(0, "reverse", false), a.boolean(1, "case_sensitive", false),
                                  a.str(2, "attribute", ""), line));
    }
    if (name == "dictsort") {
        a.allow(3, {"case_sensitive", "by", "reverse"});
        if (!v.is_dict()) fail(ErrorKind::invalid_argument, std::string("filter 'dictsort' needs a mapping, not ") + v.type_name(), line);
        const std::string by = a.str(1, "by", "key");
        if (by != "key" && by != "value") fail(ErrorKind::invalid_argument, "filter 'dictsort': by must be 'key' or 'value'", line);
        List pairs;
        for (const auto& [k, x] : v.as_dict().entries) pairs.push_back(Value::list({k, x}, true));
        return Value::list(sorted(in, std::move(pairs), a.boolean(2, "reverse", false), a.boolean(0, "case_sensitive", false), by == "key" ? "0" : "1", line));
    }
    if (name == "unique") {
        a.allow(2, {"case_sensitive", "attribute"});
        const bool cs = a.boolean(0, "case_sensitive", false);
        const std::string attr = a.str(1, "attribute", "");
        List out, seen;
        for (const Value& item : in.iterate(v, line)) {
            Value k = attr.empty() ? item : lookup_path(in, item, attr, line);
            if (!cs && k.is_string()) k = Value::string(py_lower(k.as_string()));
            bool dup = false;
            for (const Value& s : seen) dup = dup || python_equal(s, k, budget, line);
            if (!dup) {
                seen.push_back(k);
                out.push_back(item);
            }
        }
        return Value::list(std::move(out));
    }
    if (name == "min" || name == "max") {
        a.allow(2, {"case_sensitive", "attribute"});
        List items = sorted(in, in.iterate(v, line), false, a.boolean(0, "case_sensitive", false), a.str(1, "attribute", ""), line);
        if (items.empty()) return Value::undefined("'" + name + "' of an empty sequence");
        return name == "min" ? items.front() : items.back();
    }
    if (name == "map") {
        List out;
        if (!v.truthy()) return Value::list(std::move(out)); // jinja2's map, like select: a false input maps to nothing
        if (a.get(99, "attribute")) {
            a.allow(0, {"attribute", "default"});
            const std::string attr = a.str(99, "attribute", "");
            const Value* d = a.get(99, "default");
            for (const Value& item : in.iterate(v, line)) {
                Value x = lookup_path(in, item, attr, line);
                out.push_back(x.is_undefined() && d ? *d : x);
            }
            return Value::list(std::move(out));
        }
        if (args.positional.empty() || !args.positional[0].is_string()) fail(ErrorKind::invalid_argument, "filter 'map' needs a filter name or attribute=", line);
        const std::string filter = args.positional[0].as_string();
        if (!is_known_filter(filter)) fail(ErrorKind::invalid_argument, "unknown filter '" + filter + "'", line);
        CallArgs rest;
        rest.positional.assign(args.positional.begin() + 1, args.positional.end());
        rest.keyword = args.keyword;
        for (const Value& item : in.iterate(v, line)) {
            CallArgs each = rest;
            out.push_back(apply_filter(in, filter, item, each, line));
        }
        return Value::list(std::move(out));
    }
    if (name == "select") return filter_items(in, v, args, false, true, name, line);
    if (name == "reject") return filter_items(in, v, args, false, false, name, line);
    if (name == "selectattr") return filter_items(in, v, args, true, true, name, line);
    if (name == "rejectattr") return filter_items(in, v, args, true, false, name, line);
    if (name == "sum") {
        a.allow(2, {"attribute", "start"});
        const std::string attr = a.str(0, "attribute", "");
        Value total = a.get(1, "start") ? *a.get(1, "start") : Value::integer(0);
        for (const Value& item : in.iterate(v, line)) {
            const Value x = attr.empty() ? item : lookup_path(in, item, attr, line);
            if (!total.is_number() || !x.is_number()) fail(ErrorKind::invalid_argument, "filter 'sum' adds numbers only", line);
            int64_t r = 0;
            if (total.is_integral() && x.is_integral()) {
                if (__builtin_add_overflow(total.as_int(), x.as_int(), &r)) fail(ErrorKind::invalid_argument, "integer overflow", line);
                total = Value::integer(r);
            } else {
                total = Value::floating(total.as_double() + x.as_double());
            }
        }
        return total;
    }
    if (name == "indent") {
        a.allow(3, {"width", "first", "blank"});
        const Value* w = a.get(0, "width");
        std::string pad = "    ";
        if (w && w->is_string()) pad = w->as_string();
        else if (w && w->is_integral()) {
            if (w->as_int() < 0 || w->as_int() > 256) fail(ErrorKind::invalid_argument, "filter 'indent': width must be 0..256", line);
            pad.assign(static_cast<size_t>(w->as_int()), ' ');
        }
        const std::string s = text();
        budget.check_size(s.size() + (std::count(s.begin(), s.end(), '\n') + 1) * pad.size(), line);
        return Value::string(indent_text(s, pad, a.boolean(1, "first", false), a.boolean(2, "blank", false)));
    }
    if (name == "attr") {
        a.allow(1, {});
        return in.get_attribute(v, a.required_str(0, "name"), line);
    }
    if (name == "wordcount") return a.allow(0, {}), Value::integer(static_cast<int64_t>(py_split(text(), nullptr, -1).size()));
    fail(ErrorKind::format, "unknown filter '" + name + "'", line);
}

bool apply_test(Interpreter& in, const std::string& name, const Value& v, CallArgs& args, int line) {
    const ArgReader a(args, "test '" + name + "'", line);
    Budget& budget = in.budget();
    const auto other = [&]() -> const Value& {
        const Value* o = a.get(0, "value");
        if (!o) fail(ErrorKind::invalid_argument, "test '" + name + "' needs an argument", line);
        return *o;
    };
    if (name == "defined") return !v.is_undefined();
    if (name == "undefined") return v.is_undefined();
    if (name == "none") return v.is_none();
    if (name == "boolean") return v.kind() == Value::Kind::boolean;
    if (name == "false") return v.kind() == Value::Kind::boolean && !v.as_bool();
    if (name == "true") return v.kind() == Value::Kind::boolean && v.as_bool();
    if (name == "integer") return v.kind() == Value::Kind::integer;
    if (name == "float") return v.kind() == Value::Kind::floating;
    if (name == "number") return v.is_number();
    if (name == "string") return v.is_string();
    if (name == "mapping") return v.is_dict();
    if (name == "iterable") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
    if (name == "sequence") return v.is_string() || v.is_list() || v.is_dict();
    if (name == "callable") return v.kind() == Value::Kind::function;
    if (name == "escaped") return false;
    if (name == "odd" || name == "even" || name == "divisibleby") {
        if (!v.is_integral()) fail(ErrorKind::invalid_argument, "test '" + name + "' needs an integer, not " + v.type_name(), line);
        if (name == "odd") return v.as_int() % 2 != 0;
        if (name == "even") return v.as_int() % 2 == 0;
        const Value& n = other();
        if (!n.is_integral() || n.as_int() == 0) fail(ErrorKind::invalid_argument, "test 'divisibleby' needs a non-zero integer", line);
        return n.as_int() == -1 || v.as_int() % n.as_int() == 0;
    }
    if (name == "eq" || name == "equalto" || name == "==") return python_equal(v, other(), budget, line);
    if (name == "ne" || name == "!=") return !python_equal(v, other(), budget, line);
    if (name == "lt" || name == "lessthan" || name == "<") return python_compare(v, other(), budget, line) < 0;
    if (name == "le" || name == "<=") return python_compare(v, other(), budget, line) <= 0;
    if (name == "gt" || name == "greaterthan" || name == ">") return python_compare(v, other(), budget, line) > 0;
    if (name == "ge" || name == ">=") return python_compare(v, other(), budget, line) >= 0;
    if (name == "in") {
        const Value& seq = other();
        if (seq.is_string()) {
            if (!v.is_string()) return false;
            budget.search(seq.as_string().size(), v.as_string().size(), line);
            return seq.as_string().find(v.as_string()) != std::string::npos;
        }
        if (seq.is_dict()) return seq.as_dict().find(v) != nullptr;
        for (const Value& x : in.iterate(seq, line))
            if (python_equal(v, x, budget, line)) return true;
        return false;
    }
    if (name == "sameas") {
        const Value& o = other();
        if (v.kind() != o.kind()) return false;
        if (v.is_none() || v.is_undefined()) return true;
        if (v.kind() == Value::Kind::boolean) return v.as_bool() == o.as_bool();
        if (v.kind() == Value::Kind::ns) return v.as_ns() == o.as_ns();
        return python_equal(v, o, budget, line) && (v.is_integral() ? v.as_int() >= -5 && v.as_int() <= 256 : false); // CPython's small ints
    }
    if (name == "lower" || name == "upper") {
        const std::string s = in.str(v, line);
        bool cased = false;
        for (char c : s) {
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) cased = true;
            if (name == "lower" ? (c >= 'A' && c <= 'Z') : (c >= 'a' && c <= 'z')) return false;
        }
        return cased;
    }
    if (name == "filter" || name == "test") {
        if (!v.is_string()) return false;
        return name == "filter" ? is_known_filter(v.as_string()) : is_known_test(v.as_string());
    }
    fail(ErrorKind::format, "unknown test '" + name + "'", line);
}

} // namespace winnow::jinja
