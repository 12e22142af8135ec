#pragma once
// Parses a template's tokens into statements and expressions, with jinja2's grammar and operator precedence.
// Unknown tags and filters-as-syntax errors are refused here, with the line; nesting is bounded.
#include <string_view>

#include "chat/jinja_ast.h"

namespace winnow::jinja {

Body parse_template(std::string_view source, int max_parse_depth);

} // namespace winnow::jinja
