#pragma once
// Where the GPU tests find their inputs. On the GPU machine the fixtures and the model travel in other folders:
// WINNOW_FIXTURE_DIR / WINNOW_DEFAULT_MODEL in the environment override the build's paths.
#include <cstdlib>
#include <string>

namespace winnow::gpu_test {

inline std::string fixture(const std::string& name) {
    const char* dir = std::getenv("WINNOW_FIXTURE_DIR");
    return std::string(dir ? dir : WINNOW_FIXTURE_DIR) + "/" + name;
}

inline std::string default_model() {
    const char* m = std::getenv("WINNOW_DEFAULT_MODEL");
    return m ? m : WINNOW_DEFAULT_MODEL;
}

} // namespace winnow::gpu_test
