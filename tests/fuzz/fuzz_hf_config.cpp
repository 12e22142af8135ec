// HF config.json: the bytes as config.json next to a fixed valid tiny llama model.safetensors (written by the harness
// itself: tiny_model.h) -> LoadedModel::load(dir), which reads the config before it maps the tensors.
#include "fuzz_util.h"
#include "tiny_model.h"
#include "model/model.h"

using namespace winnow;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const auto dir = [] {
        const auto d = fuzz::fresh_dir("config");
        fuzz::write_file(d / "model.safetensors", fuzz::tiny_llama_safetensors());
        return d;
    }();
    fuzz::write_file(dir / "config.json", fuzz::as_view(data, size));
    fuzz::expect_only_winnow_errors([&] {
        auto m = LoadedModel::load(dir.string());
        m->config().validate("fuzz");
    });
    return 0;
}
