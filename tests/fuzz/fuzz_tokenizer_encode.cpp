// Tokenizer encode/decode on arbitrary bytes with the real vocabularies in tests/fixtures/vocab (GPT-2 byte-level BPE
// and llama SentencePiece). Byte 0 chooses the options; the rest is the text to encode, and also, read as int32s, a
// sequence of ids to decode (out-of-range ids must be refused with winnow::Error).
#include <cstring>

#include "fuzz_util.h"
#include "io/gguf.h"
#include "tokenizer/tokenizer.h"

using namespace winnow;

namespace {

struct Vocab {
    std::unique_ptr<io::GgufFile> file;
    std::unique_ptr<Tokenizer> tok;
};

std::vector<Vocab>& vocabs() {
    static std::vector<Vocab> v = [] {
        std::vector<Vocab> out;
        for (const char* name : {"ggml-vocab-gpt-2.gguf", "ggml-vocab-llama-spm.gguf"}) {
            Vocab x;
            x.file = io::GgufFile::open(std::string(WINNOW_SOURCE_DIR) + "/tests/fixtures/vocab/" + name);
            x.tok = Tokenizer::from_gguf(*x.file);
            out.push_back(std::move(x));
        }
        return out;
    }();
    return v;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto& vs = vocabs();
    if (size == 0) return 0;
    const uint8_t flags = data[0];
    const std::string_view text = fuzz::as_view(data + 1, size - 1);
    const auto& v = vs[flags & 1];
    const bool add_bos = flags & 2, parse_special = flags & 4, render_special = flags & 8;
    // Text that is not UTF-8 is refused with winnow::Error; what encodes must give ids inside the vocabulary that
    // decode accepts.
    fuzz::expect_only_winnow_errors([&] {
        const auto ids = v.tok->encode(text, add_bos, parse_special);
        for (int32_t id : ids)
            if (id < 0 || id >= v.tok->n_vocab()) __builtin_trap();
        (void)v.tok->decode(ids, render_special);
    });
    std::vector<int32_t> raw((size - 1) / 4);
    if (!raw.empty()) std::memcpy(raw.data(), data + 1, raw.size() * 4);
    if (flags & 16)
        for (auto& id : raw) id = static_cast<int32_t>(static_cast<uint32_t>(id) % static_cast<uint32_t>(v.tok->n_vocab()));
    fuzz::expect_only_winnow_errors([&] { (void)v.tok->decode(raw, render_special); });
    for (int32_t id : raw) fuzz::expect_only_winnow_errors([&] { (void)v.tok->token_to_piece(id, render_special); });
    return 0;
}
