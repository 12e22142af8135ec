#include "chat/jinja_python.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace winnow::jinja {

namespace {

constexpr int kMaxWalkDepth = 2 * Value::kMaxNesting; // repr through namespaces, which may refer to one another

void check_walk(int depth, int line) {
    if (depth > kMaxWalkDepth) fail(ErrorKind::invalid_argument, "a value is nested deeper than " + std::to_string(kMaxWalkDepth) + " levels", line);
}

void append_bounded(std::string& out, std::string_view s, Budget& budget, int line) {
    budget.grow(out.size() + s.size(), s.size(), line);
    out += s;
}

std::string repr_string(const std::string& s) {
    const bool use_double = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
    const char q = use_double ? '"' : '\'';
    std::string out(1, q);
    for (unsigned char c : s) {
        if (c == '\\') out += "\\\\";
        else if (c == static_cast<unsigned char>(q)) out += std::string("\\") + q;
        else if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else out += static_cast<char>(c);
    }
    out += q;
    return out;
}

void repr_into(std::string& out, const Value& v, Budget& budget, int line, int depth);

void str_into(std::string& out, const Value& v, Budget& budget, int line, int depth) {
    check_walk(depth, line);
    budget.charge(1, line);
    switch (v.kind()) {
    case Value::Kind::undefined: return;
    case Value::Kind::none: append_bounded(out, "None", budget, line); return;
    case Value::Kind::boolean: append_bounded(out, v.as_bool() ? "True" : "False", budget, line); return;
    case Value::Kind::integer: append_bounded(out, std::to_string(v.as_int()), budget, line); return;
    case Value::Kind::floating: append_bounded(out, python_float_repr(v.as_double()), budget, line); return;
    case Value::Kind::string: append_bounded(out, v.as_string(), budget, line); return;
    case Value::Kind::list: {
        const List& items = v.as_list();
        append_bounded(out, v.is_tuple() ? "(" : "[", budget, line);
        for (size_t i = 0; i < items.size(); ++i) {
            if (i) append_bounded(out, ", ", budget, line);
            repr_into(out, items[i], budget, line, depth + 1);
        }
        if (v.is_tuple() && items.size() == 1) append_bounded(out, ",", budget, line);
        append_bounded(out, v.is_tuple() ? ")" : "]", budget, line);
        return;
    }
    case Value::Kind::dict: {
        append_bounded(out, "{", budget, line);
        bool first = true;
        for (const auto& [k, x] : v.as_dict().entries) {
            if (!first) append_bounded(out, ", ", budget, line);
            first = false;
            repr_into(out, k, budget, line, depth + 1);
            append_bounded(out, ": ", budget, line);
            repr_into(out, x, budget, line, depth + 1);
        }
        append_bounded(out, "}", budget, line);
        return;
    }
    case Value::Kind::function: append_bounded(out, "<function " + v.as_function().name + ">", budget, line); return;
    case Value::Kind::ns: {
        append_bounded(out, "<Namespace ", budget, line);
        str_into(out, Value::dict(v.as_ns()->attrs), budget, line, depth + 1);
        append_bounded(out, ">", budget, line);
        return;
    }
    }
}

void repr_into(std::string& out, const Value& v, Budget& budget, int line, int depth) {
    if (v.is_string()) {
        budget.charge(1, line);
        append_bounded(out, repr_string(v.as_string()), budget, line);
    } else if (v.is_undefined()) {
        append_bounded(out, "Undefined", budget, line);
    } else {
        str_into(out, v, budget, line, depth);
    }
}

void json_string(std::string& out, const std::string& s) {
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
            if (c < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else out += static_cast<char>(c);
        }
    }
    out += '"';
}

std::string json_key(const Value& k, Budget& budget, int line) {
    // json.dumps turns str, int, float, bool and None keys into strings and refuses the rest
    if (k.is_string()) return k.as_string();
    if (k.kind() == Value::Kind::boolean) return k.as_bool() ? "true" : "false";
    if (k.is_none()) return "null";
    if (k.is_number()) return python_str(k, budget, line);
    fail(ErrorKind::invalid_argument, std::string("tojson: keys must be str, int, float, bool or None, not ") + k.type_name(), line);
}

void json_into(std::string& out, const Value& v, int indent, bool sort_keys, Budget& budget, int line, int depth) {
    check_walk(depth, line);
    budget.grow(out.size(), 0, line);
    const auto newline = [&](int level) {
        if (indent < 0) return;
        out += '\n';
        budget.grow(out.size() + static_cast<size_t>(indent) * level, static_cast<size_t>(indent) * level, line);
        out.append(static_cast<size_t>(indent) * level, ' ');
    };
    const char* item_sep = indent < 0 ? ", " : ",";
    switch (v.kind()) {
    case Value::Kind::none: out += "null"; return;
    case Value::Kind::boolean: out += v.as_bool() ? "true" : "false"; return;
    case Value::Kind::integer: out += std::to_string(v.as_int()); return;
    case Value::Kind::floating: {
        const double d = v.as_double();
        out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : python_float_repr(d);
        return;
    }
    case Value::Kind::string:
        budget.grow(out.size() + v.as_string().size(), v.as_string().size(), line);
        json_string(out, v.as_string());
        return;
    case Value::Kind::list: {
        const List& items = v.as_list();
        if (items.empty()) { out += "[]"; return; }
        out += '[';
        for (size_t i = 0; i < items.size(); ++i) {
            if (i) out += item_sep;
            newline(depth + 1);
            json_into(out, items[i], indent, sort_keys, budget, line, depth + 1);
        }
        newline(depth);
        out += ']';
        return;
    }
    case Value::Kind::dict: {
        std::vector<std::pair<std::string, const Value*>> entries;
        for (const auto& [k, x] : v.as_dict().entries) entries.emplace_back(json_key(k, budget, line), &x);
        if (entries.empty()) { out += "{}"; return; }
        if (sort_keys) std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        out += '{';
        for (size_t i = 0; i < entries.size(); ++i) {
            if (i) out += item_sep;
            newline(depth + 1);
            json_string(out, entries[i].first);
            out += ": ";
            json_into(out, *entries[i].second, indent, sort_keys, budget, line, depth + 1);
        }
        newline(depth);
        out += '}';
        return;
    }
    default:
        fail(ErrorKind::invalid_argument, std::string("tojson: Object of type ") + (v.is_undefined() ? "Undefined" : v.type_name()) + " is not JSON serializable",
             line);
    }
}

} // namespace

std::string python_float_repr(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
    // shortest round-tripping digits, then Python's layout: fixed for 1e-4 <= |d| < 1e16, else scientific
    char buf[64];
    const auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
    std::string sci(buf, res.ptr);
    const bool negative = sci[0] == '-';
    if (negative) sci.erase(0, 1);
    const size_t e_at = sci.find('e');
    std::string digits = sci.substr(0, e_at);
    digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
    const int exp = std::stoi(sci.substr(e_at + 1));
    std::string out;
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
        } else if (static_cast<int>(digits.size()) <= exp + 1) {
            out = digits + std::string(static_cast<size_t>(exp + 1) - digits.size(), '0') + ".0";
        } else {
            out = digits.substr(0, static_cast<size_t>(exp + 1)) + "." + digits.substr(static_cast<size_t>(exp + 1));
        }
    } else {
        out = digits.substr(0, 1) + (digits.size() > 1 ? "." + digits.substr(1) : "");
        char e[16];
        std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
        out += e;
    }
    return negative ? "-" + out : out;
}

std::string python_str(const Value& v, Budget& budget, int line) {
    if (v.is_string()) return v.as_string();
    std::string out;
    str_into(out, v, budget, line, 0);
    return out;
}

std::string python_repr(const Value& v, Budget& budget, int line) {
    std::string out;
    repr_into(out, v, budget, line, 0);
    return out;
}

bool python_equal(const Value& a, const Value& b, Budget& budget, int line) {
    budget.charge(1, line);
    if (a.is_number() && b.is_number()) {
        if (a.is_integral() && b.is_integral()) return a.as_int() == b.as_int();
        return a.as_double() == b.as_double();
    }
    if (a.kind() != b.kind()) return false;
    switch (a.kind()) {
    case Value::Kind::undefined:
    case Value::Kind::none: return true;
    case Value::Kind::string:
        budget.scan(std::min(a.as_string().size(), b.as_string().size()), line);
        return a.as_string() == b.as_string();
    case Value::Kind::list: {
        if (a.is_tuple() != b.is_tuple() || a.as_list().size() != b.as_list().size()) return false;
        for (size_t i = 0; i < a.as_list().size(); ++i)
            if (!python_equal(a.as_list()[i], b.as_list()[i], budget, line)) return false;
        return true;
    }
    case Value::Kind::dict: {
        const auto& x = a.as_dict().entries;
        if (x.size() != b.as_dict().entries.size()) return false;
        for (const auto& [k, v] : x) {
            const Value* other = b.as_dict().find(k);
            if (!other || !python_equal(v, *other, budget, line)) return false;
        }
        return true;
    }
    case Value::Kind::function: return &a.as_function() == &b.as_function();
    case Value::Kind::ns: return a.as_ns() == b.as_ns();
    default: return false;
    }
}

int python_compare(const Value& a, const Value& b, Budget& budget, int line) {
    budget.charge(1, line);
    if (a.is_number() && b.is_number()) {
        if (a.is_integral() && b.is_integral()) return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int() ? 1 : 0;
        const double x = a.as_double(), y = b.as_double();
        return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a.is_string() && b.is_string()) { // UTF-8 byte order is code point order
        budget.scan(std::min(a.as_string().size(), b.as_string().size()), line);
        const int c = a.as_string().compare(b.as_string());
        return c < 0 ? -1 : c > 0 ? 1 : 0;
    }
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
        const List &x = a.as_list(), &y = b.as_list();
        for (size_t i = 0; i < x.size() && i < y.size(); ++i)
            if (!python_equal(x[i], y[i], budget, line)) return python_compare(x[i], y[i], budget, line);
        return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
    }
    if (a.is_undefined() || b.is_undefined())
        fail(ErrorKind::invalid_argument, (a.is_undefined() ? a : b).as_string(), line);
    fail(ErrorKind::invalid_argument, std::string("cannot order '") + a.type_name() + "' and '" + b.type_name() + "'", line);
}

std::string python_json(const Value& v, int indent, bool sort_keys, Budget& budget, int line) {
    std::string out;
    json_into(out, v, indent, sort_keys, budget, line, 0);
    return out;
}

std::vector<std::string_view> code_points(std::string_view s) {
    std::vector<std::string_view> out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 1;
        if (i + n > s.size()) n = 1;
        for (size_t k = 1; k < n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) { n = 1; break; }
        out.push_back(s.substr(i, n));
        i += n;
    }
    return out;
}

} // namespace winnow::jinja
