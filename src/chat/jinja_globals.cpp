// The global functions of HF's template environment: jinja2's range, namespace and dict, plus the raise_exception
// and strftime_now that transformers adds.
#include <ctime>

#include "chat/jinja_args.h"
#include "chat/jinja_builtins.h"
#include "chat/jinja_interpreter.h"

namespace winnow::jinja {

namespace {

Value range(Interpreter& in, CallArgs& args, int line) {
    if (!args.keyword.empty() || args.positional.empty() || args.positional.size() > 3)
        fail(ErrorKind::invalid_argument, "range() takes 1 to 3 integer arguments", line);
    for (const Value& v : args.positional)
        if (!v.is_integral()) fail(ErrorKind::invalid_argument, std::string("range(): arguments must be integers, not ") + v.type_name(), line);
    int64_t start = 0, stop = 0, step = 1;
    if (args.positional.size() == 1) stop = args.positional[0].as_int();
    else {
        start = args.positional[0].as_int();
        stop = args.positional[1].as_int();
        if (args.positional.size() == 3) step = args.positional[2].as_int();
    }
    if (step == 0) fail(ErrorKind::invalid_argument, "range() step must not be zero", line);
    // the length, computed without overflow
    const long double span = step > 0 ? static_cast<long double>(stop) - start : static_cast<long double>(start) - stop;
    const long double count = span <= 0 ? 0 : (span + std::abs(static_cast<long double>(step)) - 1) / std::abs(static_cast<long double>(step));
    in.budget().check_items(count > 1e15L ? size_t{1} << 62 : static_cast<size_t>(count), line);
    List out;
    out.reserve(static_cast<size_t>(count));
    for (size_t k = 0; k < static_cast<size_t>(count); ++k) out.push_back(Value::integer(start + static_cast<int64_t>(k) * step));
    return Value::list(std::move(out));
}

Value make_namespace(Interpreter& in, CallArgs& args, int line) {
    Namespace* ns = in.arena().make();
    if (in.arena().size() > 100000) fail(ErrorKind::invalid_argument, "the template makes over 100000 namespaces", line);
    for (const Value& v : args.positional) {
        if (!v.is_dict()) fail(ErrorKind::invalid_argument, "namespace() takes keyword arguments or a dict", line);
        for (const auto& [k, x] : v.as_dict().entries) ns->attrs.set(k, x);
    }
    for (const auto& [k, v] : args.keyword) ns->attrs.set(Value::string(k), v);
    return Value::ns(ns);
}

Value make_dict(Interpreter&, CallArgs& args, int line) {
    if (!args.positional.empty()) fail(ErrorKind::unsupported, "dict() takes keyword arguments only here", line);
    Dict d;
    for (const auto& [k, v] : args.keyword) d.set(Value::string(k), v);
    return Value::dict(std::move(d));
}

Value raise_exception(Interpreter& in, CallArgs& args, int line) {
    std::string message = args.positional.empty() ? std::string() : in.str(args.positional[0], line);
    for (char& c : message)
        if (c == '\n' || c == '\r') c = ' '; // a winnow::Error is one line
    throw Error(ErrorKind::invalid_argument, "chat template: " + message + " (raise_exception at line " + std::to_string(line) + ")");
}

Value strftime_now(Interpreter&, CallArgs& args, int line) {
    const ArgReader a(args, "strftime_now()", line);
    a.allow(1, {});
    const std::string format = a.required_str(0, "format");
    if (format.size() > 256) fail(ErrorKind::invalid_argument, "strftime_now(): format longer than 256 characters", line);
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local); // transformers uses datetime.now(): local time
    char buf[4096];
    const size_t n = std::strftime(buf, sizeof buf, format.c_str(), &local);
    if (n == 0 && !format.empty()) fail(ErrorKind::invalid_argument, "strftime_now(): the formatted date is empty or too long", line);
    return Value::string(std::string(buf, n));
}

} // namespace

void add_global_functions(Dict& globals) {
    globals.set(Value::string("range"), Value::function("range", range));
    globals.set(Value::string("namespace"), Value::function("namespace", make_namespace));
    globals.set(Value::string("dict"), Value::function("dict", make_dict));
    globals.set(Value::string("raise_exception"), Value::function("raise_exception", raise_exception));
    globals.set(Value::string("strftime_now"), Value::function("strftime_now", strftime_now));
}

} // namespace winnow::jinja
