// Streaming: pieces shown to the user are whole UTF-8 characters and never the start of a stop string.
#include <gtest/gtest.h>

#include "decode/generator.h"
#include "winnow/error.h"

namespace {

using winnow::StreamBuffer;

TEST(StreamBuffer, HoldsBackPartialUtf8) {
    StreamBuffer b({});
    const std::string llama = "\xf0\x9f\xa6\x99"; // U+1F999, four bytes arriving in two tokens
    EXPECT_EQ(b.push("a" + llama.substr(0, 2)), "a");
    EXPECT_EQ(b.push(llama.substr(2)), llama);
    EXPECT_EQ(b.flush(), "");
}

TEST(StreamBuffer, StopStringAcrossPieces) {
    StreamBuffer b({"\nUser:"});
    EXPECT_EQ(b.push("Hello"), "Hello");
    EXPECT_EQ(b.push("\nUs"), ""); // could be the stop string: held back
    EXPECT_EQ(b.push("er: hi"), "");
    EXPECT_TRUE(b.stopped());
    EXPECT_EQ(b.text(), "Hello");
}

TEST(StreamBuffer, FalseAlarmIsReleased) {
    StreamBuffer b({"STOP"});
    EXPECT_EQ(b.push("ST"), "");
    EXPECT_EQ(b.push("ART"), "START");
    EXPECT_FALSE(b.stopped());
}

TEST(StreamBuffer, FlushReleasesHeldTail) {
    StreamBuffer b({"STOP"});
    EXPECT_EQ(b.push("x ST"), "x ");
    EXPECT_EQ(b.flush(), "ST");
    EXPECT_EQ(b.text(), "x ST");
}

// apply_chat_template (one user turn) renders the model's own template: SmolLM2's ChatML with its default system prompt
TEST(ChatTemplate, OneTurnWrapperUsesTheTemplatesOwnDefaultSystem) {
    const std::string smollm2 =
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are helpful<|im_end|>\\n' }}"
        "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    EXPECT_EQ(winnow::apply_chat_template(smollm2, "", "Hi"),
              "<|im_start|>system\nYou are helpful<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_EQ(winnow::apply_chat_template(smollm2, "Be brief", "Hi"),
              "<|im_start|>system\nBe brief<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    // a Llama-2 style template prints the BOS string it is given
    const winnow::ChatTemplate llama2{"{{ bos_token }}[INST] {{ messages[-1]['content'] }} [/INST]", "<s>", "</s>", ""};
    EXPECT_EQ(winnow::apply_chat_template(llama2, "", "Hi"), "<s>[INST] Hi [/INST]");
    EXPECT_THROW(winnow::apply_chat_template("{% if %}", "", "Hi"), winnow::Error);
    EXPECT_THROW(winnow::apply_chat_template("", "", "Hi"), winnow::Error);
}

} // namespace
