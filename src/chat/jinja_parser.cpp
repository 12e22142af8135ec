#include "chat/jinja_parser.h"

#include <algorithm>
#include <initializer_list>

#include "chat/jinja_builtins.h"
#include "chat/jinja_lexer.h"
#include "chat/jinja_limits.h"

namespace winnow::jinja {

namespace {

ExprPtr make_expr(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
}

NodePtr make_node(Node::Kind kind, int line) {
    auto n = std::make_unique<Node>();
    n->kind = kind;
    n->line = line;
    return n;
}

class Parser {
public:
    Parser(std::vector<Token> tokens, int max_depth) : toks_(std::move(tokens)), max_depth_(max_depth) {}

    Body run() {
        std::string stopped_at;
        Body body = parse_body({}, stopped_at);
        if (cur().kind != TokenKind::end) error("unexpected " + std::string(describe(cur().kind)));
        return body;
    }

private:
    std::vector<Token> toks_;
    size_t i_ = 0;
    int max_depth_;
    int depth_ = 0;
    int loop_depth_ = 0;

    struct DepthGuard {
        Parser& p;
        explicit DepthGuard(Parser& parser) : p(parser) {
            if (++p.depth_ > p.max_depth_) p.error("the template nests deeper than " + std::to_string(p.max_depth_) + " levels");
        }
        ~DepthGuard() { --p.depth_; }
    };

    const Token& cur() const { return toks_[i_]; }
    const Token& peek(size_t k = 1) const { return toks_[std::min(i_ + k, toks_.size() - 1)]; }
    void advance() { if (i_ + 1 < toks_.size()) ++i_; }
    [[noreturn]] void error(const std::string& what) const { fail(ErrorKind::format, what, cur().line); }

    bool is_op(const char* op) const { return cur().kind == TokenKind::op && cur().text == op; }
    bool is_name(const char* name) const { return cur().kind == TokenKind::name && cur().text == name; }
    bool skip_op(const char* op) {
        if (!is_op(op)) return false;
        advance();
        return true;
    }
    bool skip_name(const char* name) {
        if (!is_name(name)) return false;
        advance();
        return true;
    }
    std::string describe_current() const {
        const Token& t = cur();
        if (t.kind == TokenKind::op || t.kind == TokenKind::name) return "'" + t.text + "'";
        return describe(t.kind);
    }
    void expect_op(const char* op) {
        if (!skip_op(op)) error(std::string("expected '") + op + "', got " + describe_current());
    }
    void expect(TokenKind kind) {
        if (cur().kind != kind) error(std::string("expected ") + describe(kind) + ", got " + describe_current());
        advance();
    }
    std::string expect_name() {
        if (cur().kind != TokenKind::name) error("expected a name, got " + describe_current());
        std::string n = cur().text;
        advance();
        return n;
    }

    // ---- statements ----------------------------------------------------------------------------------------

    // Parses until a block tag named in `stop` (left unconsumed after its '{%'), or the end of the template.
    Body parse_body(std::initializer_list<const char*> stop, std::string& stopped_at) {
        DepthGuard guard(*this);
        Body body;
        while (true) {
            const Token& t = cur();
            if (t.kind == TokenKind::end) {
                stopped_at.clear();
                return body;
            }
            if (t.kind == TokenKind::text) {
                auto n = make_node(Node::Kind::text, t.line);
                n->text = t.text;
                body.push_back(std::move(n));
                advance();
            } else if (t.kind == TokenKind::print_begin) {
                auto n = make_node(Node::Kind::print, t.line);
                advance();
                n->expr = parse_tuple(true);
                expect(TokenKind::print_end);
                body.push_back(std::move(n));
            } else if (t.kind == TokenKind::block_begin) {
                const Token& tag = peek();
                if (tag.kind == TokenKind::name &&
                    std::any_of(stop.begin(), stop.end(), [&](const char* s) { return tag.text == s; })) {
                    advance();
                    stopped_at = tag.text;
                    return body;
                }
                static const char* const closers[] = {"endfor", "endif", "elif", "else", "endmacro", "endset", "endfilter", "endwith", "endgeneration"};
                if (tag.kind == TokenKind::name && std::any_of(std::begin(closers), std::end(closers), [&](const char* c) { return tag.text == c; })) {
                    std::string expected;
                    for (const char* s : stop) expected += std::string(expected.empty() ? "" : " or ") + "'" + s + "'";
                    fail(ErrorKind::format, "unexpected '" + tag.text + "'" + (expected.empty() ? "" : " (expected " + expected + ")"), tag.line);
                }
                advance();
                body.push_back(parse_statement());
            } else {
                error("unexpected " + describe_current());
            }
        }
    }

    // Parses a body that must end with one of `stop`; returns which, with the tag name consumed.
    std::string parse_until(std::initializer_list<const char*> stop, Body& body, const std::string& opener, int opened_line) {
        std::string stopped_at;
        body = parse_body(stop, stopped_at);
        if (stopped_at.empty()) {
            std::string expected;
            for (const char* s : stop) expected += std::string(expected.empty() ? "" : " or ") + "'" + s + "'";
            fail(ErrorKind::format, "unclosed '" + opener + "' block opened at line " + std::to_string(opened_line) + " (expected " + expected + ")",
                 cur().line);
        }
        advance(); // the tag name
        return stopped_at;
    }

    NodePtr parse_statement() {
        if (cur().kind != TokenKind::name) error("expected a tag name after '{%', got " + describe_current());
        const std::string tag = cur().text;
        const int line = cur().line;
        advance();
        if (tag == "for") return parse_for(line);
        if (tag == "if") return parse_if(line);
        if (tag == "set") return parse_set(line);
        if (tag == "macro") return parse_macro(line);
        if (tag == "filter") return parse_filter_block(line);
        if (tag == "with") return parse_with(line, true);
        if (tag == "generation") return parse_with(line, false); // HF's marker of assistant text: renders its body
        if (tag == "break" || tag == "continue") {
            if (loop_depth_ == 0) fail(ErrorKind::format, "'" + tag + "' outside a for loop", line);
            expect(TokenKind::block_end);
            return make_node(tag == "break" ? Node::Kind::break_ : Node::Kind::continue_, line);
        }
        static const char* const unsupported[] = {"include", "import", "from", "extends", "block", "call", "autoescape", "do"};
        for (const char* u : unsupported)
            if (tag == u) fail(ErrorKind::unsupported, "the '" + tag + "' tag is not supported", line);
        fail(ErrorKind::format, "unknown tag '" + tag + "'", line);
    }

    Target parse_target(bool allow_attr) {
        Target t;
        const bool paren = skip_op("(");
        t.names.push_back(expect_name());
        if (allow_attr && !paren && is_op(".")) {
            advance();
            t.ns_attr = expect_name();
            return t;
        }
        while (skip_op(",")) {
            if (cur().kind != TokenKind::name) break; // trailing comma
            t.names.push_back(expect_name());
        }
        if (paren) expect_op(")");
        return t;
    }

    NodePtr parse_for(int line) {
        auto n = make_node(Node::Kind::for_, line);
        n->target = parse_target(false);
        if (!skip_name("in")) error("expected 'in' in the for loop, got " + describe_current());
        n->expr = parse_tuple(false);
        if (skip_name("if")) n->condition = parse_expression();
        if (is_name("recursive")) fail(ErrorKind::unsupported, "recursive for loops are not supported", line);
        expect(TokenKind::block_end);
        ++loop_depth_;
        std::string end = parse_until({"endfor", "else"}, n->body, "for", line);
        --loop_depth_;
        expect(TokenKind::block_end);
        if (end == "else") {
            parse_until({"endfor"}, n->else_body, "for", line);
            expect(TokenKind::block_end);
        }
        return n;
    }

    NodePtr parse_if(int line) {
        auto n = make_node(Node::Kind::if_, line);
        n->conditions.push_back(parse_tuple(true));
        expect(TokenKind::block_end);
        while (true) {
            Body body;
            const std::string end = parse_until({"elif", "else", "endif"}, body, "if", line);
            n->bodies.push_back(std::move(body));
            if (end == "elif") {
                n->conditions.push_back(parse_tuple(true));
                expect(TokenKind::block_end);
                continue;
            }
            expect(TokenKind::block_end);
            if (end == "else") {
                parse_until({"endif"}, n->else_body, "if", line);
                expect(TokenKind::block_end);
            }
            return n;
        }
    }

    NodePtr parse_set(int line) {
        Target target = parse_target(true);
        if (skip_op("=")) {
            auto n = make_node(Node::Kind::set, line);
            n->target = std::move(target);
            n->expr = parse_tuple(true);
            expect(TokenKind::block_end);
            return n;
        }
        if (target.names.size() != 1 || !target.ns_attr.empty()) error("a block set assigns one name");
        auto n = make_node(Node::Kind::set_block, line);
        n->target = std::move(target);
        if (is_op("|")) n->expr = parse_filter_chain(nullptr);
        expect(TokenKind::block_end);
        const int saved = loop_depth_;
        parse_until({"endset"}, n->body, "set", line);
        loop_depth_ = saved;
        expect(TokenKind::block_end);
        return n;
    }

    NodePtr parse_macro(int line) {
        auto n = make_node(Node::Kind::macro, line);
        n->text = expect_name();
        expect_op("(");
        while (!is_op(")")) {
            MacroParam p;
            p.name = expect_name();
            if (skip_op("=")) p.default_value = parse_expression();
            n->params.push_back(std::move(p));
            if (!skip_op(",")) break;
        }
        expect_op(")");
        expect(TokenKind::block_end);
        const int saved = loop_depth_;
        loop_depth_ = 0; // break/continue do not cross a macro
        parse_until({"endmacro"}, n->body, "macro", line);
        loop_depth_ = saved;
        if (cur().kind == TokenKind::name) advance(); // {% endmacro name %}
        expect(TokenKind::block_end);
        return n;
    }

    NodePtr parse_filter_block(int line) {
        auto n = make_node(Node::Kind::filter_block, line);
        n->expr = parse_filter_chain(nullptr, false);
        expect(TokenKind::block_end);
        parse_until({"endfilter"}, n->body, "filter", line);
        expect(TokenKind::block_end);
        return n;
    }

    NodePtr parse_with(int line, bool assignments) {
        auto n = make_node(Node::Kind::with, line);
        while (assignments && cur().kind == TokenKind::name) {
            std::string name = expect_name();
            expect_op("=");
            n->assignments.emplace_back(std::move(name), parse_expression());
            if (!skip_op(",")) break;
        }
        expect(TokenKind::block_end);
        parse_until({assignments ? "endwith" : "endgeneration"}, n->body, assignments ? "with" : "generation", line);
        expect(TokenKind::block_end);
        return n;
    }

    // ---- expressions ---------------------------------------------------------------------------------------

    // An expression, or several separated by commas (a tuple), as after {{, in set and in for.
    ExprPtr parse_tuple(bool with_condexpr) {
        const int line = cur().line;
        ExprPtr first = with_condexpr ? parse_expression() : parse_or();
        if (!is_op(",")) return first;
        auto t = make_expr(Expr::Kind::tuple, line);
        t->args.push_back(std::move(first));
        while (skip_op(",")) {
            if (cur().kind == TokenKind::block_end || cur().kind == TokenKind::print_end || is_name("if")) break;
            t->args.push_back(with_condexpr ? parse_expression() : parse_or());
        }
        return t;
    }

    ExprPtr parse_expression() {
        DepthGuard guard(*this);
        ExprPtr e = parse_or();
        while (is_name("if")) {
            const int line = cur().line;
            advance();
            auto c = make_expr(Expr::Kind::conditional, line);
            ExprPtr cond = parse_or();
            ExprPtr otherwise;
            if (skip_name("else")) otherwise = parse_expression();
            c->args.push_back(std::move(e));
            c->args.push_back(std::move(cond));
            c->args.push_back(std::move(otherwise));
            e = std::move(c);
        }
        return e;
    }

    ExprPtr binary(Expr::Kind kind, std::string op, ExprPtr a, ExprPtr b, int line) {
        auto e = make_expr(kind, line);
        e->name = std::move(op);
        e->args.push_back(std::move(a));
        e->args.push_back(std::move(b));
        return e;
    }

    ExprPtr parse_or() {
        ExprPtr e = parse_and();
        while (is_name("or")) {
            const int line = cur().line;
            advance();
            e = binary(Expr::Kind::logical_or, "or", std::move(e), parse_and(), line);
        }
        return e;
    }

    ExprPtr parse_and() {
        ExprPtr e = parse_not();
        while (is_name("and")) {
            const int line = cur().line;
            advance();
            e = binary(Expr::Kind::logical_and, "and", std::move(e), parse_not(), line);
        }
        return e;
    }

    ExprPtr parse_not() {
        DepthGuard guard(*this);
        if (is_name("not")) {
            const int line = cur().line;
            advance();
            auto e = make_expr(Expr::Kind::unary, line);
            e->name = "not";
            e->args.push_back(parse_not());
            return e;
        }
        return parse_compare();
    }

    ExprPtr parse_compare() {
        const int line = cur().line;
        ExprPtr first = parse_math1();
        ExprPtr chain;
        while (true) {
            std::string op;
            if (cur().kind == TokenKind::op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
                                                cur().text == ">" || cur().text == ">=")) {
                op = cur().text;
                advance();
            } else if (is_name("in")) {
                op = "in";
                advance();
            } else if (is_name("not") && peek().kind == TokenKind::name && peek().text == "in") {
                op = "not in";
                advance();
                advance();
            } else {
                break;
            }
            if (!chain) {
                chain = make_expr(Expr::Kind::compare, line);
                chain->args.push_back(std::move(first));
            }
            chain->ops.push_back(op);
            chain->args.push_back(parse_math1());
        }
        return chain ? std::move(chain) : std::move(first);
    }

    ExprPtr parse_math1() {
        ExprPtr e = parse_concat();
        while (is_op("+") || is_op("-")) {
            const std::string op = cur().text;
            const int line = cur().line;
            advance();
            e = binary(Expr::Kind::binary, op, std::move(e), parse_concat(), line);
        }
        return e;
    }

    ExprPtr parse_concat() {
        ExprPtr e = parse_math2();
        while (is_op("~")) {
            const int line = cur().line;
            advance();
            e = binary(Expr::Kind::binary, "~", std::move(e), parse_math2(), line);
        }
        return e;
    }

    ExprPtr parse_math2() {
        ExprPtr e = parse_pow();
        while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
            const std::string op = cur().text;
            const int line = cur().line;
            advance();
            e = binary(Expr::Kind::binary, op, std::move(e), parse_pow(), line);
        }
        return e;
    }

    ExprPtr parse_pow() {
        ExprPtr e = parse_unary(true);
        while (is_op("**")) {
            const int line = cur().line;
            advance();
            e = binary(Expr::Kind::binary, "**", std::move(e), parse_unary(true), line);
        }
        return e;
    }

    ExprPtr parse_unary(bool with_filter) {
        DepthGuard guard(*this);
        ExprPtr e;
        if (is_op("-") || is_op("+")) {
            e = make_expr(Expr::Kind::unary, cur().line);
            e->name = cur().text;
            advance();
            e->args.push_back(parse_unary(false));
        } else {
            e = parse_primary();
        }
        e = parse_postfix(std::move(e));
        if (with_filter) e = parse_filter_expr(std::move(e));
        return e;
    }

    ExprPtr parse_primary() {
        const Token& t = cur();
        const int line = t.line;
        switch (t.kind) {
        case TokenKind::name: {
            auto e = make_expr(Expr::Kind::literal, line);
            if (t.text == "true" || t.text == "True") e->value = Value::boolean(true);
            else if (t.text == "false" || t.text == "False") e->value = Value::boolean(false);
            else if (t.text == "none" || t.text == "None") e->value = Value::none();
            else {
                e->kind = Expr::Kind::name;
                e->name = t.text;
            }
            advance();
            return e;
        }
        case TokenKind::string: {
            std::string s;
            while (cur().kind == TokenKind::string) { // adjacent literals concatenate
                s += cur().text;
                advance();
            }
            auto e = make_expr(Expr::Kind::literal, line);
            e->value = Value::string(std::move(s));
            return e;
        }
        case TokenKind::integer:
        case TokenKind::floating: {
            auto e = make_expr(Expr::Kind::literal, line);
            e->value = t.kind == TokenKind::integer ? Value::integer(t.integer) : Value::floating(t.floating);
            advance();
            return e;
        }
        case TokenKind::op:
            if (t.text == "(") {
                advance();
                if (skip_op(")")) return make_expr(Expr::Kind::tuple, line);
                ExprPtr inner = parse_expression();
                if (is_op(",")) {
                    auto tup = make_expr(Expr::Kind::tuple, line);
                    tup->args.push_back(std::move(inner));
                    while (skip_op(",")) {
                        if (is_op(")")) break;
                        tup->args.push_back(parse_expression());
                    }
                    inner = std::move(tup);
                }
                expect_op(")");
                return inner;
            }
            if (t.text == "[") {
                advance();
                auto e = make_expr(Expr::Kind::list, line);
                while (!is_op("]")) {
                    e->args.push_back(parse_expression());
                    if (!skip_op(",")) break;
                }
                expect_op("]");
                return e;
            }
            if (t.text == "{") {
                advance();
                auto e = make_expr(Expr::Kind::dict, line);
                while (!is_op("}")) {
                    e->args.push_back(parse_expression());
                    expect_op(":");
                    e->args.push_back(parse_expression());
                    if (!skip_op(",")) break;
                }
                expect_op("}");
                return e;
            }
            break;
        default: break;
        }
        error("unexpected " + describe_current() + " in an expression");
    }

    ExprPtr parse_postfix(ExprPtr e) {
        while (true) {
            const int line = cur().line;
            if (is_op(".")) {
                advance();
                if (cur().kind == TokenKind::name) {
                    auto a = make_expr(Expr::Kind::attribute, line);
                    a->name = cur().text;
                    a->args.push_back(std::move(e));
                    advance();
                    e = std::move(a);
                } else if (cur().kind == TokenKind::integer) {
                    auto s = make_expr(Expr::Kind::subscript, line);
                    s->args.push_back(std::move(e));
                    auto idx = make_expr(Expr::Kind::literal, line);
                    idx->value = Value::integer(cur().integer);
                    s->args.push_back(std::move(idx));
                    advance();
                    e = std::move(s);
                } else {
                    error("expected an attribute name after '.', got " + describe_current());
                }
            } else if (is_op("[")) {
                advance();
                e = parse_subscript(std::move(e), line);
            } else if (is_op("(")) {
                e = parse_call(std::move(e));
            } else {
                return e;
            }
        }
    }

    ExprPtr parse_subscript(ExprPtr target, int line) {
        ExprPtr start, stop, step;
        if (!is_op(":")) start = parse_expression();
        if (!is_op(":")) {
            expect_op("]");
            auto s = make_expr(Expr::Kind::subscript, line);
            s->args.push_back(std::move(target));
            s->args.push_back(std::move(start));
            return s;
        }
        advance();
        if (!is_op(":") && !is_op("]")) stop = parse_expression();
        if (skip_op(":") && !is_op("]")) step = parse_expression();
        expect_op("]");
        auto s = make_expr(Expr::Kind::slice, line);
        s->args.push_back(std::move(target));
        s->args.push_back(std::move(start));
        s->args.push_back(std::move(stop));
        s->args.push_back(std::move(step));
        return s;
    }

    // "(" args ")" after a callee, a filter or a test.
    void parse_call_args(Expr& e) {
        expect_op("(");
        while (!is_op(")")) {
            if (is_op("*") || is_op("**")) fail(ErrorKind::unsupported, "*args and **kwargs in calls are not supported", cur().line);
            if (cur().kind == TokenKind::name && peek().kind == TokenKind::op && peek().text == "=") {
                std::string name = cur().text;
                advance();
                advance();
                e.kwargs.emplace_back(std::move(name), parse_expression());
            } else {
                if (!e.kwargs.empty()) error("a positional argument follows a keyword argument");
                e.args.push_back(parse_expression());
            }
            if (!skip_op(",")) break;
        }
        expect_op(")");
    }

    ExprPtr parse_call(ExprPtr callee) {
        auto c = make_expr(Expr::Kind::call, cur().line);
        c->args.push_back(std::move(callee));
        parse_call_args(*c);
        return c;
    }

    ExprPtr parse_filter_expr(ExprPtr e) {
        while (true) {
            if (is_op("|")) e = parse_filter_chain(std::move(e), true);
            else if (is_name("is")) e = parse_test(std::move(e));
            else if (is_op("(")) e = parse_call(std::move(e));
            else return e;
        }
    }

    // One or more "| name(args)" (the first "|" is optional in {% filter %}); `input` may be null (a block's text).
    ExprPtr parse_filter_chain(ExprPtr input, bool single = false) {
        bool first = true;
        do {
            const int line = cur().line;
            if (!skip_op("|") && !(first && !input)) break;
            first = false;
            auto f = make_expr(Expr::Kind::filter, line);
            f->name = expect_name();
            while (skip_op(".")) f->name += "." + expect_name();
            if (!is_known_filter(f->name)) fail(ErrorKind::format, "unknown filter '" + f->name + "'", line);
            f->args.push_back(std::move(input));
            if (is_op("(")) parse_call_args(*f);
            input = std::move(f);
        } while (!single && is_op("|"));
        return input;
    }

    ExprPtr parse_test(ExprPtr subject) {
        const int line = cur().line;
        advance(); // is
        auto t = make_expr(Expr::Kind::test, line);
        t->negated = skip_name("not");
        if (cur().kind == TokenKind::name) t->name = cur().text;
        else if (cur().kind == TokenKind::op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == ">" ||
                                                 cur().text == "<=" || cur().text == ">="))
            t->name = cur().text;
        else error("expected a test name after 'is', got " + describe_current());
        if (!is_known_test(t->name)) fail(ErrorKind::format, "unknown test '" + t->name + "'", line);
        advance();
        t->args.push_back(std::move(subject));
        if (is_op("(")) {
            parse_call_args(*t);
        } else if ((cur().kind == TokenKind::name || cur().kind == TokenKind::string || cur().kind == TokenKind::integer ||
                    cur().kind == TokenKind::floating || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and") && !is_name("if") && !is_name("is")) {
            t->args.push_back(parse_postfix(parse_primary())); // "x is divisibleby 3", "x is sameas none"
        }
        return t;
    }
};

} // namespace

Body parse_template(std::string_view source, int max_parse_depth) {
    return Parser(tokenize_template(source, max_parse_depth), max_parse_depth).run();
}

} // namespace winnow::jinja
