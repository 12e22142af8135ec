// HF tokenizer files: the input is tokenizer.json, then (after fuzz::kFileSep) tokenizer_config.json when present ->
// Tokenizer::from_hf_dir(dir) (with a short encode/decode when it loads) and the checkpoint's chat template.
#include <fstream>

#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "decode/generator.h"
#include "tokenizer/tokenizer.h"

using namespace winnow;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const auto parts = fuzz::split(fuzz::as_view(data, size), fuzz::kFileSep, 2);
    const auto dir = fuzz::fresh_dir("tokenizer");
    fuzz::write_file(dir / "tokenizer.json", parts[0]);
    if (parts.size() > 1) fuzz::write_file(dir / "tokenizer_config.json", parts[1]);
    fuzz::expect_only_winnow_errors([&] {
        auto tok = Tokenizer::from_hf_dir(dir.string());
        const auto ids = tok->encode("Hello world! <|endoftext|> 123 \xe2\x82\xac", tok->add_bos_default(), true);
        for (int32_t id : ids)
            if (id < 0 || id >= tok->n_vocab()) __builtin_trap(); // an id outside the vocabulary would index past the embeddings
        (void)tok->decode(ids, true);
        for (int32_t id : {0, tok->n_vocab() - 1, tok->bos(), tok->eos()})
            if (id >= 0 && id < tok->n_vocab()) (void)tok->token_to_piece(id, true), (void)tok->is_eog(id);
        (void)tok->name();
    });
    return 0;
}
