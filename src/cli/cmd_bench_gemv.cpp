// winnow bench gemv: one matrix-vector product (Backend::linear on one token, a decode step's product) per stored weight
// type on the same shapes, timed on the backend: the bandwidth each type's GEMV gets, the number that bounds batch-1
// decode. The core types hold N(0, 0.05) values through the reference quantizer; the preset types (llama.cpp's
// presets) random blocks with modest scales (io/random_weights.h; a GEMV's time does not depend on the values).
// Timing: --calls GEMVs issued back to back (as a decode step issues its kernels), then one synchronize; the time per
// GEMV is the batch's over --calls, the median (and the minimum) over --reps batches after one warm-up batch. The calls
// cycle over enough copies of the matrix that they span at least --working-set-mb, so that a GPU's L2 (50-60 MB on an
// H100 / H200) or a CPU's last-level cache does not serve a matrix that a model's step would read from memory. GB/s:
// the matrix's stored bytes per GEMV time; on CUDA also the device-to-device copy bandwidth measured in the same run and
// the fraction of it.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <random>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "cli/bench_stats.h"
#include "cli/commands.h"
#include "cli/device_options.h"
#include "cli/options.h"
#include "io/random_weights.h"
#include "winnow/error.h"
#ifdef WINNOW_HAVE_CUDA
#include "backend/cuda/device.h"
#endif

namespace winnow::cli {

namespace {

namespace po = boost::program_options;

const GgmlType kBenchTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                                GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_NL,
                                GgmlType::IQ4_XS};

std::string lower(std::string s) {
    for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
}

std::vector<GgmlType> parse_types(const std::string& value) {
    std::vector<GgmlType> types;
    for (const std::string& item : list_items(value)) {
        const auto it = std::find_if(std::begin(kBenchTypes), std::end(kBenchTypes), [&](GgmlType t) { return lower(ggml_type_name(t)) == lower(item); });
        if (it == std::end(kBenchTypes))
            throw Error(ErrorKind::invalid_argument, "--types: '" + item + "' is not one of f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs");
        types.push_back(*it);
    }
    if (types.empty()) throw Error(ErrorKind::invalid_argument, "--types: no type given");
    return types;
}

struct Shape {
    int64_t rows, cols;
};
std::vector<Shape> parse_shapes(const std::string& value) {
    std::vector<Shape> shapes;
    for (const std::string& item : list_items(value)) {
        long long r = 0, c = 0;
        char tail = 0;
        if (std::sscanf(item.c_str(), "%lldx%lld%c", &r, &c, &tail) != 2 || r < 1 || c < 1 || r > (1 << 20) || c > (1 << 20))
            throw Error(ErrorKind::invalid_argument, "--shapes: '" + item + "' is not ROWSxCOLS (each 1 to 1048576)");
        shapes.push_back({r, c});
    }
    if (shapes.empty()) throw Error(ErrorKind::invalid_argument, "--shapes: no shape given");
    return shapes;
}

struct Timing {
    double median_us, min_us;
};

// The GEMV of `copies` placed copies of one matrix, one after another, timed as the top of this file says.
Timing time_gemvs(Backend& be, const std::vector<Matrix>& copies, const Tensor& x, const Tensor& y, int calls, int reps) {
    auto batch = [&] {
        for (int i = 0; i < calls; ++i) be.linear(copies[static_cast<size_t>(i) % copies.size()], nullptr, x, y);
        be.synchronize();
    };
    batch(); // warm-up: first-launch costs, page faults
    std::vector<double> us;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        batch();
        us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / calls);
    }
    return {median(us), *std::min_element(us.begin(), us.end())};
}

} // namespace

int cmd_bench_gemv(const std::vector<std::string>& args) {
    std::string types_arg = "f32,f16,bf16,q8_0,q4_0,q4_1,q5_0,q5_1,q2_k,q3_k,q4_k,q5_k,q6_k,iq4_nl,iq4_xs", shapes_arg = "4096x4096,14336x4096";
    std::string dot;
    int calls = 50, reps = 7, threads = 0, working_set_mb = 512;
    bool json_out = false;
    DeviceArgs device;
    po::options_description opts("winnow bench gemv options");
    opts.add_options()("help,h", "show this help")("types", po::value(&types_arg)->default_value(types_arg), "stored weight types, comma-separated")(
        "shapes", po::value(&shapes_arg)->default_value(shapes_arg), "matrices ROWSxCOLS, comma-separated (cols a multiple of each type's block)")(
        "calls", po::value(&calls)->default_value(50), "GEMVs per timed batch")("reps,r", po::value(&reps)->default_value(7), "timed batches (median) after one warm-up")(
        "working-set-mb", po::value(&working_set_mb)->default_value(512), "the copies of each matrix a batch cycles over span at least this")(
        "threads,t", po::value(&threads)->default_value(0), "CPU threads")("json", po::bool_switch(&json_out), "print rows as JSON");
    add_device_options(opts, device);
    add_dot_option(opts, dot);
    po::variables_map vm;
    if (!parse_options(opts, args, vm)) return 0;
    if (calls < 1 || reps < 1 || working_set_mb < 0) throw Error(ErrorKind::invalid_argument, "--calls and --reps must be >= 1, --working-set-mb >= 0");
    const std::vector<GgmlType> types = parse_types(types_arg);
    const std::vector<Shape> shapes = parse_shapes(shapes_arg);
    for (const Shape& s : shapes)
        for (GgmlType t : types)
            if (s.cols % ggml_type_traits(static_cast<uint32_t>(t))->block_size != 0)
                throw Error(ErrorKind::invalid_argument, "--shapes: " + std::to_string(s.cols) + " columns are not whole " + ggml_type_name(t) + " blocks");
    const BackendOptions bo = backend_options(device, threads, dot_mode(dot));
    auto be = make_backend(bo);
    double roofline_gbps = 0;
#ifdef WINNOW_HAVE_CUDA
    if (be->device() == Device::cuda) roofline_gbps = cuda::measure_copy_bandwidth_gbps(bo.cuda_device);
#endif
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    if (!json_out) std::printf("%-8s %-14s %10s %7s %12s %12s %10s\n", "type", "shape", "MB", "copies", "us/gemv", "min us", "GB/s");
    for (const Shape& s : shapes) {
        std::vector<float> xv(static_cast<size_t>(s.cols));
        std::mt19937_64 rng(s.cols);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        for (float& v : xv) v = nd(rng);
        const Tensor x = be->alloc(GgmlType::F32, 1, s.cols), y = be->alloc(GgmlType::F32, 1, s.rows);
        be->upload(xv.data(), x);
        for (GgmlType type : types) {
            if (!be->supports(Op::linear, type)) throw Error(ErrorKind::unsupported, std::string(be->name()) + " has no linear for " + ggml_type_name(type));
            const std::vector<uint8_t> bytes = random_stored_weights(type, s.rows, s.cols, 17);
            const size_t copies = std::max<size_t>(1, (static_cast<size_t>(working_set_mb) << 20) / bytes.size() + 1);
            std::vector<Tensor> storage;
            std::vector<Matrix> placed;
            for (size_t i = 0; i < copies; ++i) {
                storage.push_back(be->alloc(GgmlType::I8, 1, static_cast<int64_t>(bytes.size()))); // its own memory (the CPU's place_readonly would borrow `bytes`)
                be->upload(bytes.data(), storage.back());
                Matrix m;
                m.type = type, m.rows = s.rows, m.cols = s.cols, m.row_bytes = ggml_row_bytes(type, s.cols), m.name = "bench";
                m.data = storage.back().data<uint8_t>();
                placed.push_back(m);
            }
            const Timing t = time_gemvs(*be, placed, x, y, calls, reps);
            const double gbps = static_cast<double>(bytes.size()) / (t.median_us * 1e3);
            const std::string shape = std::to_string(s.rows) + "x" + std::to_string(s.cols);
            nlohmann::ordered_json j;
            j["device"] = be->name();
            j["type"] = ggml_type_name(type);
            j["shape"] = shape;
            j["matrix_bytes"] = bytes.size();
            j["copies"] = copies;
            j["calls"] = calls;
            j["reps"] = reps;
            j["us_per_gemv"] = t.median_us;
            j["min_us_per_gemv"] = t.min_us;
            j["gb_per_s"] = gbps;
            if (roofline_gbps > 0) j["copy_roofline_gb_per_s"] = roofline_gbps, j["roofline_fraction"] = gbps / roofline_gbps;
            rows.push_back(j);
            if (!json_out)
                std::printf("%-8s %-14s %10.2f %7zu %12.2f %12.2f %10.1f\n", ggml_type_name(type), shape.c_str(), bytes.size() / 1048576.0, copies, t.median_us,
                            t.min_us, gbps);
        }
    }
    if (json_out) std::cout << rows.dump(2) << "\n";
    else if (roofline_gbps > 0) std::printf("device-to-device copy bandwidth, this run: %.1f GB/s\n", roofline_gbps);
    return 0;
}

} // namespace winnow::cli
