// ChatSession (decode/chat_session.h) on the tiny model with a ChatML template: the cache keeps the conversation,
// a turn prefills only what is new, and what it holds equals a fresh prefill of the whole conversation.
#include <atomic>
#include <filesystem>

#include <gtest/gtest.h>

#include "chat/chat_template.h"
#include "decode/chat_session.h"
#include "model/model.h"
#include "tokenizer/model_tokenizer.h"

namespace winnow {
namespace {

struct Tiny {
    std::unique_ptr<LoadedModel> model = LoadedModel::load(WINNOW_CHAT_FIXTURE);
    std::unique_ptr<Tokenizer> tok = load_model_tokenizer(*model);
    std::unique_ptr<Backend> backend = make_backend(BackendOptions{});
    ChatTemplate tmpl = load_chat_template_for(*model, *tok);

    ChatSession session(int max_tokens) {
        GenerateOptions opt;
        opt.max_tokens = max_tokens; // greedy: GenerateOptions' defaults
        return ChatSession(*model, *tok, *backend, tmpl, opt);
    }
    std::vector<int32_t> render(const std::vector<ChatMessage>& m) { return encode_chat_prompt(*tok, render_chat(tmpl, m, true)); }
};

TEST(ChatSession, SecondTurnPrefillsOnlyWhatIsNew) {
    Tiny t;
    ChatSession chat = t.session(0); // empty answers: the cache is exactly the rendered prompts
    const ChatTurnStats first = chat.ask("Hi");
    EXPECT_EQ(first.reused, 0);
    EXPECT_EQ(first.prefilled, chat.tokens_in_context());
    const int after_first = chat.tokens_in_context();
    const ChatTurnStats second = chat.ask("Yo");
    ASSERT_EQ(chat.turns().size(), 4u);
    const std::vector<ChatMessage> prompt(chat.turns().begin(), chat.turns().begin() + 3); // without the (empty) answer
    const auto whole = t.render(prompt);
    EXPECT_GT(second.reused, 0);
    EXPECT_LE(second.reused, after_first);
    EXPECT_EQ(second.reused + second.prefilled, static_cast<int>(whole.size()));
    EXPECT_LT(second.prefilled, static_cast<int>(whole.size()) - first.prefilled + 2); // turn 1's prompt is not prefilled again
    // the cache holds exactly the tokens of the whole conversation rendered afresh
    EXPECT_EQ(chat.cached_tokens(), whole);
}

TEST(ChatSession, ContinuingEqualsAFreshPrefill) {
    Tiny t;
    ChatSession a = t.session(6);
    a.ask("Hello there");
    const std::vector<ChatMessage> history = a.turns();
    a.ask("and again");
    ChatSession b = t.session(6);
    b.set_turns(history);
    b.ask("and again");
    EXPECT_EQ(a.turns().back().content, b.turns().back().content); // greedy: the same answer from a reused or a fresh cache
    EXPECT_EQ(a.cached_tokens(), b.cached_tokens());
    EXPECT_GT(a.last_turn().reused, b.last_turn().reused);
}

TEST(ChatSession, ResetKeepsTheSystemMessage) {
    Tiny t;
    ChatSession chat = t.session(2);
    chat.set_system("Be brief.");
    chat.ask("Hi");
    chat.reset();
    EXPECT_TRUE(chat.turns().empty());
    ASSERT_EQ(chat.messages().size(), 1u);
    EXPECT_EQ(chat.messages()[0].role, "system");
    const ChatTurnStats st = chat.ask("Yo");
    EXPECT_GT(st.reused, 0); // the system part is still in the cache
}

TEST(ChatSession, AFullContextLeavesTheConversationAsItWas) {
    Tiny t;
    ChatSession chat = t.session(2);
    chat.ask("Hi");
    const auto turns = chat.turns();
    const int cached = chat.tokens_in_context();
    EXPECT_THROW(chat.ask(std::string(400, 'x')), ContextFull);
    EXPECT_EQ(chat.turns().size(), turns.size());
    EXPECT_EQ(chat.tokens_in_context(), cached);
    chat.reset();
    EXPECT_NO_THROW(chat.ask("Hi"));
}

TEST(ChatSession, CancelStopsTheAnswer) {
    Tiny t;
    ChatSession chat = t.session(-1);
    std::atomic<bool> cancel{true};
    const ChatTurnStats st = chat.ask("Hi", {}, &cancel);
    EXPECT_EQ(st.stop_reason, "interrupted");
    EXPECT_EQ(st.generated, 0);
    int pieces = 0;
    const ChatTurnStats st2 = chat.ask("Yo", [&](std::string_view) { return ++pieces < 3; });
    EXPECT_EQ(st2.stop_reason, "interrupted");
}

TEST(ChatSession, AnswersThatAreNotUtf8StillMakeAConversation) {
    Tiny t;
    ChatSession chat = t.session(8); // the tiny model's answers are random bytes
    chat.ask("Hi");
    EXPECT_NO_THROW(chat.ask("Yo"));
}

} // namespace
} // namespace winnow
