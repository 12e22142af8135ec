// The chat-template engine (src/chat): Jinja expressions, filters, methods, whitespace control, loops, namespaces,
// macros and the errors a hostile or broken template gets. Expected strings are jinja2's output for the same template
// in HF's environment (ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True), loopcontrols); the byte
// for byte comparison with jinja2 over whole model templates is tests/templates.
#include <algorithm>

#include <gtest/gtest.h>

#include "chat/chat_template.h"
#include "chat/jinja_template.h"
#include "decode/generator.h"
#include "winnow/error.h"

namespace {

using winnow::ChatMessage;
using winnow::ChatTemplate;
namespace jinja = winnow::jinja;

const std::vector<ChatMessage> kConversation = {{"system", "S"}, {"user", " hi "}, {"assistant", "A"}};

std::string render(const std::string& source, const jinja::Limits& limits = {}) {
    jinja::List messages;
    for (const auto& m : kConversation) {
        jinja::Dict d;
        d.set(jinja::Value::string("role"), jinja::Value::string(m.role));
        d.set(jinja::Value::string("content"), jinja::Value::string(m.content));
        messages.push_back(jinja::Value::dict(std::move(d)));
    }
    jinja::Dict ctx;
    ctx.set(jinja::Value::string("messages"), jinja::Value::list(std::move(messages)));
    ctx.set(jinja::Value::string("add_generation_prompt"), jinja::Value::boolean(true));
    ctx.set(jinja::Value::string("bos_token"), jinja::Value::string("<s>"));
    ctx.set(jinja::Value::string("eos_token"), jinja::Value::string("</s>"));
    return jinja::Template(source, limits).render(ctx);
}

std::string error_of(const std::string& source, const jinja::Limits& limits = {}) {
    try {
        const std::string out = render(source, limits);
        return "no error; rendered: " + out;
    } catch (const winnow::Error& e) {
        return e.what();
    }
}

TEST(ChatTemplateEngine, Arithmetic) {
    EXPECT_EQ(render("{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 10 / 4 }}|{{ 2 ** 3 ** 2 }}|{{ -2 ** 2 }}"),
              "7|9|3|-4|2|2.5|64|4");
}

TEST(ChatTemplateEngine, OperatorsAndInlineIf) {
    EXPECT_EQ(render("{{ 'a' ~ 1 ~ none }}|{{ 'ab' * 2 }}|{{ [1, 2] + [3] }}|{{ 1 < 2 < 3 }}|{{ 3 > 2 > 2 }}|{{ 'b' in 'abc' }}|"
                     "{{ 'x' not in ['y'] }}|{{ 'y' if false else 'n' }}|{{ 'y' if false }}|"),
              "a1None|abab|[1, 2, 3]|True|False|True|True|n||");
}

TEST(ChatTemplateEngine, LiteralsPrintAsPython) {
    EXPECT_EQ(render("{{ none }}|{{ true }}|{{ 1.0 }}|{{ 1e100 }}|{{ 0.000123 }}|{{ [1, 'two', none] }}|{{ {'a': [1, (2,)]} }}|{{ \"it's\" }}"),
              "None|True|1.0|1e+100|0.000123|[1, 'two', None]|{'a': [1, (2,)]}|it's");
}

TEST(ChatTemplateEngine, AttributesSubscriptsSlices) {
    EXPECT_EQ(render("{{ messages[0].role }}|{{ messages[1]['content'] }}|{{ messages[1:]|length }}|{{ messages[-1].content }}|"
                     "{{ messages[::-1]|map(attribute='role')|join(',') }}|{{ 'hello'[1:-1] }}|{{ messages[5] is defined }}"),
              "system| hi |2|A|assistant,user,system|ell|False");
}

TEST(ChatTemplateEngine, Filters) {
    EXPECT_EQ(render("{{ ' x '|trim }}|{{ [1,2,3]|length }}|{{ 'a'|upper }}{{ 'B'|lower }}|{{ {'k': '\xc3\xa9', 'n': [1, 2.5, none, true]}|tojson }}|"
                     "{{ x|default('d') }}|{{ [4, 5]|first }}{{ [4, 5]|last }}|{{ ['a', 'b']|join('-') }}|{{ 'aaa'|replace('a', 'b') }}|"
                     "{{ 12|string }}|{{ 'ab'|list }}|{{ {'a': 1}|items|list }}"),
              "x|3|Ab|{\"k\": \"\xc3\xa9\", \"n\": [1, 2.5, null, true]}|d|45|a-b|bbb|12|['a', 'b']|[('a', 1)]");
    EXPECT_EQ(render("{{ messages|selectattr('role', 'equalto', 'user')|list|length }}|{{ [3, 1, 2]|sort|join }}|{{ [1, 2, 3, 4]|select('even')|list }}|"
                     "{{ 'a\\nb'|indent(2) }}|{{ [1, 2, 3]|sum }}"),
              "1|123|[2, 4]|a\n  b|6");
    // jinja2 filters a false input (none, []) to nothing without looking at the arguments: functionary's template runs
    // `tools | selectattr("type", "equalto", "code_interpreter")` with tools none
    EXPECT_EQ(render("{{ none|selectattr('type', 'equalto', 'x')|list|length }}|{{ none|rejectattr('type')|list }}|{{ none|select('nosuchtest')|list }}|"
                     "{{ []|reject('odd')|list }}|{{ none|map(attribute='a')|list }}|{{ none|map('nosuchfilter')|list }}"),
              "0|[]|[]|[]|[]|[]");
}

TEST(ChatTemplateEngine, StringAndDictMethods) {
    EXPECT_EQ(render("{{ '  a b '.strip() }}|{{ 'xax'.lstrip('x') }}|{{ 'xax'.rstrip('x') }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith('c') }}|"
                     "{{ 'a b'.split() }}|{{ 'a,b'.split(',') }}|{{ 'ab'.upper() }}|{{ 'AB'.lower() }}|{{ 'ab cd'.title() }}|{{ 'abc'.replace('b', 'X') }}|"
                     "{{ messages[0].get('role') }}|{{ messages[0].get('x', 'dflt') }}|{% for k, v in messages[0].items() %}{{ k }}={{ v }},{% endfor %}"),
              "a b|ax|xa|True|True|['a', 'b']|['a', 'b']|AB|ab|Ab Cd|aXc|system|dflt|role=system,content=S,");
}

TEST(ChatTemplateEngine, Tests) {
    EXPECT_EQ(render("{{ x is defined }}|{{ x is undefined }}|{{ none is none }}|{{ 'a' is string }}|{{ 1 is number }}|{{ 3 is odd }}|"
                     "{{ 4 is divisibleby 2 }}|{{ {} is mapping }}|{{ 'a' is not string }}"),
              "False|True|True|True|True|True|True|True|False");
}

TEST(ChatTemplateEngine, LoopVariables) {
    EXPECT_EQ(render("{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }} {% endfor %}"),
              "10TrueFalse3 21FalseFalse3 32FalseTrue3 ");
    EXPECT_EQ(render("{% for m in [] %}x{% else %}empty{% endfor %}|{% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}"
                     "{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}|{% for m in messages if m.role != 'system' %}{{ loop.index }}{{ m.role }}{% endfor %}"),
              "empty|02|1user2assistant");
}

TEST(ChatTemplateEngine, NamespaceAndScopes) {
    // a plain set inside a loop does not leak out of it; a namespace attribute does
    EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}|"
                     "{% set x = 1 %}{% for m in messages %}{% set x = 2 %}{% endfor %}{{ x }}"),
              "3|1");
    // each iteration is its own scope: what one sets, the next does not see
    EXPECT_EQ(render("{% set x = 0 %}{% for i in [1, 2] %}{{ x }}{% set x = i %}{% endfor %}{{ x }}|{% for i in [1, 2] %}{{ y|default('u') }}{% set y = i %}{% endfor %}"),
              "000|uu");
    // a macro sees the template's top-level variables
    EXPECT_EQ(render("{% macro m() %}{{ top }}{% endmacro %}{% set top = 'T' %}{{ m() }}"), "T");
}

TEST(ChatTemplateEngine, MacrosBlockSetFilterRaw) {
    EXPECT_EQ(render("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', punct='?') }}"), "Hi A! Hi B?");
    EXPECT_EQ(render("{% set greeting %}hello {{ 'world' }}{% endset %}{{ greeting|upper }}|{% filter upper %}abc{% endfilter %}|"
                     "{% raw %}{{ kept }}{% endraw %}"),
              "HELLO WORLD|ABC|{{ kept }}");
    // HF's {% generation %} marks assistant text (for training masks): rendering keeps its body
    EXPECT_EQ(render("{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}{% endfor %}"), "S hi A");
}

TEST(ChatTemplateEngine, WhitespaceControl) {
    // trim_blocks drops the newline after a block tag, lstrip_blocks the indentation before one
    EXPECT_EQ(render("{% if true %}\n  yes\n{% endif %}\nend"), "  yes\nend");
    EXPECT_EQ(render("  {% if true %}\nA\n  {% endif %}\nB {{- '  C  ' -}} D\n{%- if true %} E{% endif %}\n{# comment #}\nF"), "A\nB  C  D EF");
    EXPECT_EQ(render("{%+ if true %}x{% endif +%}\ny"), "x\ny");
    EXPECT_EQ(render("text\n"), "text"); // keep_trailing_newline=False
}

TEST(ChatTemplateEngine, ErrorsNameTheProblemAndLine) {
    EXPECT_EQ(error_of("line 1\nline 2\n{{ messages|foo }}"), "chat template: unknown filter 'foo' at line 3");
    EXPECT_EQ(error_of("{% for m in messages %}\n{{ m.role }}"), "chat template: unclosed 'for' block opened at line 1 (expected 'endfor' or 'else') at line 2");
    EXPECT_EQ(error_of("{% if x %}{% endfor %}"), "chat template: unexpected 'endfor' (expected 'elif' or 'else' or 'endif') at line 1");
    EXPECT_EQ(error_of("{% endif %}"), "chat template: unexpected 'endif' at line 1");
    EXPECT_EQ(error_of("{% include 'x' %}"), "chat template: the 'include' tag is not supported at line 1");
    EXPECT_EQ(error_of("{% frobnicate %}"), "chat template: unknown tag 'frobnicate' at line 1");
    EXPECT_EQ(error_of("{{ 'a' + 1 }}"), "chat template: unsupported operand types for +: 'str' and 'int' at line 1");
    EXPECT_EQ(error_of("{{ foo.bar }}"), "chat template: 'foo' is undefined at line 1");
    EXPECT_EQ(error_of("{{ x is frob }}"), "chat template: unknown test 'frob' at line 1");
    EXPECT_EQ(error_of("{{ 'unterminated }}"), "chat template: unterminated string literal at line 1");
    EXPECT_EQ(error_of("{{ 1 "), "chat template: unclosed tag (no '}}') at line 1");
    EXPECT_EQ(error_of("{% break %}"), "chat template: 'break' outside a for loop at line 1");
    EXPECT_EQ(error_of("\n{{ raise_exception('Roles must alternate') }}"), "chat template: Roles must alternate (raise_exception at line 2)");
    EXPECT_EQ(error_of("{% set x = 1 %}{% set x.y = 2 %}"), "chat template: cannot assign attribute on non-namespace object 'x' at line 1");
    EXPECT_EQ(error_of("{{ 9223372036854775807 + 1 }}"), "chat template: integer overflow at line 1");
}

TEST(ChatTemplateEngine, RunawayTemplatesAreBounded) {
    EXPECT_EQ(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
              "chat template: macro calls nested deeper than 32 (runaway recursion?) at line 1");
    jinja::Limits small;
    small.max_output = 100;
    EXPECT_EQ(error_of("{% for i in range(1000) %}xxxxxxxxxx{% endfor %}", small), "chat template: the rendered text exceeds 100 bytes at line 1");
    EXPECT_EQ(error_of("{{ 'x' * 1000 }}", small), "chat template: the template builds a value over 100 bytes at line 1");
    EXPECT_EQ(error_of("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"),
              "chat template: the template does too much work (over 5000000 steps) at line 1");
    EXPECT_EQ(error_of("{{ " + std::string(300, '(') + "1" + std::string(300, ')') + " }}"), "chat template: brackets nested deeper than 100 at line 1");
    std::string deep;
    for (int i = 0; i < 300; ++i) deep += "{% if true %}";
    EXPECT_EQ(error_of(deep), "chat template: the template nests deeper than 100 levels at line 1");
    EXPECT_EQ(error_of("{% set ns = namespace(l=[]) %}{% for i in range(100) %}{% set ns.l = [ns.l] %}{% endfor %}"),
              "chat template: a value is nested deeper than 64 levels");
}

TEST(ChatTemplateEngine, StrftimeNowFormatsTheLocalDate) {
    // transformers' strftime_now (Llama-3.1-style templates print today's date): datetime.now().strftime(format)
    const std::string year = render("{{ strftime_now('%Y') }}");
    ASSERT_EQ(year.size(), 4u);
    EXPECT_TRUE(std::all_of(year.begin(), year.end(), [](char c) { return c >= '0' && c <= '9'; })) << year;
    EXPECT_EQ(render("{{ strftime_now('') }}"), "");
    EXPECT_EQ(error_of("{{ strftime_now(5) }}"), "chat template: strftime_now(): argument 'format' must be a string, not int at line 1");
}

TEST(ChatTemplate, RenderChatPassesHfContext) {
    const ChatTemplate t{"{{ bos_token }}{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}{{ eos_token }}"
                         "{% if add_generation_prompt %}>{% endif %}{{ tools }}",
                         "<s>", "</s>", ""};
    EXPECT_EQ(winnow::render_chat(t, {{"user", "a"}, {"assistant", "b"}}, true), "<s>[user:a][assistant:b]</s>>None");
    EXPECT_EQ(winnow::render_chat(t, {{"user", "a"}}, false), "<s>[user:a]</s>None");
    // without BOS/EOS strings the names are undefined and print as ""
    EXPECT_EQ(winnow::render_chat(ChatTemplate{t.source, "", "", ""}, {{"user", "a"}}, false), "[user:a]None");
    try {
        winnow::render_chat(ChatTemplate{}, {{"user", "a"}}, true);
        FAIL() << "no template must be an error";
    } catch (const winnow::Error& e) {
        EXPECT_STREQ(e.what(), "chat template: the model carries none (no tokenizer.chat_template)");
    }
}

// More variables from a JSON object (HF apply_chat_template's keyword arguments): JSON values as Python's, and they
// may replace the special tokens, as in transformers; what is not an object, or names the renderer's own variables,
// is refused by name. Expected strings: jinja2 on the same template and variables.
TEST(ChatTemplate, KwargsBecomeTemplateVariables) {
    ChatTemplate t{"{{ bos_token }}{{ enable_thinking is false }}|{{ x }}|{{ x[1].a is none }}|{{ n + 1 }}|{{ f }}|{{ undefined_one is defined }}", "<s>", "</s>",
                   R"({"enable_thinking": false, "x": [1, {"a": null}, "s"], "n": 41, "f": 0.5, "bos_token": "<B>"})"};
    EXPECT_EQ(winnow::render_chat(t, {{"user", "a"}}, true), "<B>True|[1, {'a': None}, 's']|True|42|0.5|False");
    // objects keep their order (Python's json.loads), nested ones too
    t.source = "{{ cfg }}|{% for k in cfg %}{{ k }}{% endfor %}|{{ cfg|tojson }}";
    t.kwargs_json = R"({"cfg": {"b": 1, "a": {"z": 2, "y": 3}}})";
    EXPECT_EQ(winnow::render_chat(t, {{"user", "a"}}, true), R"({'b': 1, 'a': {'z': 2, 'y': 3}}|ba|{"b": 1, "a": {"z": 2, "y": 3}})");
    const ChatTemplate plain{"{{ bos_token }}{{ enable_thinking is defined }}", "<s>", "</s>", "{}"};
    EXPECT_EQ(winnow::render_chat(plain, {{"user", "a"}}, true), "<s>False");
    for (const auto& [bad, message] : std::vector<std::pair<std::string, std::string>>{
             {"[1]", "chat template kwargs: must be a JSON object"},
             {"{\"a\": ", "chat template kwargs: not valid JSON"},
             {R"({"messages": []})", "chat template kwargs: 'messages' is set by the renderer itself"},
             {R"({"add_generation_prompt": false})", "chat template kwargs: 'add_generation_prompt' is set by the renderer itself"}}) {
        t.kwargs_json = bad;
        try {
            winnow::render_chat(t, {{"user", "a"}}, true);
            FAIL() << bad << " must be refused";
        } catch (const winnow::Error& e) {
            EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
        }
        EXPECT_THROW(winnow::check_chat_template_kwargs(bad), winnow::Error);
    }
    EXPECT_NO_THROW(winnow::check_chat_template_kwargs(""));
}

} // namespace
