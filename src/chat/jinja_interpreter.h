#pragma once
// Executes a parsed template: statements write text, expressions compute Values with jinja2's semantics (scopes:
// a for loop or macro body is a new scope, so `set` inside a loop does not leak out of it; Undefined is printed as ""
// and is false, but using it in arithmetic, calls or attribute access is an error, as jinja2's default Undefined).
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "chat/jinja_ast.h"
#include "chat/jinja_limits.h"
#include "chat/jinja_value.h"

namespace winnow::jinja {

class Interpreter {
public:
    Interpreter(const Limits& limits, Dict globals);

    std::string render(const Body& body);

    // Shared with the filters, tests, methods and global functions.
    Budget& budget() { return budget_; }
    NamespaceArena& arena() { return arena_; }
    Value call(const Value& callee, CallArgs& args, int line);
    Value get_attribute(const Value& obj, const std::string& name, int line);
    Value get_item(const Value& obj, const Value& key, int line);
    List iterate(const Value& v, int line); // for loops, list(), join: list items, dict keys, string characters
    std::string str(const Value& v, int line);

private:
    enum class Flow { normal, break_, continue_ };
    using Frame = std::unordered_map<std::string, Value>;

    Limits limits_;
    Budget budget_;
    NamespaceArena arena_;
    std::vector<std::shared_ptr<Frame>> frames_; // [0]: the template's globals
    int call_depth_ = 0;
    int recursion_ = 0; // nested exec_node/eval calls: bounded, whatever mix of macros, blocks and expressions nests them
    const Value* block_input_ = nullptr; // the rendered body a {% filter %} block applies its filters to

    struct Nested { // counts one level of recursion for its lifetime
        Interpreter& in;
        Nested(Interpreter& interpreter, int line);
        ~Nested() { --in.recursion_; }
    };
    static constexpr int kMaxRecursion = 800; // real templates nest a few dozen levels; 800 stays far within an 8 MiB stack under ASan

    Flow exec(const Body& body, std::string& out);
    Flow exec_node(const Node& node, std::string& out);
    Flow exec_for(const Node& node, std::string& out);
    void exec_macro_definition(const Node& node);
    Value call_macro(const Node& macro, CallArgs& args, int line);
    void assign(const Target& target, const Value& value, int line);
    void append(std::string& out, const std::string& text, int line);

    Value eval(const Expr& e);
    Value lookup(const std::string& name) const;
    Value eval_binary(const std::string& op, const Value& a, const Value& b, int line);
    bool eval_compare(const std::string& op, const Value& a, const Value& b, int line);
    Value eval_slice(const Value& obj, const Expr& e);
    void eval_args(const Expr& e, size_t first_positional, CallArgs& args);
};

} // namespace winnow::jinja
