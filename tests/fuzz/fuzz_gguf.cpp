// GGUF: the bytes as a .gguf file -> GgufFile::open and every typed accessor on every key, then the whole model
// load (GgufLoader), the GGUF tokenizer (with a short encode/decode when it loads) and the chat template.
#include "fuzz_util.h"
#include "decode/generator.h"
#include "io/gguf.h"
#include "model/model.h"
#include "tokenizer/model_tokenizer.h"
#include "tokenizer/tokenizer.h"

using namespace winnow;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const auto path = (fuzz::scratch_dir() / "model.gguf").string();
    fuzz::write_file(path, fuzz::as_view(data, size));
    fuzz::expect_only_winnow_errors([&] {
        auto f = io::GgufFile::open(path);
        for (const auto& kv : f->metadata()) {
            const std::string& key = kv.first;
            fuzz::expect_only_winnow_errors([&] { (void)f->get_uint(key); });
            fuzz::expect_only_winnow_errors([&] { (void)f->get_float(key); });
            fuzz::expect_only_winnow_errors([&] { (void)f->get_bool(key); });
            fuzz::expect_only_winnow_errors([&] { (void)f->get_string(key); });
            fuzz::expect_only_winnow_errors([&] { (void)f->get_string_array(key); });
            fuzz::expect_only_winnow_errors([&] { (void)f->get_float_array(key); });
            fuzz::expect_only_winnow_errors([&] { (void)f->get_int_array(key); });
        }
        for (const auto& t : f->tensors()) (void)f->find_tensor(t.name);
        fuzz::expect_only_winnow_errors([&] {
            auto tok = Tokenizer::from_gguf(*f);
            const auto ids = tok->encode("Hello world! <|endoftext|> 123 \xe2\x82\xac", true, true);
            for (int32_t id : ids)
                if (id < 0 || id >= tok->n_vocab()) __builtin_trap(); // an id outside the vocabulary would index past the embeddings
            (void)tok->decode(ids, true);
            for (int32_t id : {0, tok->n_vocab() - 1, tok->bos(), tok->eos()})
                if (id >= 0 && id < tok->n_vocab()) (void)tok->token_to_piece(id, true), (void)tok->is_eog(id);
        });
    });
    fuzz::expect_only_winnow_errors([&] {
        auto m = LoadedModel::load(path);
        (void)m->matrix_type_counts();
        (void)m->matrix_bytes_per_token();
        const std::string tmpl = load_chat_template(*m);
        fuzz::expect_only_winnow_errors([&] { (void)apply_chat_template(tmpl, "", "hi"); });
    });
    return 0;
}
