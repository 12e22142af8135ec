// Chat-template rendering (src/chat, a Jinja interpreter for the templates model files carry): the whole input is the
// template, rendered over a fixed conversation with and without the generation prompt. Any input may only end in
// winnow::Error; the engine's bounds (output, work, nesting) keep every render within libFuzzer's time and memory.
#include "fuzz_util.h"
#include "chat/chat_template.h"

using namespace winnow;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::vector<ChatMessage> conversation = {
        {"system", "Be brief."}, {"user", "Hi <|im_end|> {{ x }}"}, {"assistant", " Hello! "}, {"user", "caf\xc3\xa9 \xff"}};
    const ChatTemplate t{std::string(fuzz::as_view(data, size)), "<s>", "</s>"};
    fuzz::expect_only_winnow_errors([&] { (void)render_chat(t, conversation, true); });
    fuzz::expect_only_winnow_errors([&] { (void)render_chat(t, {}, false); });
    return 0;
}
