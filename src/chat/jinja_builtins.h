#pragma once
// jinja2's built-in filters and tests, the Python methods templates call on strings and dicts, and the global
// functions HF's environment provides (range, namespace, dict, raise_exception, strftime_now).
#include <string>
#include <string_view>

#include "chat/jinja_value.h"

namespace winnow::jinja {

class Interpreter;

bool is_known_filter(std::string_view name);
bool is_known_test(std::string_view name);
Value apply_filter(Interpreter& in, const std::string& name, const Value& input, CallArgs& args, int line);
bool apply_test(Interpreter& in, const std::string& name, const Value& subject, CallArgs& args, int line);
// `receiver.name` as a bound method (a function value), or Undefined when the type has no such (safe) method.
Value bound_method(const Value& receiver, const std::string& name);
void add_global_functions(Dict& globals);

} // namespace winnow::jinja
