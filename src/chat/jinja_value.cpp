#include "chat/jinja_value.h"

#include <algorithm>

#include "chat/jinja_limits.h"

namespace winnow::jinja {

namespace {

bool keys_equal(const Value& a, const Value& b) {
    // dict keys in chat templates are strings or numbers; Python hashes 1, 1.0 and True alike
    if (a.is_string() || b.is_string()) return a.is_string() && b.is_string() && a.as_string() == b.as_string();
    if (a.is_number() && b.is_number()) return a.as_double() == b.as_double();
    if (a.is_none() || b.is_none()) return a.is_none() && b.is_none();
    return false;
}

void check_nesting(int depth) {
    if (depth > Value::kMaxNesting)
        fail(ErrorKind::invalid_argument, "a value is nested deeper than " + std::to_string(Value::kMaxNesting) + " levels", 0);
}

} // namespace

const Value* Dict::find(const Value& key) const {
    for (const auto& [k, v] : entries)
        if (keys_equal(k, key)) return &v;
    return nullptr;
}

void Dict::set(const Value& key, Value value) {
    for (auto& [k, v] : entries)
        if (keys_equal(k, key)) {
            v = std::move(value);
            return;
        }
    entries.emplace_back(key, std::move(value));
}

Value Value::list(List items, bool tuple) {
    Value v;
    v.kind_ = Kind::list;
    v.tuple_ = tuple;
    int d = 0;
    for (const auto& x : items) d = std::max(d, x.depth_);
    check_nesting(d + 1);
    v.depth_ = d + 1;
    v.list_ = std::make_shared<const List>(std::move(items));
    return v;
}

Value Value::dict(Dict d) {
    Value v;
    v.kind_ = Kind::dict;
    int depth = 0;
    for (const auto& [k, x] : d.entries) depth = std::max({depth, k.depth_, x.depth_});
    check_nesting(depth + 1);
    v.depth_ = depth + 1;
    v.dict_ = std::make_shared<const Dict>(std::move(d));
    return v;
}

Value Value::function(std::string name, std::function<Value(Interpreter&, CallArgs&, int)> call) {
    Value v;
    v.kind_ = Kind::function;
    v.fn_ = std::make_shared<const Function>(Function{std::move(name), std::move(call)});
    return v;
}

bool Value::truthy() const {
    switch (kind_) {
    case Kind::undefined:
    case Kind::none: return false;
    case Kind::boolean:
    case Kind::integer: return int_ != 0;
    case Kind::floating: return float_ != 0;
    case Kind::string: return !as_string().empty();
    case Kind::list: return !list_->empty();
    case Kind::dict: return !dict_->entries.empty();
    case Kind::function:
    case Kind::ns: return true;
    }
    return false;
}

const char* Value::type_name() const {
    switch (kind_) {
    case Kind::undefined: return "undefined";
    case Kind::none: return "NoneType";
    case Kind::boolean: return "bool";
    case Kind::integer: return "int";
    case Kind::floating: return "float";
    case Kind::string: return "str";
    case Kind::list: return tuple_ ? "tuple" : "list";
    case Kind::dict: return "dict";
    case Kind::function: return "function";
    case Kind::ns: return "Namespace";
    }
    return "?";
}

const Value* CallArgs::get(size_t index, const std::string& name) const {
    for (const auto& [k, v] : keyword)
        if (k == name) return &v;
    return index < positional.size() ? &positional[index] : nullptr;
}

} // namespace winnow::jinja
