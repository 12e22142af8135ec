#pragma once
// The parsed template: expressions and statements, each with its source line for error messages.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja_value.h"

namespace winnow::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
    enum class Kind {
        literal,     // value
        name,        // name
        list,        // args: items
        tuple,       // args: items
        dict,        // args: key, value, key, value, ...
        attribute,   // args[0].name
        subscript,   // args[0][args[1]]
        slice,       // args[0][args[1]:args[2]:args[3]] (null parts omitted)
        call,        // args[0](args[1..], kwargs)
        filter,      // args[0] | name(args[1..], kwargs)
        test,        // args[0] is [not] name(args[1..], kwargs)
        unary,       // name ("-", "+", "not") args[0]
        binary,      // args[0] name args[1]: + - * / // % ** ~
        logical_and, // args[0] and args[1]
        logical_or,  // args[0] or args[1]
        compare,     // args[0] ops[0] args[1] ops[1] args[2] ... (chained, as in Python)
        conditional, // args[0] if args[1] else args[2] (args[2] null: undefined)
    };
    Kind kind;
    int line = 0;
    Value value;
    std::string name;
    bool negated = false;           // test: "is not"
    std::vector<ExprPtr> args;
    std::vector<std::pair<std::string, ExprPtr>> kwargs;
    std::vector<std::string> ops;   // compare: "==", "!=", "<", "<=", ">", ">=", "in", "not in"
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

// An assignment target: names (several: tuple unpacking), or one namespace attribute (ns.attr).
struct Target {
    std::vector<std::string> names;
    std::string ns_attr; // non-empty: names[0] is a namespace and this its attribute
};

struct MacroParam {
    std::string name;
    ExprPtr default_value; // may be null
};

struct Node {
    enum class Kind {
        text,       // text
        print,      // expr
        if_,        // conditions/bodies, else_body
        for_,       // target, expr (iterable), condition (filter, may be null), body, else_body
        set,        // target = expr
        set_block,  // target = rendered body
        macro,      // name(params): body
        filter_block, // expr is a filter chain applied to the rendered body (its args[0] is null)
        break_,
        continue_,
        with,       // assignments, then body, in a new scope (also {% generation %}, without assignments)
    };
    Kind kind;
    int line = 0;
    std::string text;
    ExprPtr expr, condition;
    Target target;
    std::vector<ExprPtr> conditions;
    std::vector<Body> bodies;
    Body body, else_body;
    std::vector<MacroParam> params;
    std::vector<std::pair<std::string, ExprPtr>> assignments; // with
};

} // namespace winnow::jinja
