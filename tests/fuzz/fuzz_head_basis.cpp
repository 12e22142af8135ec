// The adaptive head's basis files (*.gguf from `winnow calibrate-head --fit-head-basis`): HeadBasis::load (the GGUF
// reader, then the format's own checks: shapes, finite values, checksum, orthonormality), the model check, and a
// query rotated through what it read.
#include "fuzz_util.h"
#include "head/basis_file.h"
#include "head/rotation.h"

using namespace winnow;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const auto path = (fuzz::scratch_dir() / "model.head-basis.gguf").string();
    fuzz::write_file(path, fuzz::as_view(data, size));
    fuzz::expect_only_winnow_errors([&] {
        const head::HeadBasis b = head::HeadBasis::load(path);
        const std::vector<float> x(static_cast<size_t>(b.rotation.d), 1.0f);
        (void)head::rotate_query(x, b.rotation);
        (void)b.rotation.energy_in_leading(8);
        fuzz::expect_only_winnow_errors([&] { b.check_model(path, "0:0000000000000000", b.rotation.d); });
    });
    return 0;
}
