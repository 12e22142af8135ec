#pragma once
// The --device and --kv-type options shared by generate, chat, perplexity, info and bench decode.
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

inline GgmlType kv_cache_type(const DeviceArgs& a) {
    if (a.kv_type == "f32") return GgmlType::F32;
    if (a.kv_type == "f16") return GgmlType::F16;
    if (a.kv_type == "bf16") return GgmlType::BF16;
    throw Error(ErrorKind::invalid_argument, "--kv-type must be f32, f16 or bf16, not '" + a.kv_type + "'");
}

} // namespace winnow::cli
