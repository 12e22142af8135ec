// Chat-template rendering (winnow renders ChatML templates only): the input is the Jinja template, then (after
// fuzz::kFileSep) the system message, then the user message.
#include "fuzz_util.h"
#include "decode/generator.h"

using namespace winnow;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const auto parts = fuzz::split(fuzz::as_view(data, size), fuzz::kFileSep, 3);
    const std::string tmpl(parts[0]), system(parts.size() > 1 ? parts[1] : ""), user(parts.size() > 2 ? parts[2] : "hi");
    fuzz::expect_only_winnow_errors([&] { (void)apply_chat_template(tmpl, system, user); });
    return 0;
}
