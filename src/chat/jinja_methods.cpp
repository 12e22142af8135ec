// The Python methods templates call on strings and dicts ("x".strip(), message.get('content'), d.items()). Methods
// that would change a list or dict are refused, as in HF's ImmutableSandboxedEnvironment.
#include <algorithm>
#include <array>

#include "chat/jinja_args.h"
#include "chat/jinja_builtins.h"
#include "chat/jinja_interpreter.h"
#include "chat/jinja_python.h"
#include "chat/jinja_strings.h"

namespace winnow::jinja {

namespace {

constexpr std::array kStringMethods = {"strip", "lstrip", "rstrip", "startswith", "endswith", "split", "rsplit", "upper", "lower",
                                       "title", "capitalize", "replace", "find", "rfind", "count", "join", "splitlines", "isdigit",
                                       "isalpha", "isalnum", "isspace", "islower", "isupper", "removeprefix", "removesuffix"};
constexpr std::array kDictMethods = {"get", "items", "keys", "values"};
constexpr std::array kUnsafeMethods = {"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse", "update", "popitem",
                                       "setdefault"};

template <typename Array>
bool contains(const Array& a, const std::string& name) {
    return std::find(a.begin(), a.end(), name) != a.end();
}

int64_t code_point_index(const std::string& s, size_t byte_pos) {
    return static_cast<int64_t>(code_points(std::string_view(s).substr(0, byte_pos)).size());
}

bool all_chars(const std::string& s, bool (*pred)(char)) {
    return !s.empty() && std::all_of(s.begin(), s.end(), pred);
}

Value list_of_strings(std::vector<std::string> parts) {
    List out;
    for (auto& p : parts) out.push_back(Value::string(std::move(p)));
    return Value::list(std::move(out));
}

Value string_method(Interpreter& in, const std::string& s, const std::string& name, CallArgs& args, int line) {
    const ArgReader a(args, "str." + name + "()", line);
    Budget& budget = in.budget();
    // a method searches its receiver for at most its longest string argument
    size_t needle = 0;
    for (const Value& v : args.positional)
        if (v.is_string()) needle = std::max(needle, v.as_string().size());
    budget.search(s.size(), needle, line);
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
        a.allow(1, {});
        const std::string chars = a.str(0, "chars", "");
        return Value::string(py_strip(s, a.has(0, "chars") ? &chars : nullptr, name != "rstrip", name != "lstrip"));
    }
    if (name == "startswith" || name == "endswith") {
        a.allow(1, {});
        const Value* p = a.get(0, "prefix");
        if (!p) fail(ErrorKind::invalid_argument, "str." + name + "() needs an argument", line);
        List options = p->is_tuple() ? p->as_list() : List{*p};
        for (const Value& o : options) {
            if (!o.is_string()) a.error("prefix", "a string or a tuple of strings", o);
            const std::string& x = o.as_string();
            if (x.size() <= s.size() && (name == "startswith" ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0)) return Value::boolean(true);
        }
        return Value::boolean(false);
    }
    if (name == "split" || name == "rsplit") {
        a.allow(2, {"sep", "maxsplit"});
        const std::string sep = a.str(0, "sep", "");
        const bool has_sep = a.has(0, "sep");
        if (has_sep && sep.empty()) fail(ErrorKind::invalid_argument, "str." + name + "(): empty separator", line);
        const int64_t maxsplit = a.integer(1, "maxsplit", -1);
        return list_of_strings(name == "split" ? py_split(s, has_sep ? &sep : nullptr, maxsplit) : py_rsplit(s, has_sep ? &sep : nullptr, maxsplit));
    }
    if (name == "upper") return a.allow(0, {}), Value::string(py_upper(s));
    if (name == "lower") return a.allow(0, {}), Value::string(py_lower(s));
    if (name == "title") return a.allow(0, {}), Value::string(py_title(s));
    if (name == "capitalize") return a.allow(0, {}), Value::string(py_capitalize(s));
    if (name == "replace") {
        a.allow(3, {});
        const std::string old = a.required_str(0, "old"), with = a.required_str(1, "new");
        const size_t occurrences = old.empty() ? code_points(s).size() + 1 : s.size() / old.size();
        budget.check_size(s.size() + occurrences * with.size(), line);
        return Value::string(py_replace(s, old, with, a.integer(2, "count", -1)));
    }
    if (name == "find" || name == "rfind") {
        a.allow(1, {});
        const std::string sub = a.required_str(0, "sub");
        const size_t at = name == "find" ? s.find(sub) : s.rfind(sub);
        return Value::integer(at == std::string::npos ? -1 : code_point_index(s, at));
    }
    if (name == "count") {
        a.allow(1, {});
        const std::string sub = a.required_str(0, "sub");
        if (sub.empty()) return Value::integer(static_cast<int64_t>(code_points(s).size()) + 1);
        int64_t n = 0;
        for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
        return Value::integer(n);
    }
    if (name == "join") {
        a.allow(1, {});
        const Value* items = a.get(0, "iterable");
        if (!items) fail(ErrorKind::invalid_argument, "str.join() needs an argument", line);
        std::string out;
        bool first = true;
        for (const Value& x : in.iterate(*items, line)) {
            if (!x.is_string()) fail(ErrorKind::invalid_argument, std::string("str.join(): expected str items, found ") + x.type_name(), line);
            if (!first) out += s;
            first = false;
            budget.grow(out.size() + x.as_string().size(), x.as_string().size(), line);
            out += x.as_string();
        }
        return Value::string(std::move(out));
    }
    if (name == "splitlines") return a.allow(0, {}), list_of_strings(py_splitlines(s));
    if (name == "removeprefix" || name == "removesuffix") {
        a.allow(1, {});
        const std::string x = a.required_str(0, "affix");
        if (name == "removeprefix") return Value::string(s.compare(0, x.size(), x) == 0 ? s.substr(x.size()) : s);
        return Value::string(x.size() <= s.size() && s.compare(s.size() - x.size(), x.size(), x) == 0 ? s.substr(0, s.size() - x.size()) : s);
    }
    a.allow(0, {});
    if (name == "isdigit") return Value::boolean(all_chars(s, [](char c) { return c >= '0' && c <= '9'; }));
    if (name == "isalpha") return Value::boolean(all_chars(s, [](char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }));
    if (name == "isalnum") return Value::boolean(all_chars(s, [](char c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'); }));
    if (name == "isspace") return Value::boolean(!s.empty() && py_strip(s, nullptr, true, true).empty());
    if (name == "islower" || name == "isupper") {
        bool cased = false;
        for (char c : s) {
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) cased = true;
            if (name == "islower" ? (c >= 'A' && c <= 'Z') : (c >= 'a' && c <= 'z')) return Value::boolean(false);
        }
        return Value::boolean(cased);
    }
    fail(ErrorKind::unsupported, "str." + name + "() is not supported", line);
}

Value dict_method(const Dict& d, const std::string& name, CallArgs& args, int line) {
    const ArgReader a(args, "dict." + name + "()", line);
    if (name == "get") {
        a.allow(2, {});
        const Value* key = a.get(0, "key");
        if (!key) fail(ErrorKind::invalid_argument, "dict.get() needs a key", line);
        if (const Value* v = d.find(*key)) return *v;
        const Value* fallback = a.get(1, "default");
        return fallback ? *fallback : Value::none();
    }
    a.allow(0, {});
    List out;
    for (const auto& [k, v] : d.entries) {
        if (name == "items") out.push_back(Value::list({k, v}, true));
        else out.push_back(name == "keys" ? k : v);
    }
    return Value::list(std::move(out));
}

} // namespace

Value bound_method(const Value& receiver, const std::string& name) {
    if (receiver.is_string() && contains(kStringMethods, name))
        return Value::function("str." + name, [receiver, name](Interpreter& in, CallArgs& args, int line) {
            return string_method(in, receiver.as_string(), name, args, line);
        });
    if (receiver.is_dict() && contains(kDictMethods, name))
        return Value::function("dict." + name, [receiver, name](Interpreter&, CallArgs& args, int line) {
            return dict_method(receiver.as_dict(), name, args, line);
        });
    if ((receiver.is_list() || receiver.is_dict()) && contains(kUnsafeMethods, name))
        return Value::undefined("access to attribute '" + name + "' of '" + receiver.type_name() + "' object is unsafe (templates cannot modify values)");
    return Value();
}

} // namespace winnow::jinja
