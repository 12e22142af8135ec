#pragma once
// Python's str methods on UTF-8 text, by code point. Case mapping covers ASCII letters only: other letters are left
// as they are (Python would map them too), a difference only for non-ASCII text passed through upper/lower/title.
#include <string>
#include <string_view>
#include <vector>

namespace winnow::jinja {

bool py_isspace(std::string_view code_point);
// chars null: whitespace; else the set of code points in *chars.
std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right);
// sep null: split on runs of whitespace, dropping empty parts. maxsplit < 0: no limit.
std::vector<std::string> py_split(std::string_view s, const std::string* sep, long long maxsplit);
std::vector<std::string> py_rsplit(std::string_view s, const std::string* sep, long long maxsplit);
std::string py_replace(std::string_view s, std::string_view old, std::string_view with, long long count);
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_title(std::string_view s);      // str.title()
std::string py_capitalize(std::string_view s); // str.capitalize()
std::string jinja_title(std::string_view s);   // jinja2's title filter (words split at whitespace, - ( { [ <)
std::vector<std::string> py_splitlines(std::string_view s);

} // namespace winnow::jinja
