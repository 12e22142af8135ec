#pragma once
// The op-parity harness (in the manner of llama.cpp's test-backend-ops): every op the decoder calls, on the real
// shapes of SmolLM2-135M and GPT-2 124M and on odd ones, run on a backend and compared with the double-precision
// reference (backend/cpu/reference_ops.h, or exact decoding for the weight formats). The error is llama.cpp's
// normalised mean squared error, NMSE = sum (y - ref)^2 / sum ref^2, against a tolerance per op and type.
// A backend joins by adding one factory to backend_factories().
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace winnow::test {

struct BackendFactory {
    std::string name;
    std::function<std::unique_ptr<Backend>()> make;
    // How far this backend's arithmetic is from exact for quantized weights (q8 rounds activations to 8 bits).
    bool rounds_activations = false;
    // Empty when the backend can run here, else why not (a visible skip: e.g. no GPU on this machine).
    std::function<std::string()> unavailable = [] { return std::string(); };
};
std::vector<BackendFactory> backend_factories();

struct OpResult {
    double nmse = 0;         // normalised error against the double reference
    double max_abs = 0;      // largest |y - ref|
    bool exact_ids = true;   // top_k: the ids agree exactly; summarize_keys: every bit does; rope_store_kv: the four ops' bits
    size_t compared = 0;     // values compared (a case must compare something)
};

struct OpCase {
    std::string name; // "<op>/<type>/<shape>"
    Op op;
    GgmlType type;    // the type supports() is asked about
    // Tolerance on NMSE for a backend computing in fp32, and for one that rounds activations (q8 linear).
    double tol, tol_rounded;
    std::function<OpResult(Backend&)> run;
};
std::vector<OpCase> op_cases();
// The sample op's cases (tests/ops/sample_cases.cpp).
void add_sample_cases(std::vector<OpCase>& cases);

} // namespace winnow::test
