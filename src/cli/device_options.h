#pragma once
// The --device and --kv-type options shared by generate, chat, perplexity, logits, info and bench, and the --dot option
// of those that run the model (all but info).
#include <string>

#include <boost/program_options.hpp>

#include "backend/backend.h"
#include "winnow/error.h"

namespace winnow::cli {

struct DeviceArgs {
    std::string device = "cpu";
    std::string kv_type = "f32";
};

inline void add_device_options(boost::program_options::options_description& opts, DeviceArgs& a) {
    namespace po = boost::program_options;
    opts.add_options()("device", po::value(&a.device)->default_value("cpu"), "where to run: cpu, cuda or cuda:N")(
        "kv-type", po::value(&a.kv_type)->default_value("f32"),
        "KV cache element type: f32, f16 or bf16 (cpu and cuda; f16/bf16 halve the cache's memory and the bytes each decoded token reads)");
}

// The backend options for the parsed arguments (threads and dot mode apply to the CPU only).
inline BackendOptions backend_options(const DeviceArgs& a, int threads, CpuDotMode dot) {
    BackendOptions o;
    parse_device(a.device, o);
    o.threads = threads;
    o.dot = dot;
    return o;
}

// --dot: how the CPU multiplies block-quantized weights (Q8_0, Q4_0, ..., the K-quants, IQ4; winnow/params.h). auto,
// the default since 2026-12-07: decode steps with 8-bit activations as llama.cpp (1.35-1.9x f32's tg128 on 2 cores),
// prefill batches with exact ones through sgemm (1.3x the 8-bit tiles' pp512 on Q4_1 / Q8_0 files); q8: 8-bit activations wherever
// a kernel has them, llama.cpp's numerics; f32: exact activations, the reference the parity tests hold to llama.cpp
// on decoded weights. F32 / F16 / BF16 weights compute in fp32 in every mode, as on CUDA.
inline void add_dot_option(boost::program_options::options_description& opts, std::string& dot) {
    opts.add_options()("dot", boost::program_options::value(&dot)->default_value("auto"),
                       "CPU products with block-quantized weights: auto (8-bit activations in decode steps, exact in prefill: the fastest), "
                       "q8 (8-bit activations everywhere, as llama.cpp) or f32 (exact activations, the reference)");
}

inline CpuDotMode dot_mode(const std::string& dot) {
    if (dot == "auto") return CpuDotMode::automatic;
    if (dot == "q8") return CpuDotMode::q8;
    if (dot == "f32") return CpuDotMode::f32;
    throw Error(ErrorKind::invalid_argument, "--dot must be auto, q8 or f32, not '" + dot + "'");
}

inline GgmlType kv_cache_type(const DeviceArgs& a) {
    if (a.kv_type == "f32") return GgmlType::F32;
    if (a.kv_type == "f16") return GgmlType::F16;
    if (a.kv_type == "bf16") return GgmlType::BF16;
    throw Error(ErrorKind::invalid_argument, "--kv-type must be f32, f16 or bf16, not '" + a.kv_type + "'");
}

} // namespace winnow::cli
