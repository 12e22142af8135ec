#pragma once
// Python's behaviour for the operations templates apply to values: str(), repr(), ==, <, json.dumps (as HF's tojson
// filter calls it: ensure_ascii=False), float formatting, and strings as sequences of code points.
#include <string>
#include <string_view>
#include <vector>

#include "chat/jinja_limits.h"
#include "chat/jinja_value.h"

namespace winnow::jinja {

std::string python_str(const Value& v, Budget& budget, int line);  // str(v); Undefined prints as ""
std::string python_repr(const Value& v, Budget& budget, int line); // repr(v), as lists print their items
std::string python_float_repr(double d);                           // repr(float): "1.0", "0.1", "1e-05", "inf"
bool python_equal(const Value& a, const Value& b, Budget& budget, int line);
// a < b: -1, a == b: 0, a > b: 1 for values Python can order (numbers, strings, lists of those); throws otherwise.
int python_compare(const Value& a, const Value& b, Budget& budget, int line);
// json.dumps(v, ensure_ascii=False, indent=indent (< 0: None), sort_keys=sort_keys); throws for undefined,
// functions and namespaces, as json.dumps does.
std::string python_json(const Value& v, int indent, bool sort_keys, Budget& budget, int line);

// A string's code points (an invalid UTF-8 byte counts as one), as Python indexes and measures str.
std::vector<std::string_view> code_points(std::string_view s);

} // namespace winnow::jinja
