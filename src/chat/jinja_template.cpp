#include "chat/jinja_template.h"

#include "chat/jinja_interpreter.h"
#include "chat/jinja_parser.h"

namespace winnow::jinja {

Template::Template(std::string_view source, const Limits& limits) : limits_(limits), body_(parse_template(source, limits.max_parse_depth)) {}

std::string Template::render(const Dict& context) const {
    Interpreter in(limits_, context);
    return in.render(body_);
}

} // namespace winnow::jinja
