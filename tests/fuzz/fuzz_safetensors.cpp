// A single safetensors file: the bytes as model.safetensors -> SafetensorsFile::open; then the same file next to a
// valid tiny llama config.json -> LoadedModel::load (the tensor-name mapping and shape checks).
#include "fuzz_util.h"
#include "tiny_model.h"
#include "io/safetensors.h"
#include "model/model.h"

using namespace winnow;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const auto dir = [] {
        const auto d = fuzz::fresh_dir("st");
        fuzz::write_file(d / "config.json", fuzz::kTinyLlamaConfig);
        return d;
    }();
    const auto path = (dir / "model.safetensors").string();
    fuzz::write_file(path, fuzz::as_view(data, size));
    fuzz::expect_only_winnow_errors([&] {
        auto f = io::SafetensorsFile::open(path);
        for (const auto& [name, t] : f->tensors()) (void)t.n_elements();
    });
    fuzz::expect_only_winnow_errors([&] { (void)LoadedModel::load(path); });
    fuzz::expect_only_winnow_errors([&] { (void)LoadedModel::load(dir.string()); });
    return 0;
}
