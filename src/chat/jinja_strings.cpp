#include "chat/jinja_strings.h"

#include <algorithm>
#include <unordered_set>

#include "chat/jinja_python.h"

namespace winnow::jinja {

namespace {

uint32_t decode(std::string_view cp) {
    const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(cp[i])); };
    if (cp.size() == 1) return b(0);
    if (cp.size() == 2) return ((b(0) & 0x1f) << 6) | (b(1) & 0x3f);
    if (cp.size() == 3) return ((b(0) & 0x0f) << 12) | ((b(1) & 0x3f) << 6) | (b(2) & 0x3f);
    return ((b(0) & 0x07) << 18) | ((b(1) & 0x3f) << 12) | ((b(2) & 0x3f) << 6) | (b(3) & 0x3f);
}

bool is_upper_ascii(char c) { return c >= 'A' && c <= 'Z'; }
bool is_lower_ascii(char c) { return c >= 'a' && c <= 'z'; }
char to_upper(char c) { return is_lower_ascii(c) ? static_cast<char>(c - 32) : c; }
char to_lower(char c) { return is_upper_ascii(c) ? static_cast<char>(c + 32) : c; }

// The code points to strip: whitespace (chars null) or those of *chars.
class StripSet {
public:
    explicit StripSet(const std::string* chars) : whitespace_(!chars) {
        if (chars)
            for (std::string_view c : code_points(*chars)) set_.insert(c);
    }
    bool contains(std::string_view cp) const { return whitespace_ ? py_isspace(cp) : set_.count(cp) > 0; }

private:
    bool whitespace_;
    std::unordered_set<std::string_view> set_;
};

} // namespace

bool py_isspace(std::string_view cp) {
    const uint32_t c = decode(cp);
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
           c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right) {
    const auto cps = code_points(s);
    const StripSet strip(chars);
    size_t lo = 0, hi = cps.size();
    if (left) while (lo < hi && strip.contains(cps[lo])) ++lo;
    if (right) while (hi > lo && strip.contains(cps[hi - 1])) --hi;
    if (lo == hi) return {};
    const size_t begin = static_cast<size_t>(cps[lo].data() - s.data());
    const size_t end = static_cast<size_t>(cps[hi - 1].data() - s.data()) + cps[hi - 1].size();
    return std::string(s.substr(begin, end - begin));
}

std::vector<std::string> py_split(std::string_view s, const std::string* sep, long long maxsplit) {
    std::vector<std::string> out;
    if (sep) {
        size_t pos = 0;
        while (maxsplit < 0 || static_cast<long long>(out.size()) < maxsplit) {
            const size_t at = s.find(*sep, pos);
            if (at == std::string_view::npos) break;
            out.emplace_back(s.substr(pos, at - pos));
            pos = at + sep->size();
        }
        out.emplace_back(s.substr(pos));
        return out;
    }
    const auto cps = code_points(s);
    size_t i = 0;
    while (i < cps.size()) {
        while (i < cps.size() && py_isspace(cps[i])) ++i;
        if (i == cps.size()) break;
        if (maxsplit >= 0 && static_cast<long long>(out.size()) == maxsplit) {
            const size_t begin = static_cast<size_t>(cps[i].data() - s.data());
            out.push_back(py_strip(s.substr(begin), nullptr, false, true));
            return out;
        }
        std::string word;
        while (i < cps.size() && !py_isspace(cps[i])) word += cps[i++];
        out.push_back(std::move(word));
    }
    return out;
}

std::vector<std::string> py_rsplit(std::string_view s, const std::string* sep, long long maxsplit) {
    if (maxsplit < 0) return py_split(s, sep, maxsplit);
    std::vector<std::string> out;
    if (sep) {
        size_t end = s.size();
        while (static_cast<long long>(out.size()) < maxsplit) {
            if (end < sep->size()) break;
            const size_t at = s.rfind(*sep, end - sep->size());
            if (at == std::string_view::npos) break;
            out.emplace_back(s.substr(at + sep->size(), end - at - sep->size()));
            end = at;
        }
        out.emplace_back(s.substr(0, end));
        std::reverse(out.begin(), out.end());
        return out;
    }
    // whitespace: split from the right
    const auto cps = code_points(s);
    size_t i = cps.size();
    while (i > 0) {
        while (i > 0 && py_isspace(cps[i - 1])) --i;
        if (i == 0) break;
        if (static_cast<long long>(out.size()) == maxsplit) {
            const size_t end = static_cast<size_t>(cps[i - 1].data() - s.data()) + cps[i - 1].size();
            out.push_back(py_strip(s.substr(0, end), nullptr, true, false));
            break;
        }
        size_t j = i;
        while (j > 0 && !py_isspace(cps[j - 1])) --j;
        std::string word;
        for (size_t k = j; k < i; ++k) word += cps[k];
        out.push_back(std::move(word));
        i = j;
    }
    std::reverse(out.begin(), out.end());
    return out;
}

std::string py_replace(std::string_view s, std::string_view old, std::string_view with, long long count) {
    std::string out;
    if (old.empty()) { // Python inserts `with` before every character and at the end
        long long n = 0;
        for (std::string_view c : code_points(s)) {
            if (count < 0 || n < count) { out += with; ++n; }
            out += c;
        }
        if (count < 0 || n < count) out += with;
        return out;
    }
    size_t pos = 0;
    long long n = 0;
    while (count < 0 || n < count) {
        const size_t at = s.find(old, pos);
        if (at == std::string_view::npos) break;
        out += s.substr(pos, at - pos);
        out += with;
        pos = at + old.size();
        ++n;
    }
    out += s.substr(pos);
    return out;
}

std::string py_upper(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = to_upper(c);
    return out;
}

std::string py_lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = to_lower(c);
    return out;
}

std::string py_title(std::string_view s) {
    std::string out(s);
    bool prev_cased = false;
    for (char& c : out) {
        const bool cased = is_upper_ascii(c) || is_lower_ascii(c);
        if (cased) c = prev_cased ? to_lower(c) : to_upper(c);
        prev_cased = cased;
    }
    return out;
}

std::string py_capitalize(std::string_view s) {
    std::string out = py_lower(s);
    if (!out.empty()) out[0] = to_upper(out[0]);
    return out;
}

std::string jinja_title(std::string_view s) {
    // words begin after whitespace or one of - ( { [ <; each word: first character upper, the rest lower
    std::string out;
    bool word_start = true;
    for (std::string_view cp : code_points(s)) {
        const bool separator = py_isspace(cp) || cp == "-" || cp == "(" || cp == "{" || cp == "[" || cp == "<";
        if (separator) {
            out += cp;
            word_start = true;
        } else if (word_start) {
            out += cp.size() == 1 ? std::string(1, to_upper(cp[0])) : std::string(cp);
            word_start = false;
        } else {
            out += cp.size() == 1 ? std::string(1, to_lower(cp[0])) : std::string(cp);
        }
    }
    return out;
}

std::vector<std::string> py_splitlines(std::string_view s) {
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\n' || s[i] == '\r' || s[i] == '\v' || s[i] == '\f' || (s[i] >= '\x1c' && s[i] <= '\x1e')) {
            out.emplace_back(s.substr(start, i - start));
            if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
            start = i + 1;
        }
    }
    if (start < s.size()) out.emplace_back(s.substr(start));
    return out;
}

} // namespace winnow::jinja
