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

TEST(ChatTemplate, ChatMLWithTemplateDefaultSystem) {
    const std::string tmpl = "{{ '<|im_start|>system\nYou are helpful<|im_end|>\n' }}{{'<|im_start|>' + message['role'] }}";
    EXPECT_EQ(winnow::apply_chat_template(tmpl, "", "Hi"),
              "<|im_start|>system\nYou are helpful<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_EQ(winnow::apply_chat_template(tmpl, "Be brief", "Hi"),
              "<|im_start|>system\nBe brief<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_THROW(winnow::apply_chat_template("{{ bos_token }}[INST]", "", "Hi"), winnow::Error);
}

} // namespace
