// A sharded safetensors checkpoint: the input is model.safetensors.index.json, then (after fuzz::kFileSep) the bytes
// of model-00001-of-00002.safetensors, then those of model-00002-of-00002.safetensors. The directory also holds a
// valid tiny config.json -> SafetensorsModel::open(dir) and LoadedModel::load(dir).
#include "fuzz_util.h"
#include "tiny_model.h"
#include "io/safetensors.h"
#include "model/model.h"

using namespace winnow;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const auto parts = fuzz::split(fuzz::as_view(data, size), fuzz::kFileSep, 3);
    const auto dir = fuzz::fresh_dir("index");
    fuzz::write_file(dir / "config.json", fuzz::kTinyLlamaConfig);
    fuzz::write_file(dir / "model.safetensors.index.json", parts[0]);
    if (parts.size() > 1) fuzz::write_file(dir / "model-00001-of-00002.safetensors", parts[1]);
    if (parts.size() > 2) fuzz::write_file(dir / "model-00002-of-00002.safetensors", parts[2]);
    fuzz::expect_only_winnow_errors([&] {
        auto st = io::SafetensorsModel::open(dir.string());
        for (const auto& [name, t] : st->tensors()) (void)st->find(name);
    });
    fuzz::expect_only_winnow_errors([&] { (void)LoadedModel::load(dir.string()); });
    return 0;
}
