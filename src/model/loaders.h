#pragma once
// Map a file format's tensor names and metadata onto the canonical ModelConfig + Weights.
#include "model/model.h"

namespace winnow {

struct GgufLoader {
    LoadedModel& m;
    void load();
};

struct SafetensorsLoader {
    LoadedModel& m;
    void load();
};

} // namespace winnow
