// Head calibration files (*.head.json from `winnow calibrate-head`): HeadCalibrationFile::load, then find/put and
// the model/epsilon check on what it read.
#include "fuzz_util.h"
#include "head/adaptive_head.h"

using namespace winnow;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const auto path = (fuzz::scratch_dir() / "model.head.json").string();
    fuzz::write_file(path, fuzz::as_view(data, size));
    fuzz::expect_only_winnow_errors([&] {
        auto f = head::HeadCalibrationFile::load(path);
        for (const char* algo : {"fast", "faithful"}) (void)f.find(algo, 0.01);
        if (!f.factors.empty()) f.put(f.factors.front());
        f.check_matches(path, "0:0000000000000000", 0.3); // a mismatch is a winnow::Error like any other refusal
    });
    return 0;
}
