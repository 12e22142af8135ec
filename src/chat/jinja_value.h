#pragma once
// The values a chat template computes with, with Python's semantics (jinja2 evaluates templates as Python): none,
// booleans, 64-bit integers, floats, UTF-8 strings, lists/tuples, dicts (insertion-ordered), functions, namespaces and
// jinja2's Undefined. Lists and dicts are immutable once built (HF renders in jinja2's ImmutableSandboxedEnvironment,
// where `messages.append(...)` is refused), so they are shared. A namespace is the one mutable object; namespaces
// are owned by the render (NamespaceArena), so no value can keep another alive in a cycle.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace winnow::jinja {

class Value;
class Interpreter;
struct CallArgs;

using List = std::vector<Value>;

// Insertion-ordered mapping with Python key equality (1 == 1.0 == True); chat-template dicts are small.
struct Dict {
    std::vector<std::pair<Value, Value>> entries;
    const Value* find(const Value& key) const;
    void set(const Value& key, Value value);
};

// A callable: a global function (range, namespace, ...), a bound method ("abc".upper), a loop helper or a macro.
struct Function {
    std::string name;
    std::function<Value(Interpreter&, CallArgs&, int line)> call;
};

// `namespace(...)`: attributes assignable with `{% set ns.x = ... %}`.
struct Namespace {
    Dict attrs;
};

class Value {
public:
    enum class Kind : uint8_t { undefined, none, boolean, integer, floating, string, list, dict, function, ns };

    Value() = default; // undefined
    static Value undefined(std::string hint) { Value v; v.str_ = std::make_shared<const std::string>(std::move(hint)); return v; }
    static Value none() { Value v; v.kind_ = Kind::none; return v; }
    static Value boolean(bool b) { Value v; v.kind_ = Kind::boolean; v.int_ = b; return v; }
    static Value integer(int64_t i) { Value v; v.kind_ = Kind::integer; v.int_ = i; return v; }
    static Value floating(double d) { Value v; v.kind_ = Kind::floating; v.float_ = d; return v; }
    static Value string(std::string s) { Value v; v.kind_ = Kind::string; v.str_ = std::make_shared<const std::string>(std::move(s)); return v; }
    // Throws when the list would be nested deeper than kMaxNesting (deep values would make every walk recursive).
    static Value list(List items, bool tuple = false);
    static Value dict(Dict d);
    static Value function(std::string name, std::function<Value(Interpreter&, CallArgs&, int)> call);
    static Value ns(Namespace* n) { Value v; v.kind_ = Kind::ns; v.ns_ = n; return v; }

    Kind kind() const { return kind_; }
    bool is_undefined() const { return kind_ == Kind::undefined; }
    bool is_none() const { return kind_ == Kind::none; }
    bool is_string() const { return kind_ == Kind::string; }
    bool is_list() const { return kind_ == Kind::list; }
    bool is_dict() const { return kind_ == Kind::dict; }
    bool is_tuple() const { return kind_ == Kind::list && tuple_; }
    // Python numbers: bool counts as an integer, as in Python.
    bool is_integral() const { return kind_ == Kind::integer || kind_ == Kind::boolean; }
    bool is_number() const { return is_integral() || kind_ == Kind::floating; }

    bool as_bool() const { return int_ != 0; }
    int64_t as_int() const { return int_; }
    double as_double() const { return kind_ == Kind::floating ? float_ : static_cast<double>(int_); }
    const std::string& as_string() const { return str_ ? *str_ : empty_string(); } // also an undefined value's description
    const List& as_list() const { return *list_; }
    const Dict& as_dict() const { return *dict_; }
    const Function& as_function() const { return *fn_; }
    Namespace* as_ns() const { return ns_; }
    int depth() const { return depth_; } // nesting of lists/dicts (0 for scalars)

    // Python truthiness (Undefined is false).
    bool truthy() const;
    // The Python type name, for error messages: 'str', 'int', 'list', 'dict', 'NoneType', 'undefined', ...
    const char* type_name() const;

    static constexpr int kMaxNesting = 64;

private:
    static const std::string& empty_string() {
        static const std::string empty;
        return empty;
    }

private:
    Kind kind_ = Kind::undefined;
    bool tuple_ = false;
    int depth_ = 0;
    int64_t int_ = 0;
    double float_ = 0;
    std::shared_ptr<const std::string> str_; // shared: a template copies values freely, text can be long
    std::shared_ptr<const List> list_;
    std::shared_ptr<const Dict> dict_;
    std::shared_ptr<const Function> fn_;
    Namespace* ns_ = nullptr;
};

// Arguments of a call: positional, then keyword.
struct CallArgs {
    std::vector<Value> positional;
    std::vector<std::pair<std::string, Value>> keyword;
    // The argument at `index` or named `name` (keyword wins), or null when absent.
    const Value* get(size_t index, const std::string& name) const;
};

// Namespaces live as long as one render.
class NamespaceArena {
public:
    Namespace* make() { items_.push_back(std::make_unique<Namespace>()); return items_.back().get(); }
    size_t size() const { return items_.size(); }

private:
    std::vector<std::unique_ptr<Namespace>> items_;
};

} // namespace winnow::jinja
