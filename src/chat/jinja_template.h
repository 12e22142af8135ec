#pragma once
// A Jinja2 template (the subset chat templates use) parsed once and rendered with a context, as HF transformers
// renders chat templates: jinja2's ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the
// loopcontrols extension, HF's tojson filter and its raise_exception / strftime_now globals.
//
// Written here rather than taken from a library: Debian packages no C++ Jinja implementation, and the engine must
// treat templates from model files as untrusted input (bounded work, output and nesting; every failure a one-line
// winnow::Error), which a small interpreter of the needed subset makes easy to see.
#include <string>
#include <string_view>

#include "chat/jinja_ast.h"
#include "chat/jinja_limits.h"
#include "chat/jinja_value.h"

namespace winnow::jinja {

class Template {
public:
    // Throws winnow::Error for a template that does not parse (with the line).
    explicit Template(std::string_view source, const Limits& limits = {});
    // `context`: the variables the template sees (string keys). Throws winnow::Error when rendering fails.
    std::string render(const Dict& context) const;

private:
    Limits limits_;
    Body body_;
};

} // namespace winnow::jinja
