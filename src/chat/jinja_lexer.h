#pragma once
// Splits a template into text and the tokens inside its tags, applying jinja2's whitespace control as HF configures
// it (trim_blocks=True: the first newline after a block or comment tag is dropped; lstrip_blocks=True: spaces and
// tabs before a block or comment tag at the start of a line are dropped; "{%-" / "-%}" (and {{- -}}, {#- -#}) strip
// all whitespace on that side; "{%+" / "+%}" keep it). Newlines are normalised to \n and one trailing newline of the
// template is dropped (keep_trailing_newline=False). Comments produce no tokens.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace winnow::jinja {

enum class TokenKind { text, print_begin, print_end, block_begin, block_end, name, string, integer, floating, op, end };

struct Token {
    TokenKind kind;
    std::string text; // text, name, operator, or a string literal's decoded value
    int64_t integer = 0;
    double floating = 0;
    int line = 1;
};

std::vector<Token> tokenize_template(std::string_view source, int max_parse_depth);

const char* describe(TokenKind kind); // for error messages: "end of print statement", "name", ...

} // namespace winnow::jinja
