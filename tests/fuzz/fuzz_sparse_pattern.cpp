// Sparse attention patterns (*.sparse.json from `winnow calibrate-sparse`): SparsePattern::load, then the masks the
// API and the CLI build from it at a few context lengths (shorter than, equal to and beyond the calibrated one), and
// the model check.
#include "fuzz_util.h"
#include "sparse/pattern.h"

using namespace winnow;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const auto path = (fuzz::scratch_dir() / "model.sparse.json").string();
    fuzz::write_file(path, fuzz::as_view(data, size));
    fuzz::expect_only_winnow_errors([&] {
        auto p = sparse::SparsePattern::load(path);
        for (int n_ctx : {1, p.calib_ctx, p.calib_ctx + p.block + 1, 2 * p.calib_ctx + 3}) {
            if (n_ctx <= 0 || n_ctx > 8192) continue;
            for (auto den : {SparseDenominator::standard, SparseDenominator::spion}) {
                const auto masks = p.masks(n_ctx, den);
                for (const auto& m : masks) m.validate(), (void)sparse::SparsePattern::density_of(m);
            }
        }
        ModelConfig c;
        c.n_layer = p.n_layer, c.n_embd = p.n_embd, c.n_head = p.n_head, c.n_vocab = p.n_vocab;
        fuzz::expect_only_winnow_errors([&] { p.check_model(c, path); });
    });
    return 0;
}
