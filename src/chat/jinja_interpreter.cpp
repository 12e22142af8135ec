#include "chat/jinja_interpreter.h"

#include <cmath>
#include <limits>
#include <optional>

#include "chat/jinja_builtins.h"
#include "chat/jinja_python.h"

namespace winnow::jinja {

namespace {

[[noreturn]] void type_error(const std::string& op, const Value& a, const Value& b, int line) {
    if (a.is_undefined()) fail(ErrorKind::invalid_argument, a.as_string(), line);
    if (b.is_undefined()) fail(ErrorKind::invalid_argument, b.as_string(), line);
    fail(ErrorKind::invalid_argument, "unsupported operand types for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'", line);
}

// Python integers do not overflow; ours are 64-bit, so an overflow is an error rather than a wrong number.
template <typename Op>
int64_t checked(Op op, int64_t a, int64_t b, int line) {
    int64_t r = 0;
    if (op(a, b, &r)) fail(ErrorKind::invalid_argument, "integer overflow", line);
    return r;
}
const auto add_op = [](int64_t a, int64_t b, int64_t* r) { return __builtin_add_overflow(a, b, r); };
const auto sub_op = [](int64_t a, int64_t b, int64_t* r) { return __builtin_sub_overflow(a, b, r); };
const auto mul_op = [](int64_t a, int64_t b, int64_t* r) { return __builtin_mul_overflow(a, b, r); };

int64_t floor_div(int64_t a, int64_t b, int line) {
    if (b == 0) fail(ErrorKind::invalid_argument, "integer division or modulo by zero", line);
    if (a == std::numeric_limits<int64_t>::min() && b == -1) fail(ErrorKind::invalid_argument, "integer overflow", line);
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
}

int64_t py_mod(int64_t a, int64_t b, int line) {
    if (b == 0) fail(ErrorKind::invalid_argument, "integer division or modulo by zero", line);
    if (b == -1) return 0;
    int64_t r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}

// Python's sequence * n, bounded.
template <typename Repeat>
Value repeat(int64_t n, size_t unit, Budget& budget, int line, Repeat make) {
    if (n <= 0 || unit == 0) return make(0);
    if (static_cast<uint64_t>(n) > budget.limits().max_output / unit + 1) budget.check_size(budget.limits().max_output + 1, line);
    budget.check_size(unit * static_cast<size_t>(n), line);
    return make(static_cast<size_t>(n));
}

} // namespace

Interpreter::Interpreter(const Limits& limits, Dict globals) : limits_(limits), budget_(limits_) {
    add_global_functions(globals);
    auto root = std::make_shared<Frame>();
    for (auto& [k, v] : globals.entries)
        if (k.is_string()) (*root)[k.as_string()] = v;
    frames_.push_back(std::move(root));
}

std::string Interpreter::render(const Body& body) {
    std::string out;
    exec(body, out);
    return out;
}

Interpreter::Nested::Nested(Interpreter& interpreter, int line) : in(interpreter) {
    if (++in.recursion_ > kMaxRecursion) {
        --in.recursion_;
        fail(ErrorKind::invalid_argument, "the template nests calls, blocks and expressions deeper than " + std::to_string(kMaxRecursion) + " levels", line);
    }
}

std::string Interpreter::str(const Value& v, int line) { return python_str(v, budget_, line); }

void Interpreter::append(std::string& out, const std::string& text, int line) {
    if (out.size() + text.size() > limits_.max_output)
        fail(ErrorKind::invalid_argument, "the rendered text exceeds " + std::to_string(limits_.max_output) + " bytes", line);
    budget_.charge(1 + static_cast<int64_t>(text.size() / 16), line);
    out += text;
}

Interpreter::Flow Interpreter::exec(const Body& body, std::string& out) {
    for (const auto& node : body) {
        const Flow f = exec_node(*node, out);
        if (f != Flow::normal) return f;
    }
    return Flow::normal;
}

Interpreter::Flow Interpreter::exec_node(const Node& n, std::string& out) {
    const Nested nested(*this, n.line);
    budget_.charge(1, n.line);
    switch (n.kind) {
    case Node::Kind::text: append(out, n.text, n.line); return Flow::normal;
    case Node::Kind::print: append(out, str(eval(*n.expr), n.line), n.line); return Flow::normal;
    case Node::Kind::if_:
        for (size_t k = 0; k < n.conditions.size(); ++k)
            if (eval(*n.conditions[k]).truthy()) return exec(n.bodies[k], out);
        return exec(n.else_body, out);
    case Node::Kind::for_: return exec_for(n, out);
    case Node::Kind::set: assign(n.target, eval(*n.expr), n.line); return Flow::normal;
    case Node::Kind::set_block: {
        std::string text;
        exec(n.body, text);
        Value v = Value::string(std::move(text));
        if (n.expr) {
            const Value* saved = block_input_;
            block_input_ = &v;
            Value filtered = eval(*n.expr);
            block_input_ = saved;
            v = std::move(filtered);
        }
        assign(n.target, v, n.line);
        return Flow::normal;
    }
    case Node::Kind::macro: exec_macro_definition(n); return Flow::normal;
    case Node::Kind::filter_block: {
        std::string text;
        exec(n.body, text);
        const Value v = Value::string(std::move(text));
        const Value* saved = block_input_;
        block_input_ = &v;
        const Value filtered = eval(*n.expr);
        block_input_ = saved;
        append(out, str(filtered, n.line), n.line);
        return Flow::normal;
    }
    case Node::Kind::break_: return Flow::break_;
    case Node::Kind::continue_: return Flow::continue_;
    case Node::Kind::with: {
        auto frame = std::make_shared<Frame>();
        for (const auto& [name, expr] : n.assignments) (*frame)[name] = eval(*expr);
        frames_.push_back(std::move(frame));
        const Flow f = exec(n.body, out);
        frames_.pop_back();
        return f;
    }
    }
    return Flow::normal;
}

Interpreter::Flow Interpreter::exec_for(const Node& n, std::string& out) {
    const List all = iterate(eval(*n.expr), n.line);
    // Each iteration is a scope of its own, as in jinja2: what the body sets is gone at the next iteration (a
    // template that counts across iterations uses a namespace).
    struct Scope {
        std::vector<std::shared_ptr<Frame>>& f;
        explicit Scope(std::vector<std::shared_ptr<Frame>>& frames) : f(frames) { f.push_back(std::make_shared<Frame>()); }
        ~Scope() { f.pop_back(); }
    };
    List items;
    if (n.condition) { // the loop filter: loop.* counts the kept items only
        for (const Value& item : all) {
            budget_.charge(1, n.line);
            const Scope scope(frames_);
            assign(n.target, item, n.line);
            if (eval(*n.condition).truthy()) items.push_back(item);
        }
    } else {
        items = all;
    }
    if (items.empty()) return exec(n.else_body, out), Flow::normal;
    const auto length = static_cast<int64_t>(items.size());
    // loop.* keys are made once; loop.cycle reads the current index through a shared counter
    static const Value k_index = Value::string("index"), k_index0 = Value::string("index0"), k_revindex = Value::string("revindex"),
                       k_revindex0 = Value::string("revindex0"), k_first = Value::string("first"), k_last = Value::string("last"),
                       k_length = Value::string("length"), k_depth = Value::string("depth"), k_depth0 = Value::string("depth0"),
                       k_previtem = Value::string("previtem"), k_nextitem = Value::string("nextitem"), k_cycle = Value::string("cycle");
    auto current = std::make_shared<int64_t>(0);
    const Value cycle = Value::function("loop.cycle", [current](Interpreter&, CallArgs& a, int line) {
        if (a.positional.empty()) fail(ErrorKind::invalid_argument, "loop.cycle needs at least one argument", line);
        return a.positional[static_cast<size_t>(*current) % a.positional.size()];
    });
    for (int64_t k = 0; k < length; ++k) {
        budget_.charge(8, n.line); // an iteration costs about as much as eight expressions
        *current = k;
        const Scope scope(frames_);
        assign(n.target, items[static_cast<size_t>(k)], n.line);
        Dict loop;
        loop.entries.reserve(12);
        loop.entries.emplace_back(k_index, Value::integer(k + 1));
        loop.entries.emplace_back(k_index0, Value::integer(k));
        loop.entries.emplace_back(k_revindex, Value::integer(length - k));
        loop.entries.emplace_back(k_revindex0, Value::integer(length - k - 1));
        loop.entries.emplace_back(k_first, Value::boolean(k == 0));
        loop.entries.emplace_back(k_last, Value::boolean(k == length - 1));
        loop.entries.emplace_back(k_length, Value::integer(length));
        loop.entries.emplace_back(k_depth, Value::integer(1));
        loop.entries.emplace_back(k_depth0, Value::integer(0));
        loop.entries.emplace_back(k_previtem, k > 0 ? items[static_cast<size_t>(k - 1)] : Value::undefined("there is no previous item"));
        loop.entries.emplace_back(k_nextitem, k + 1 < length ? items[static_cast<size_t>(k + 1)] : Value::undefined("there is no next item"));
        loop.entries.emplace_back(k_cycle, cycle);
        (*frames_.back())["loop"] = Value::dict(std::move(loop));
        const Flow f = exec(n.body, out);
        if (f == Flow::break_) break;
    }
    return Flow::normal;
}

void Interpreter::assign(const Target& t, const Value& value, int line) {
    Frame& frame = *frames_.back();
    if (!t.ns_attr.empty()) {
        const Value ns = lookup(t.names[0]);
        if (ns.kind() != Value::Kind::ns) fail(ErrorKind::invalid_argument, "cannot assign attribute on non-namespace object '" + t.names[0] + "'", line);
        ns.as_ns()->attrs.set(Value::string(t.ns_attr), value);
        return;
    }
    if (t.names.size() == 1) {
        frame[t.names[0]] = value;
        return;
    }
    const List parts = iterate(value, line);
    if (parts.size() != t.names.size())
        fail(ErrorKind::invalid_argument,
             std::string(parts.size() > t.names.size() ? "too many" : "not enough") + " values to unpack (expected " + std::to_string(t.names.size()) +
                 ", got " + std::to_string(parts.size()) + ")",
             line);
    for (size_t k = 0; k < parts.size(); ++k) frame[t.names[k]] = parts[k];
}

void Interpreter::exec_macro_definition(const Node& n) {
    const Node* macro = &n;
    (*frames_.back())[n.text] = Value::function(n.text, [macro](Interpreter& in, CallArgs& args, int line) { return in.call_macro(*macro, args, line); });
}

Value Interpreter::call_macro(const Node& m, CallArgs& args, int line) {
    if (call_depth_ >= limits_.max_call_depth)
        fail(ErrorKind::invalid_argument, "macro calls nested deeper than " + std::to_string(limits_.max_call_depth) + " (runaway recursion?)", line);
    if (args.positional.size() > m.params.size())
        fail(ErrorKind::invalid_argument, "macro '" + m.text + "' takes " + std::to_string(m.params.size()) + " arguments, got " + std::to_string(args.positional.size()), line);
    auto frame = std::make_shared<Frame>();
    std::vector<std::shared_ptr<Frame>> saved = {frames_[0], frame};
    std::swap(saved, frames_); // a macro sees the template's globals and its own arguments
    struct Restore {
        Interpreter& in;
        std::vector<std::shared_ptr<Frame>>& saved;
        ~Restore() { std::swap(saved, in.frames_); --in.call_depth_; }
    } restore{*this, saved};
    ++call_depth_;
    for (const auto& [k, v] : args.keyword) {
        bool known = false;
        for (const auto& p : m.params) known |= p.name == k;
        if (!known) fail(ErrorKind::invalid_argument, "macro '" + m.text + "' has no argument '" + k + "'", line);
    }
    for (size_t k = 0; k < m.params.size(); ++k) {
        const MacroParam& p = m.params[k];
        if (const Value* v = args.get(args.positional.size() > k ? k : SIZE_MAX, p.name)) (*frame)[p.name] = *v;
        else if (p.default_value) (*frame)[p.name] = eval(*p.default_value);
        else (*frame)[p.name] = Value::undefined("'" + p.name + "' is undefined (macro '" + m.text + "' was called without it)");
    }
    std::string out;
    exec(m.body, out);
    return Value::string(std::move(out));
}

Value Interpreter::lookup(const std::string& name) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
        const auto found = (*it)->find(name);
        if (found != (*it)->end()) return found->second;
    }
    return Value::undefined("'" + name + "' is undefined");
}

List Interpreter::iterate(const Value& v, int line) {
    switch (v.kind()) {
    case Value::Kind::undefined: return {};
    case Value::Kind::list: budget_.check_items(v.as_list().size(), line); return v.as_list();
    case Value::Kind::dict: {
        budget_.check_items(v.as_dict().entries.size(), line);
        List keys;
        for (const auto& [k, x] : v.as_dict().entries) keys.push_back(k);
        return keys;
    }
    case Value::Kind::string: {
        const auto cps = code_points(v.as_string());
        budget_.check_items(cps.size(), line);
        List chars;
        for (std::string_view c : cps) chars.push_back(Value::string(std::string(c)));
        return chars;
    }
    default: fail(ErrorKind::invalid_argument, std::string("'") + v.type_name() + "' object is not iterable", line);
    }
}

Value Interpreter::call(const Value& callee, CallArgs& args, int line) {
    budget_.charge(1, line);
    if (callee.kind() == Value::Kind::function) return callee.as_function().call(*this, args, line);
    if (callee.is_undefined()) fail(ErrorKind::invalid_argument, callee.as_string(), line);
    fail(ErrorKind::invalid_argument, std::string("'") + callee.type_name() + "' object is not callable", line);
}

Value Interpreter::get_attribute(const Value& obj, const std::string& name, int line) {
    switch (obj.kind()) {
    case Value::Kind::undefined: fail(ErrorKind::invalid_argument, obj.as_string(), line);
    case Value::Kind::dict: {
        // jinja2 tries the Python attribute first (dict methods), then the item
        Value method = bound_method(obj, name);
        if (!method.is_undefined()) return method;
        if (const Value* v = obj.as_dict().find(Value::string(name))) return *v;
        return Value::undefined("'dict object' has no attribute '" + name + "'");
    }
    case Value::Kind::ns: {
        if (const Value* v = obj.as_ns()->attrs.find(Value::string(name))) return *v;
        return Value::undefined("'Namespace' object has no attribute '" + name + "'");
    }
    default: {
        Value method = bound_method(obj, name);
        if (!method.is_undefined()) return method;
        return Value::undefined("'" + std::string(obj.type_name()) + " object' has no attribute '" + name + "'");
    }
    }
}

Value Interpreter::get_item(const Value& obj, const Value& key, int line) {
    if (key.is_string() && obj.is_dict()) budget_.scan(key.as_string().size() * obj.as_dict().entries.size(), line); // key comparisons
    switch (obj.kind()) {
    case Value::Kind::undefined: fail(ErrorKind::invalid_argument, obj.as_string(), line);
    case Value::Kind::dict:
        if (const Value* v = obj.as_dict().find(key)) return *v;
        break;
    case Value::Kind::list:
    case Value::Kind::string:
        if (key.is_integral()) {
            int64_t i = key.as_int();
            if (obj.is_list()) {
                const auto n = static_cast<int64_t>(obj.as_list().size());
                if (i < 0) i += n;
                if (i >= 0 && i < n) return obj.as_list()[static_cast<size_t>(i)];
            } else {
                budget_.scan(obj.as_string().size(), line);
                const auto cps = code_points(obj.as_string());
                const auto n = static_cast<int64_t>(cps.size());
                if (i < 0) i += n;
                if (i >= 0 && i < n) return Value::string(std::string(cps[static_cast<size_t>(i)]));
            }
            return Value::undefined(std::string("'") + obj.type_name() + " object' has no element " + std::to_string(key.as_int()));
        }
        break;
    default: break;
    }
    if (key.is_string()) return get_attribute(obj, key.as_string(), line); // jinja2 falls back to the attribute
    return Value::undefined(std::string("'") + obj.type_name() + " object' has no element " + python_repr(key, budget_, line));
}

Value Interpreter::eval_slice(const Value& obj, const Expr& e) {
    const auto bound = [&](const ExprPtr& p, const char* what) -> std::optional<int64_t> {
        if (!p) return std::nullopt;
        const Value v = eval(*p);
        if (v.is_none()) return std::nullopt;
        if (!v.is_integral()) fail(ErrorKind::invalid_argument, std::string("slice ") + what + " must be an integer or none", e.line);
        return v.as_int();
    };
    const auto start = bound(e.args[1], "start"), stop = bound(e.args[2], "stop"), step_v = bound(e.args[3], "step");
    const int64_t step = step_v.value_or(1);
    if (step == 0) fail(ErrorKind::invalid_argument, "slice step cannot be zero", e.line);
    if (step == std::numeric_limits<int64_t>::min()) fail(ErrorKind::invalid_argument, "slice step out of range", e.line);
    if (obj.is_undefined()) fail(ErrorKind::invalid_argument, obj.as_string(), e.line);
    if (!obj.is_list() && !obj.is_string()) fail(ErrorKind::invalid_argument, std::string("'") + obj.type_name() + "' object is not subscriptable", e.line);
    std::vector<std::string_view> cps;
    if (obj.is_string()) {
        budget_.scan(obj.as_string().size(), e.line);
        cps = code_points(obj.as_string());
    }
    const auto n = static_cast<int64_t>(obj.is_list() ? obj.as_list().size() : cps.size());
    // Python's slice.indices()
    const auto clamp = [&](std::optional<int64_t> v, int64_t dflt) {
        if (!v) return dflt;
        int64_t x = *v;
        if (x < 0) x = std::max<int64_t>(x + n, step < 0 ? -1 : 0);
        else x = std::min<int64_t>(x, step < 0 ? n - 1 : n);
        return x;
    };
    const int64_t lo = clamp(start, step < 0 ? n - 1 : 0), hi = clamp(stop, step < 0 ? -1 : n);
    List items;
    std::string s;
    for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step) {
        budget_.charge(1, e.line);
        if (obj.is_list()) items.push_back(obj.as_list()[static_cast<size_t>(i)]);
        else s += cps[static_cast<size_t>(i)];
        if (step > 0 ? i > std::numeric_limits<int64_t>::max() - step : i < std::numeric_limits<int64_t>::min() - step) break;
    }
    return obj.is_list() ? Value::list(std::move(items), obj.is_tuple()) : Value::string(std::move(s));
}

void Interpreter::eval_args(const Expr& e, size_t first, CallArgs& args) {
    for (size_t k = first; k < e.args.size(); ++k) args.positional.push_back(eval(*e.args[k]));
    for (const auto& [name, x] : e.kwargs) args.keyword.emplace_back(name, eval(*x));
}

Value Interpreter::eval(const Expr& e) {
    const Nested nested(*this, e.line);
    budget_.charge(1, e.line);
    switch (e.kind) {
    case Expr::Kind::literal: return e.value;
    case Expr::Kind::name: return lookup(e.name);
    case Expr::Kind::list:
    case Expr::Kind::tuple: {
        List items;
        for (const auto& a : e.args) items.push_back(eval(*a));
        return Value::list(std::move(items), e.kind == Expr::Kind::tuple);
    }
    case Expr::Kind::dict: {
        Dict d;
        for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
            Value key = eval(*e.args[k]);
            if (!key.is_string() && !key.is_number() && !key.is_none() && !key.is_tuple())
                fail(ErrorKind::invalid_argument, std::string("unhashable dict key of type '") + key.type_name() + "'", e.line);
            if (key.is_string()) budget_.scan(key.as_string().size() * (d.entries.size() + 1), e.line); // key comparisons
            d.set(key, eval(*e.args[k + 1]));
        }
        return Value::dict(std::move(d));
    }
    case Expr::Kind::attribute: return get_attribute(eval(*e.args[0]), e.name, e.line);
    case Expr::Kind::subscript: {
        const Value obj = eval(*e.args[0]);
        return get_item(obj, eval(*e.args[1]), e.line);
    }
    case Expr::Kind::slice: return eval_slice(eval(*e.args[0]), e);
    case Expr::Kind::call: {
        const Value callee = eval(*e.args[0]);
        CallArgs args;
        eval_args(e, 1, args);
        return call(callee, args, e.line);
    }
    case Expr::Kind::filter: {
        Value input;
        if (e.args[0]) input = eval(*e.args[0]);
        else if (block_input_) input = *block_input_;
        CallArgs args;
        eval_args(e, 1, args);
        return apply_filter(*this, e.name, input, args, e.line);
    }
    case Expr::Kind::test: {
        const Value subject = eval(*e.args[0]);
        CallArgs args;
        eval_args(e, 1, args);
        return Value::boolean(apply_test(*this, e.name, subject, args, e.line) != e.negated);
    }
    case Expr::Kind::unary: {
        const Value v = eval(*e.args[0]);
        if (e.name == "not") return Value::boolean(!v.truthy());
        if (v.is_undefined()) fail(ErrorKind::invalid_argument, v.as_string(), e.line);
        if (!v.is_number()) fail(ErrorKind::invalid_argument, "bad operand type for unary " + e.name + ": '" + v.type_name() + "'", e.line);
        if (e.name == "+") return v.kind() == Value::Kind::boolean ? Value::integer(v.as_int()) : v;
        if (v.kind() == Value::Kind::floating) return Value::floating(-v.as_double());
        if (v.as_int() == std::numeric_limits<int64_t>::min()) fail(ErrorKind::invalid_argument, "integer overflow", e.line);
        return Value::integer(-v.as_int());
    }
    case Expr::Kind::binary: {
        const Value a = eval(*e.args[0]);
        const Value b = eval(*e.args[1]);
        return eval_binary(e.name, a, b, e.line);
    }
    case Expr::Kind::logical_and: {
        Value a = eval(*e.args[0]);
        return a.truthy() ? eval(*e.args[1]) : a;
    }
    case Expr::Kind::logical_or: {
        Value a = eval(*e.args[0]);
        return a.truthy() ? a : eval(*e.args[1]);
    }
    case Expr::Kind::compare: {
        Value left = eval(*e.args[0]);
        for (size_t k = 0; k < e.ops.size(); ++k) {
            Value right = eval(*e.args[k + 1]);
            if (!eval_compare(e.ops[k], left, right, e.line)) return Value::boolean(false);
            left = std::move(right);
        }
        return Value::boolean(true);
    }
    case Expr::Kind::conditional:
        if (eval(*e.args[1]).truthy()) return eval(*e.args[0]);
        return e.args[2] ? eval(*e.args[2]) : Value::undefined("the inline if's condition was false and it has no else");
    }
    return {};
}

bool Interpreter::eval_compare(const std::string& op, const Value& a, const Value& b, int line) {
    if (op == "==") return python_equal(a, b, budget_, line);
    if (op == "!=") return !python_equal(a, b, budget_, line);
    if (op == "in" || op == "not in") {
        bool found = false;
        if (b.is_string()) {
            if (a.is_undefined()) fail(ErrorKind::invalid_argument, a.as_string(), line);
            if (!a.is_string()) fail(ErrorKind::invalid_argument, std::string("'in <string>' requires string as left operand, not ") + a.type_name(), line);
            budget_.search(b.as_string().size(), a.as_string().size(), line);
            found = b.as_string().find(a.as_string()) != std::string::npos;
        } else if (b.is_list()) {
            for (const Value& x : b.as_list())
                if (python_equal(a, x, budget_, line)) { found = true; break; }
        } else if (b.is_dict()) {
            found = b.as_dict().find(a) != nullptr;
        } else if (!b.is_undefined()) {
            fail(ErrorKind::invalid_argument, std::string("argument of type '") + b.type_name() + "' is not iterable", line);
        }
        return found == (op == "in");
    }
    const int c = python_compare(a, b, budget_, line);
    if (op == "<") return c < 0;
    if (op == "<=") return c <= 0;
    if (op == ">") return c > 0;
    return c >= 0;
}

Value Interpreter::eval_binary(const std::string& op, const Value& a, const Value& b, int line) {
    if (op == "~") {
        std::string s = str(a, line);
        const std::string t = str(b, line);
        budget_.check_size(s.size() + t.size(), line);
        return Value::string(s + t);
    }
    if (a.is_undefined() || b.is_undefined()) type_error(op, a, b, line);
    const bool ints = a.is_integral() && b.is_integral();
    const bool nums = a.is_number() && b.is_number();
    if (op == "+") {
        if (ints) return Value::integer(checked(add_op, a.as_int(), b.as_int(), line));
        if (nums) return Value::floating(a.as_double() + b.as_double());
        if (a.is_string() && b.is_string()) {
            budget_.check_size(a.as_string().size() + b.as_string().size(), line);
            return Value::string(a.as_string() + b.as_string());
        }
        if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
            budget_.check_items(a.as_list().size() + b.as_list().size(), line);
            List items = a.as_list();
            items.insert(items.end(), b.as_list().begin(), b.as_list().end());
            return Value::list(std::move(items), a.is_tuple());
        }
        type_error(op, a, b, line);
    }
    if (op == "-") {
        if (ints) return Value::integer(checked(sub_op, a.as_int(), b.as_int(), line));
        if (nums) return Value::floating(a.as_double() - b.as_double());
        type_error(op, a, b, line);
    }
    if (op == "*") {
        if (ints) return Value::integer(checked(mul_op, a.as_int(), b.as_int(), line));
        if (nums) return Value::floating(a.as_double() * b.as_double());
        const Value& seq = a.is_integral() ? b : a;
        const Value& count = a.is_integral() ? a : b;
        if (count.is_integral() && seq.is_string()) {
            const std::string& s = seq.as_string();
            return repeat(count.as_int(), s.size(), budget_, line, [&](size_t n) {
                std::string out;
                out.reserve(s.size() * n);
                for (size_t k = 0; k < n; ++k) out += s;
                return Value::string(std::move(out));
            });
        }
        if (count.is_integral() && seq.is_list()) {
            const List& l = seq.as_list();
            if (count.as_int() > 0 && !l.empty()) {
                if (static_cast<uint64_t>(count.as_int()) > limits_.max_items) budget_.check_items(limits_.max_items + 1, line);
                budget_.check_items(l.size() * static_cast<size_t>(count.as_int()), line);
            }
            return repeat(count.as_int(), l.size(), budget_, line, [&](size_t n) {
                List out;
                for (size_t k = 0; k < n; ++k) out.insert(out.end(), l.begin(), l.end());
                return Value::list(std::move(out), seq.is_tuple());
            });
        }
        type_error(op, a, b, line);
    }
    if (!nums) type_error(op, a, b, line);
    if (op == "/") {
        if (b.as_double() == 0) fail(ErrorKind::invalid_argument, "division by zero", line);
        return Value::floating(a.as_double() / b.as_double());
    }
    if (op == "//") {
        if (ints) return Value::integer(floor_div(a.as_int(), b.as_int(), line));
        if (b.as_double() == 0) fail(ErrorKind::invalid_argument, "float floor division by zero", line);
        return Value::floating(std::floor(a.as_double() / b.as_double()));
    }
    if (op == "%") {
        if (ints) return Value::integer(py_mod(a.as_int(), b.as_int(), line));
        if (b.as_double() == 0) fail(ErrorKind::invalid_argument, "float modulo by zero", line);
        double m = std::fmod(a.as_double(), b.as_double());
        if (m != 0 && ((m < 0) != (b.as_double() < 0))) m += b.as_double();
        return Value::floating(m);
    }
    if (op == "**") {
        if (ints && b.as_int() >= 0) {
            int64_t result = 1, base = a.as_int();
            for (int64_t e = b.as_int(); e > 0; e >>= 1) {
                budget_.charge(1, line);
                if (e & 1) result = checked(mul_op, result, base, line);
                if (e > 1) base = checked(mul_op, base, base, line);
            }
            return Value::integer(result);
        }
        if (a.as_double() == 0 && b.as_double() < 0) fail(ErrorKind::invalid_argument, "0.0 cannot be raised to a negative power", line);
        return Value::floating(std::pow(a.as_double(), b.as_double()));
    }
    fail(ErrorKind::format, "unknown operator '" + op + "'", line);
}

} // namespace winnow::jinja
