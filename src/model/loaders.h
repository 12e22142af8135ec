#pragma once
// Map a file format's tensor names and metadata onto the canonical ModelConfig + Weights.
#include "model/model.h"

namespace winnow {

struct GgufLoader {
    Model& m;
    void load();
};

struct SafetensorsLoader {
    Model& m;
    void load();
};

} // namespace winnow
