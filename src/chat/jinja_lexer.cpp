#include "chat/jinja_lexer.h"

#include <cerrno>
#include <cstdlib>

#include "chat/jinja_limits.h"

namespace winnow::jinja {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

std::string normalize_newlines(std::string_view source) {
    std::string s;
    s.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
        if (source[i] == '\r') {
            s += '\n';
            if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
        } else {
            s += source[i];
        }
    }
    if (!s.empty() && s.back() == '\n') s.pop_back(); // keep_trailing_newline=False
    return s;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) out += static_cast<char>(cp);
    else if (cp < 0x800) { out += static_cast<char>(0xc0 | (cp >> 6)); out += static_cast<char>(0x80 | (cp & 0x3f)); }
    else if (cp < 0x10000) {
        out += static_cast<char>(0xe0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
        out += static_cast<char>(0xf0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    }
}

class Lexer {
public:
    Lexer(std::string_view source, int max_depth) : src_(normalize_newlines(source)), max_depth_(max_depth) {}

    std::vector<Token> run() {
        bool line_starting = true; // the previous tag's match ended a line (lstrip_blocks also applies at the very start)
        while (pos_ < src_.size()) {
            const size_t start = find_tag(pos_);
            std::string text = src_.substr(pos_, start == std::string::npos ? std::string::npos : start - pos_);
            if (start == std::string::npos) {
                emit_text(std::move(text));
                pos_ = src_.size();
                break;
            }
            const char kind = src_[start + 1];
            const char sign = start + 2 < src_.size() && (src_[start + 2] == '-' || src_[start + 2] == '+') ? src_[start + 2] : 0;
            const int text_newlines = count_newlines(text);
            if (sign == '-') {
                while (!text.empty() && is_space(text.back())) text.pop_back();
            } else if (sign != '+' && kind != '{') { // lstrip_blocks, for block and comment tags
                const size_t nl = text.rfind('\n');
                const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
                if ((l_pos > 0 || line_starting) && text.find_first_not_of(" \t", l_pos) == std::string::npos) text.resize(l_pos);
            }
            emit_text(std::move(text));
            line_ += text_newlines;
            pos_ = start + 2 + (sign ? 1 : 0);
            if (kind == '#') line_starting = skip_comment();
            else if (kind == '%' && is_raw_block()) line_starting = read_raw();
            else line_starting = read_tag(kind == '{');
        }
        tokens_.push_back(Token{TokenKind::end, "", 0, 0, line_});
        return std::move(tokens_);
    }

private:
    std::string src_;
    int max_depth_;
    size_t pos_ = 0;
    int line_ = 1;
    std::vector<Token> tokens_;

    [[noreturn]] void error(const std::string& what) const { fail(ErrorKind::format, what, line_); }

    static int count_newlines(std::string_view s) {
        int n = 0;
        for (char c : s) n += c == '\n';
        return n;
    }

    size_t find_tag(size_t from) const {
        for (size_t i = src_.find('{', from); i != std::string::npos && i + 1 < src_.size(); i = src_.find('{', i + 1))
            if (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#') return i;
        return std::string::npos;
    }

    void emit_text(std::string text) {
        if (!text.empty()) tokens_.push_back(Token{TokenKind::text, std::move(text), 0, 0, line_});
    }

    // After a closing delimiter: "-" strips all whitespace, else trim_blocks drops one newline (block/comment tags;
    // "+%}" keeps it). Returns whether the consumed text ended a line.
    bool after_close(bool strip, bool trim) {
        const size_t before = pos_;
        if (strip) {
            while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
        } else if (trim && pos_ < src_.size() && src_[pos_] == '\n') {
            ++pos_;
        }
        line_ += count_newlines(std::string_view(src_).substr(before, pos_ - before));
        return pos_ > before ? src_[pos_ - 1] == '\n' : false;
    }

    bool skip_comment() {
        const size_t end = src_.find("#}", pos_);
        if (end == std::string::npos) error("unclosed comment (no '#}')");
        const bool strip = end > pos_ && src_[end - 1] == '-';
        const bool keep = end > pos_ && src_[end - 1] == '+';
        line_ += count_newlines(std::string_view(src_).substr(pos_, end - pos_));
        pos_ = end + 2;
        return after_close(strip, !keep);
    }

    // {% raw %} ... {% endraw %}: the text between is output as it is.
    bool is_raw_block() const {
        size_t p = pos_;
        while (p < src_.size() && is_space(src_[p])) ++p;
        if (src_.compare(p, 3, "raw") != 0 || (p + 3 < src_.size() && is_name_char(src_[p + 3]))) return false;
        return true;
    }

    bool read_raw() {
        size_t p = src_.find("raw", pos_) + 3;
        while (p < src_.size() && is_space(src_[p])) ++p;
        bool strip = false;
        if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) strip = src_[p++] == '-';
        if (src_.compare(p, 2, "%}") != 0) error("malformed raw tag");
        pos_ = p + 2;
        after_close(strip, true);
        // the closing tag: {%[-+]? endraw [-+]?%}
        for (size_t search = pos_;;) {
            const size_t open = src_.find("{%", search);
            if (open == std::string::npos) error("unclosed raw block (no '{% endraw %}')");
            size_t q = open + 2;
            const char sign = q < src_.size() && (src_[q] == '-' || src_[q] == '+') ? src_[q] : 0;
            if (sign) ++q;
            while (q < src_.size() && is_space(src_[q])) ++q;
            if (src_.compare(q, 6, "endraw") != 0) { search = open + 2; continue; }
            q += 6;
            while (q < src_.size() && is_space(src_[q])) ++q;
            bool close_strip = false, close_keep = false;
            if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) { close_strip = src_[q] == '-'; close_keep = src_[q] == '+'; ++q; }
            if (src_.compare(q, 2, "%}") != 0) error("malformed endraw tag");
            std::string text = src_.substr(pos_, open - pos_);
            const int newlines = count_newlines(src_.substr(pos_, q - pos_));
            if (sign == '-') while (!text.empty() && is_space(text.back())) text.pop_back();
            emit_text(std::move(text));
            line_ += newlines;
            pos_ = q + 2;
            return after_close(close_strip, !close_keep);
        }
    }

    // The tokens of one {{ ... }} or {% ... %} tag, up to and including its closing delimiter.
    bool read_tag(bool print) {
        const int open_line = line_;
        tokens_.push_back(Token{print ? TokenKind::print_begin : TokenKind::block_begin, "", 0, 0, line_});
        std::vector<char> brackets; // the closing delimiter only counts when brackets are balanced, as in jinja2
        while (true) {
            while (pos_ < src_.size() && is_space(src_[pos_])) line_ += src_[pos_++] == '\n';
            if (pos_ >= src_.size())
                fail(ErrorKind::format, std::string("unclosed tag (no '") + (print ? "}}" : "%}") + "')", open_line);
            if (brackets.empty()) {
                const std::string_view rest = std::string_view(src_).substr(pos_);
                const char* close = print ? "}}" : "%}";
                if (rest.substr(0, 1) == "-" && rest.substr(1, 2) == close) {
                    pos_ += 3;
                    tokens_.push_back(Token{print ? TokenKind::print_end : TokenKind::block_end, "", 0, 0, line_});
                    return after_close(true, false);
                }
                if (!print && rest.substr(0, 3) == "+%}") {
                    pos_ += 3;
                    tokens_.push_back(Token{TokenKind::block_end, "", 0, 0, line_});
                    return false;
                }
                if (rest.substr(0, 2) == close) {
                    pos_ += 2;
                    tokens_.push_back(Token{print ? TokenKind::print_end : TokenKind::block_end, "", 0, 0, line_});
                    return after_close(false, !print);
                }
            }
            read_token(brackets);
        }
    }

    void read_token(std::vector<char>& brackets) {
        const char c = src_[pos_];
        if (c == '\'' || c == '"') return read_string();
        if (is_digit(c)) return read_number();
        if (is_name_start(c)) {
            const size_t start = pos_;
            while (pos_ < src_.size() && is_name_char(src_[pos_])) ++pos_;
            tokens_.push_back(Token{TokenKind::name, src_.substr(start, pos_ - start), 0, 0, line_});
            return;
        }
        static const char* const two_char_ops[] = {"//", "**", "==", "!=", ">=", "<="};
        for (const char* op : two_char_ops)
            if (src_.compare(pos_, 2, op) == 0) {
                tokens_.push_back(Token{TokenKind::op, op, 0, 0, line_});
                pos_ += 2;
                return;
            }
        if (std::string_view("+-/*%~[](){}<>=.:|,;").find(c) == std::string_view::npos)
            error(std::string("unexpected character '") + c + "' in a tag");
        if (c == '(' || c == '[' || c == '{') {
            brackets.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
            if (static_cast<int>(brackets.size()) > max_depth_) error("brackets nested deeper than " + std::to_string(max_depth_));
        } else if (c == ')' || c == ']' || c == '}') {
            if (brackets.empty()) error(std::string("unexpected '") + c + "'");
            if (brackets.back() != c) error(std::string("unexpected '") + c + "', expected '" + brackets.back() + "'");
            brackets.pop_back();
        }
        tokens_.push_back(Token{TokenKind::op, std::string(1, c), 0, 0, line_});
        ++pos_;
    }

    void read_number() {
        const size_t start = pos_;
        while (pos_ < src_.size() && is_digit(src_[pos_])) ++pos_;
        // after "x." a number is an index (foo.0.1 is foo[0][1]), never a float
        const bool after_dot = !tokens_.empty() && tokens_.back().kind == TokenKind::op && tokens_.back().text == ".";
        bool is_float = false;
        if (!after_dot && pos_ + 1 < src_.size() && src_[pos_] == '.' && is_digit(src_[pos_ + 1])) {
            is_float = true;
            ++pos_;
            while (pos_ < src_.size() && is_digit(src_[pos_])) ++pos_;
        }
        if (!after_dot && pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
            size_t p = pos_ + 1;
            if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
            if (p < src_.size() && is_digit(src_[p])) {
                is_float = true;
                pos_ = p;
                while (pos_ < src_.size() && is_digit(src_[pos_])) ++pos_;
            }
        }
        const std::string text = src_.substr(start, pos_ - start);
        Token t{is_float ? TokenKind::floating : TokenKind::integer, text, 0, 0, line_};
        errno = 0;
        if (is_float) {
            t.floating = std::strtod(text.c_str(), nullptr);
        } else {
            t.integer = std::strtoll(text.c_str(), nullptr, 10);
            if (errno == ERANGE) error("integer literal " + text + " is too large");
        }
        tokens_.push_back(std::move(t));
    }

    // A Python-style string literal: \n \t \r \\ \' \" \xNN \uNNNN \UNNNNNNNN and octal escapes are decoded; an
    // unknown escape keeps its backslash, as in Python.
    void read_string() {
        const char quote = src_[pos_++];
        const int start_line = line_;
        std::string out;
        while (true) {
            if (pos_ >= src_.size()) fail(ErrorKind::format, "unterminated string literal", start_line);
            const char c = src_[pos_++];
            if (c == quote) break;
            if (c == '\n') ++line_;
            if (c != '\\') { out += c; continue; }
            if (pos_ >= src_.size()) fail(ErrorKind::format, "unterminated string literal", start_line);
            const char e = src_[pos_++];
            switch (e) {
            case 'n': out += '\n'; break;
            case 't': out += '\t'; break;
            case 'r': out += '\r'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'v': out += '\v'; break;
            case 'a': out += '\a'; break;
            case '\\': out += '\\'; break;
            case '\'': out += '\''; break;
            case '"': out += '"'; break;
            case '\n': ++line_; break; // a line continuation
            case 'x': case 'u': case 'U': {
                const int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                if (pos_ + n > src_.size()) error(std::string("truncated \\") + e + " escape in a string literal");
                uint32_t cp = 0;
                for (int k = 0; k < n; ++k) {
                    const char h = src_[pos_ + k];
                    const int v = is_digit(h) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
                    if (v < 0) error(std::string("truncated \\") + e + " escape in a string literal");
                    cp = cp * 16 + static_cast<uint32_t>(v);
                }
                if (cp > 0x10ffff) error("\\U escape beyond U+10FFFF in a string literal");
                pos_ += n;
                append_utf8(out, cp);
                break;
            }
            case 'N': error("\\N{...} escapes are not supported");
            default:
                if (e >= '0' && e <= '7') {
                    uint32_t cp = static_cast<uint32_t>(e - '0');
                    for (int k = 0; k < 2 && pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '7'; ++k) cp = cp * 8 + static_cast<uint32_t>(src_[pos_++] - '0');
                    append_utf8(out, cp);
                } else {
                    out += '\\';
                    out += e;
                }
            }
        }
        tokens_.push_back(Token{TokenKind::string, std::move(out), 0, 0, start_line});
    }
};

} // namespace

std::vector<Token> tokenize_template(std::string_view source, int max_parse_depth) { return Lexer(source, max_parse_depth).run(); }

const char* describe(TokenKind kind) {
    switch (kind) {
    case TokenKind::text: return "template text";
    case TokenKind::print_begin: return "'{{'";
    case TokenKind::print_end: return "'}}'";
    case TokenKind::block_begin: return "'{%'";
    case TokenKind::block_end: return "'%}'";
    case TokenKind::name: return "a name";
    case TokenKind::string: return "a string";
    case TokenKind::integer: return "an integer";
    case TokenKind::floating: return "a float";
    case TokenKind::op: return "an operator";
    case TokenKind::end: return "the end of the template";
    }
    return "?";
}

} // namespace winnow::jinja
