// winnow bench head --device cuda: the exact output head's time per query on a GPU, the baselines of issue #15 that
// any adaptive head kernel has to beat:
//   fused          Backend::head_top_k: the head GEMV, top-k and log-sum-exp in one op, no logits in global memory;
//   cublas+top_k   cuBLAS's GEMV (cublasSgemv on an f32 head, cublasGemmEx with fp32 accumulation on f16/bf16) into
//                  a logits row, then the backend's top_k: the vendor library as the reference;
//   linear+top_k   the backend's own GEMV into a logits row, then top_k: what ExactOutputHead runs today.
// Heads: SmolLM2's real head (stored format, and bf16 / f32 copies of its values) with real hidden states (final-norm
// states of sliding windows over a text, cli/head_queries.h, computed on the device by default), and a SYNTHETIC larger
// head made from it: every head row and query zero-padded to --synthetic-dim and rotated by the same random orthogonal
// map (random signs, then the normalised Walsh-Hadamard transform), so the original rows' logits are unchanged, and
// the vocabulary tiled to --synthetic-vocab rows by perturbed copies (copy c >= 1 of row b: the rotated row plus
// uniform noise of --synthetic-noise times the row's rms per element). Every synthetic row is labelled so.
// Timing: host steady_clock around each call; every method ends with the k ids, logits and log Z on the host (one
// copy and a stream synchronize), so the three are timed alike. Median (and p10 / p90) over --reps calls, cycling
// over the queries, after --warmup calls. With --device cpu the same rows run on the CPU backend (no cuBLAS row): a
// CPU baseline, and the path's check on a machine without a GPU.
// With CUDA, rows "adaptive-persistent" and "adaptive-host" time the GPU AdaptiveSoftmax (backend/cuda/adaptive_head_gpu.h,
// k = 1; its loop in one cooperative kernel, or driven by the host step by step) on the real head's stored format at each of --adaptive-deltas with the factors --fudge-best /
// --fudge-norm when given, else the calibration file's "fast" entry for that delta (--head-calibration, default
// MODEL.head.json when present: the GPU head makes the fast CPU head's decisions), else the theory constants (1),
// one call per query over the first --adaptive-queries queries of the test region (held out from calibrate-head's
// tuning windows): the
// median time (the host's column order included), the gain (1 / mean sampled fraction of n d') and the success against
// the fused op's answer on the same query (same top-1 id, and p_top within --eps of its exact probability). The same
// rows follow on the synthetic head (its rows stored as Q8_0, the real head's factors), labelled synthetic: #15's
// 128K x 4096 target, against the synthetic q8_0 fused row. With --head-basis FILE (calibrate-head --fit-head-basis), the
// real head's adaptive rows are also run in that basis ("adaptive-persistent+pca", "adaptive-host+pca": the rotated
// head's columns, the model's rows for the exact finish; each query rotated on the host inside the timed call, as
// generate does; factors from the calibration file's "fast" entry for that basis).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>
#include <memory>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "cli/bench_stats.h"
#include "cli/commands.h"
#include "cli/head_queries.h"
#include "cli/options.h"
#include "io/quant.h"
#include "model/model.h"
#include "winnow/error.h"
#ifdef WINNOW_HAVE_CUDA
#include "backend/cuda/adaptive_head_gpu.h"
#include "backend/cuda/cublas_gemv.h"
#include "backend/cuda/device.h"
#include "head/adaptive_head.h"
#include "head/column_major_head.h"
#include "head/rotation.h"
#include "cli/adaptive_head_options.h"
#endif

namespace po = boost::program_options;

namespace winnow::cli {

namespace {

using Clock = std::chrono::steady_clock;

// One head placed on the device in one format.
struct DeviceHead {
    std::string format; // "q4_1", "bf16", "f32", ...
    Matrix m;           // what linear and head_top_k read
    Tensor t;           // owns the bytes; for F32/F16/BF16 it is the [rows][cols] tensor cuBLAS reads
    bool dense = false;
};

DeviceHead place_head(Backend& be, GgmlType type, int64_t rows, int64_t cols, const void* bytes) {
    DeviceHead h;
    h.format = ggml_type_name(type);
    std::transform(h.format.begin(), h.format.end(), h.format.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    h.dense = type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16;
    const size_t rb = ggml_row_bytes(type, cols);
    h.t = h.dense ? be.alloc(type, rows, cols) : be.alloc(GgmlType::I8, 1, static_cast<int64_t>(rb * rows));
    be.upload(bytes, h.t);
    h.m.type = type;
    h.m.rows = rows;
    h.m.cols = cols;
    h.m.row_bytes = rb;
    h.m.data = h.t.data<uint8_t>();
    h.m.name = "output";
    return h;
}

// The head as `type` (F32, F16 or BF16) from its fp32 rows [rows][cols], encoded by the project's reference
// encoder a row per iteration (the synthetic head has half a billion values), then placed as place_head does.
DeviceHead place_head_from_f32(Backend& be, GgmlType type, int64_t rows, int64_t cols, const std::vector<float>& w) {
    if (type == GgmlType::F32) return place_head(be, type, rows, cols, w.data());
    const size_t rb = ggml_row_bytes(type, cols);
    std::vector<uint8_t> bytes(rb * static_cast<size_t>(rows));
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) quantize_row_ref(type, w.data() + r * cols, bytes.data() + r * rb, static_cast<size_t>(cols));
    return place_head(be, type, rows, cols, bytes.data());
}

// The synthetic head's orthogonal map: y = H (s * [x; 0]) / sqrt(D), H the Walsh-Hadamard matrix, s random signs.
void rotate_pad(const float* x, int d, int D, const std::vector<float>& signs, float* y) {
    for (int i = 0; i < D; ++i) y[i] = i < d ? x[i] * signs[i] : 0.0f;
    for (int h = 1; h < D; h *= 2)
        for (int i = 0; i < D; i += 2 * h)
            for (int j = i; j < i + h; ++j) {
                const float a = y[j], b = y[j + h];
                y[j] = a + b;
                y[j + h] = a - b;
            }
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    for (int i = 0; i < D; ++i) y[i] *= scale;
}

uint64_t splitmix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

struct MethodResult {
    std::vector<double> us;
    std::vector<TopK> kept; // the first `check` calls' answers, for the agreement columns
};

template <class F>
MethodResult time_calls(F&& call, const Tensor& queries, int warmup, int reps, int check) {
    const int64_t nq = queries.rows();
    MethodResult r;
    for (int i = 0; i < warmup; ++i) call(queries.rows_view(i % nq, 1));
    for (int i = 0; i < reps; ++i) {
        const Tensor x = queries.rows_view(i % nq, 1);
        const auto t0 = Clock::now();
        TopK t = call(x);
        r.us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
        if (i < check) r.kept.push_back(std::move(t));
    }
    return r;
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

std::string device_arg(const std::vector<std::string>& args) {
    for (size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--device" && i + 1 < args.size()) return args[i + 1];
        if (args[i].rfind("--device=", 0) == 0) return args[i].substr(9);
    }
    return "";
}

#ifdef WINNOW_HAVE_CUDA
// The adaptive head's rows (see the header comment): one per delta, with the keys the exact rows have (compared with
// the fused op's top-1) plus delta, factors, gain and success.
// factors(delta): the row's f_b, f_ln and where they come from.
struct AdaptiveFactors {
    double fudge_best = 1, fudge_norm = 1;
    std::string source;
};
// rotation: the column-major head is rotated by it (queries are rotated inside each timed call); null: none.
void bench_adaptive_rows(Backend& be, const std::shared_ptr<const head::ColumnMajorHead>& column_major, const head::HeadRotation* rotation,
                         const std::vector<std::vector<float>>& qs,
                         const std::vector<double>& deltas, const AdaptiveParams& base, const std::function<AdaptiveFactors(double)>& factors, int warmup,
                         int count, double copy_gbps, const std::string& label, bool synthetic, nlohmann::ordered_json& rows) {
    count = std::min<int>(count, static_cast<int>(qs.size()));
    const Matrix& W = column_major->rows(); // the stored rows: the fused op's head and the adaptive head's exact finish
    const int d = static_cast<int>(W.cols);
    const DeviceHead h = place_head(be, W.type, W.rows, W.cols, W.data);
    // the exact answers from the fused op: top-1 id, exp(logit - log Z), log Z
    std::vector<int32_t> top(count);
    std::vector<double> p_exact(count), log_norm(count);
    const Tensor x = be.alloc(GgmlType::F32, 1, d);
    for (int q = 0; q < count; ++q) {
        be.upload(qs[q].data(), x);
        const TopK t = be.head_top_k(h.m, x, 1, true);
        top[q] = t.ids[0];
        log_norm[q] = t.log_norm;
        p_exact[q] = std::exp(static_cast<double>(t.logits[0]) - t.log_norm);
    }
    const double head_bytes = static_cast<double>(W.row_bytes) * static_cast<double>(W.rows);
    struct Loop {
        cuda::adaptive::QueryLoop loop;
        const char* method;
        const char* what;
    };
    const Loop loops[] = {{cuda::adaptive::QueryLoop::persistent, "adaptive-persistent", "one cooperative kernel launch per query: the loop's decisions on the device"},
                          {cuda::adaptive::QueryLoop::host, "adaptive-host", "host-driven: one small device-to-host copy per decision (first version)"}};
    for (const Loop& loop : loops) {
        if (loop.loop == cuda::adaptive::QueryLoop::persistent && cuda::adaptive::default_query_loop() == cuda::adaptive::QueryLoop::host) {
            std::fprintf(stderr, "%s adaptive-persistent: skipped (WINNOW_ADAPTIVE_LOOP=host)\n", label.c_str());
            continue;
        }
        cuda::adaptive::GpuAdaptiveHead gpu(column_major); // per loop: both loops' rows draw the same column orders
        std::optional<head::QueryRotator> rotator;
        if (rotation) rotator.emplace(*rotation);
        auto query = [&](int q) { return rotator ? rotator->rotate(qs[q]) : std::span<const float>(qs[q]); };
        const std::string method = std::string(loop.method) + (rotation ? "+pca" : "");
        for (double delta : deltas) {
            AdaptiveParams p = base;
            p.delta = delta;
            const AdaptiveFactors f = factors(delta);
            p.fudge_best = f.fudge_best;
            p.fudge_norm = f.fudge_norm;
            std::fprintf(stderr, "%s %s delta %.3g ...\n", label.c_str(), method.c_str(), delta);
            for (int i = 0; i < warmup; ++i) gpu.run(query(i % count), p, loop.loop);
            std::vector<double> us;
            double fraction = 0, max_dlz = 0;
            int top1 = 0, ok = 0;
            for (int q = 0; q < count; ++q) {
                const auto t0 = Clock::now();
                const head::AdaptiveResult r = gpu.run(query(q), p, loop.loop); // the rotation is part of the query's time
                us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
                fraction += r.cost.fraction();
                const bool same = r.head.top[0] == top[q];
                top1 += same;
                ok += same && std::fabs(r.head.p_top - p_exact[q]) <= p.epsilon * p_exact[q];
                max_dlz = std::max(max_dlz, std::fabs(r.head.log_norm - log_norm[q]));
            }
            const double med = median(us);
            nlohmann::ordered_json row;
            row["head"] = label;
            row["synthetic"] = synthetic;
            row["n"] = W.rows;
            row["d"] = W.cols;
            row["format"] = h.format;
            row["method"] = method;
            row["k"] = 1;
            row["us_median"] = med;
            row["us_p10"] = percentile(us, 0.1);
            row["us_p90"] = percentile(us, 0.9);
            row["calls"] = us.size();
            row["head_bytes"] = head_bytes;
            row["head_gbps"] = head_bytes / (med * 1e3); // the stored head's bytes over the median time (it reads fewer)
            if (copy_gbps > 0) row["head_gbps_vs_copy"] = head_bytes / (med * 1e3) / copy_gbps;
            row["compared_calls"] = count;
            row["top1_agree_with_fused"] = static_cast<double>(top1) / count;
            row["topk_ids_equal_fused"] = static_cast<double>(top1) / count;
            row["max_log_norm_diff_vs_fused"] = max_dlz;
            row["delta"] = delta;
            row["epsilon"] = p.epsilon;
            row["fudge_best"] = p.fudge_best;
            row["fudge_norm"] = p.fudge_norm;
            row["factors"] = f.source;
            row["warmup_cap"] = p.warmup_cap;
            row["gain"] = count / fraction;
            row["success"] = static_cast<double>(ok) / count;
            row["queries"] = "the test region's first " + std::to_string(count) + " (calibrate-head tunes on the tuning region)";
            row["loop"] = loop.what;
            if (rotation) row["basis"] = "PCA basis of the model's hidden states (--head-basis): queries rotated on the host, d^2 multiply-adds, inside the timed call";
            rows.push_back(row);
        }
    }
}
#endif

} // namespace

bool bench_head_wants_device(const std::vector<std::string>& args) { return !device_arg(args).empty(); }

int cmd_bench_head_device(const std::vector<std::string>& args) {
    std::string model_arg, device = "cuda", query_device = "", text_path = "/usr/share/common-licenses/GPL-3", cache, ks_arg = "1,40",
                formats_arg = "stored,bf16,f32", syn_formats_arg = "q8_0,bf16,f32";
    int window = 64, n_queries = 1000, n_tune = 200, threads = 0, reps = 1000, warmup = 50, check = 200, syn_vocab = 131072, syn_dim = 4096;
    double syn_noise = 0.5;
    bool json_out = false, collect_only = false;
    std::string adaptive_deltas_arg = "0.01,0.05,0.1", calibration_path, basis_path;
    int adaptive_queries = 200;
    AdaptiveParams adaptive;
    po::options_description opts("winnow bench head --device cuda options");
    opts.add_options()("help,h", "show this help")("model,m", po::value(&model_arg), "model (.gguf)")(
        "device", po::value(&device)->default_value(device), "cuda, cuda:N (or cpu: the same rows on the CPU backend, without cuBLAS)")(
        "query-device", po::value(&query_device), "where the hidden states are computed: cpu or the --device (default)")(
        "text", po::value(&text_path)->default_value(text_path), "text the query windows slide over")(
        "window", po::value(&window)->default_value(window), "tokens per window (the last one is the target and dropped)")(
        "queries", po::value(&n_queries)->default_value(n_queries), "hidden states (windows), as bench head collects them")(
        "tune", po::value(&n_tune)->default_value(n_tune), "of which from the tuning region (kept for cache compatibility with bench head)")(
        "cache", po::value(&cache), "file to keep the collected hidden states in (reused when it matches)")(
        "collect-only", po::bool_switch(&collect_only), "only collect the hidden states into --cache (needs no GPU with --query-device cpu)")(
        "threads,t", po::value(&threads)->default_value(0), "CPU threads (query collection on the CPU, the synthetic head's construction)")(
        "k", po::value(&ks_arg)->default_value(ks_arg), "comma-separated k values")(
        "formats", po::value(&formats_arg)->default_value(formats_arg), "the real head's formats: stored (the file's), q8_0, bf16, f16, f32")(
        "synthetic-formats", po::value(&syn_formats_arg)->default_value(syn_formats_arg), "the synthetic head's formats: q8_0, bf16, f16, f32 (empty: no synthetic head; with CUDA, the adaptive head's rows on it follow)")(
        "synthetic-vocab", po::value(&syn_vocab)->default_value(syn_vocab), "rows of the synthetic head")(
        "synthetic-dim", po::value(&syn_dim)->default_value(syn_dim), "columns of the synthetic head (a power of two >= the model's)")(
        "synthetic-noise", po::value(&syn_noise)->default_value(syn_noise, "0.5"), "per-element noise of a perturbed copy, times the row's rms")(
        "reps", po::value(&reps)->default_value(reps), "timed calls per row (cycling over the queries)")(
        "warmup", po::value(&warmup)->default_value(warmup), "untimed calls first")(
        "check", po::value(&check)->default_value(check), "calls whose answers are compared with the fused op's")(
        "adaptive-deltas", po::value(&adaptive_deltas_arg)->default_value(adaptive_deltas_arg), "the GPU adaptive head's rows (cuda only; empty: none)")(
        "adaptive-queries", po::value(&adaptive_queries)->default_value(adaptive_queries), "queries the adaptive head runs (one call each)")(
        "fudge-best", po::value(&adaptive.fudge_best), "the adaptive head's f_b (default: the calibration file's, else 1)")(
        "fudge-norm", po::value(&adaptive.fudge_norm), "the adaptive head's f_ln (default: the calibration file's, else 1)")(
        "head-calibration", po::value(&calibration_path), "the adaptive head's calibrated factors (default MODEL.head.json if present)")(
        "head-basis", po::value(&basis_path), "also run the real head's adaptive rows in this basis (calibrate-head --fit-head-basis; cuda only)")(
        "eps", po::value(&adaptive.epsilon)->default_value(0.3, "0.3"), "the adaptive head's epsilon (its success: p_top within eps of the exact p)")(
        "json", po::bool_switch(&json_out), "print the report as JSON");
    po::variables_map vm;
    if (!parse_options(opts, args, vm)) return 0;
    if (window < 2 || n_queries < 10 || n_tune < 1 || n_tune >= n_queries) throw Error(ErrorKind::invalid_argument, "need --window >= 2, --queries >= 10, 1 <= --tune < --queries");
    if (reps < 1 || warmup < 0 || check < 0) throw Error(ErrorKind::invalid_argument, "need --reps >= 1, --warmup >= 0, --check >= 0");
    const std::vector<double> adaptive_deltas =
        number_list(adaptive_deltas_arg, "--adaptive-deltas", "in (0, 1)", [](double v) { return v > 0 && v < 1; });
    if (adaptive_queries < 1) throw Error(ErrorKind::invalid_argument, "need --adaptive-queries >= 1");
    if (!basis_path.empty() && adaptive_deltas.empty()) throw Error(ErrorKind::invalid_argument, "--head-basis is for the adaptive rows: give --adaptive-deltas too");
    std::vector<int> ks;
    for (const std::string& v : list_items(ks_arg)) {
        int k = 0;
        try { k = std::stoi(v); } catch (const std::exception&) {}
        if (k < 1) throw Error(ErrorKind::invalid_argument, "--k: '" + v + "' is not a count >= 1");
        ks.push_back(k);
    }
    auto parse_format = [](const std::string& f) -> GgmlType {
        if (f == "bf16") return GgmlType::BF16;
        if (f == "f16") return GgmlType::F16;
        if (f == "f32") return GgmlType::F32;
        if (f == "q8_0") return GgmlType::Q8_0;
        throw Error(ErrorKind::invalid_argument, "format '" + f + "' is not stored, q8_0, bf16, f16 or f32");
    };
    BackendOptions dev;
    parse_device(device, dev);
    dev.threads = threads;
    if (!basis_path.empty() && dev.device != Device::cuda) throw Error(ErrorKind::invalid_argument, "--head-basis: the adaptive rows run with --device cuda only");
    BackendOptions qdev = dev;
    if (query_device == "cpu") qdev = BackendOptions{.threads = threads};
    else if (!query_device.empty()) parse_device(query_device, qdev);

    auto model = LoadedModel::load(resolve_model_path(model_arg));
    if (!model->gguf()) throw Error(ErrorKind::unsupported, "bench head needs a GGUF model");
    HeadQueryPlan plan;
    plan.window = window, plan.n_tune = n_tune, plan.n_test = n_queries - n_tune;
    if (collect_only) {
        if (cache.empty()) throw Error(ErrorKind::invalid_argument, "--collect-only needs --cache FILE");
        const HeadQueries hq = collect_head_queries(*model, text_path, plan, threads, cache, &qdev);
        std::fprintf(stderr, "%zu hidden states in %s\n", hq.tune.size() + hq.test.size(), cache.c_str());
        return 0;
    }
    auto be = make_backend(dev); // a one-line error without CUDA or without a GPU
    const HeadQueries hq = collect_head_queries(*model, text_path, plan, threads, cache, &qdev);
    std::vector<std::vector<float>> qs = hq.tune;
    qs.insert(qs.end(), hq.test.begin(), hq.test.end());
    // the adaptive rows take the test region's queries only: calibrate-head tunes its factors (and fits a basis) on the
    // first --tune-share of the text, where the tuning queries come from
    const size_t first_test = hq.tune.size();
    const std::vector<std::vector<float>> test_qs(qs.begin() + static_cast<std::ptrdiff_t>(first_test), qs.end());
    const Matrix& W = model->weights().output;
    const int64_t n = W.rows;
    const int d = static_cast<int>(W.cols);
    for (int k : ks)
        if (k > n) throw Error(ErrorKind::invalid_argument, "--k " + std::to_string(k) + " exceeds the vocabulary (" + std::to_string(n) + ")");

    // the real head's values in fp32 (for the bf16 / f32 copies and the synthetic head)
    std::vector<float> wf(static_cast<size_t>(n) * d);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; ++r) dequantize_row(W.type, W.row(r), wf.data() + static_cast<size_t>(r) * d, static_cast<size_t>(d));

    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    std::string device_name = be->name();
    double copy_gbps = 0;
#ifdef WINNOW_HAVE_CUDA
    std::unique_ptr<cuda::CublasGemv> gemv;
    if (dev.device == Device::cuda) {
        copy_gbps = cuda::measure_copy_bandwidth_gbps(dev.cuda_device, size_t(1) << 30, 10);
        gemv = std::make_unique<cuda::CublasGemv>(*be);
    }
#endif

    // every method on one placed head, for each k
    auto bench_head = [&](const DeviceHead& h, const std::vector<std::vector<float>>& queries, const std::string& head_label, bool synthetic) {
        const int64_t cols = h.m.cols;
        std::vector<float> flat;
        for (const auto& q : queries) flat.insert(flat.end(), q.begin(), q.end());
        const Tensor qt = be->alloc(GgmlType::F32, static_cast<int64_t>(queries.size()), cols);
        be->upload(flat.data(), qt);
        const Tensor logits = be->alloc(GgmlType::F32, 1, h.m.rows);
        const double head_bytes = static_cast<double>(h.m.row_bytes) * static_cast<double>(h.m.rows);
        for (int k : ks) {
            std::fprintf(stderr, "%s %s k %d ...\n", head_label.c_str(), h.format.c_str(), k);
            const MethodResult fused = time_calls([&](const Tensor& x) { return be->head_top_k(h.m, x, k, true); }, qt, warmup, reps, check);
            std::vector<std::pair<std::string, MethodResult>> results;
            results.emplace_back("fused", fused);
#ifdef WINNOW_HAVE_CUDA
            if (h.dense && gemv)
                results.emplace_back("cublas+top_k", time_calls(
                                                         [&](const Tensor& x) {
                                                             gemv->run(h.t, x, logits);
                                                             return be->top_k(logits, k, true);
                                                         },
                                                         qt, warmup, reps, check));
#endif
            results.emplace_back("linear+top_k", time_calls(
                                                     [&](const Tensor& x) {
                                                         be->linear(h.m, nullptr, x, logits);
                                                         return be->top_k(logits, k, true);
                                                     },
                                                     qt, warmup, reps, check));
            for (const auto& [method, r] : results) {
                int top1 = 0, topk = 0;
                double max_dlz = 0;
                for (size_t i = 0; i < r.kept.size(); ++i) {
                    top1 += r.kept[i].ids[0] == fused.kept[i].ids[0];
                    topk += r.kept[i].ids == fused.kept[i].ids;
                    max_dlz = std::max(max_dlz, std::fabs(r.kept[i].log_norm - fused.kept[i].log_norm));
                }
                const double med = median(r.us);
                nlohmann::ordered_json row;
                row["head"] = head_label;
                row["synthetic"] = synthetic;
                row["n"] = h.m.rows;
                row["d"] = cols;
                row["format"] = h.format;
                row["method"] = method;
                row["k"] = k;
                row["us_median"] = med;
                row["us_p10"] = percentile(r.us, 0.1);
                row["us_p90"] = percentile(r.us, 0.9);
                row["calls"] = r.us.size();
                row["head_bytes"] = head_bytes;
                row["head_gbps"] = head_bytes / (med * 1e3); // the head's bytes over the median time
                if (copy_gbps > 0) row["head_gbps_vs_copy"] = head_bytes / (med * 1e3) / copy_gbps;
                row["compared_calls"] = r.kept.size();
                row["top1_agree_with_fused"] = r.kept.empty() ? 0.0 : static_cast<double>(top1) / static_cast<double>(r.kept.size());
                row["topk_ids_equal_fused"] = r.kept.empty() ? 0.0 : static_cast<double>(topk) / static_cast<double>(r.kept.size());
                row["max_log_norm_diff_vs_fused"] = max_dlz;
                rows.push_back(row);
            }
        }
    };

    const std::string real_label = "SmolLM2 head (real)";
    for (const std::string& f : list_items(formats_arg)) {
        if (f == "stored") {
            const DeviceHead h = place_head(*be, W.type, n, d, W.data);
            bench_head(h, qs, real_label, false);
            continue;
        }
        bench_head(place_head_from_f32(*be, parse_format(f), n, d, wf), qs, real_label, false);
    }
#ifdef WINNOW_HAVE_CUDA
    std::function<AdaptiveFactors(double)> adaptive_factors; // set when the real head's adaptive rows ran
    // (the calibration file and the given factors live as long as adaptive_factors: the synthetic rows below use it)
    std::optional<head::HeadCalibrationFile> cal;
    const bool given_b = vm.count("fudge-best") > 0, given_n = vm.count("fudge-norm") > 0;
    // The factors of the adaptive rows of a head with options o: given on the command line, else the calibration file's
    // entry for o ("fast", or "fast+pca" in o's basis), else the theory constants.
    auto factors_for = [&](const head::AdaptiveHeadOptions& o) {
        return [&, o](double delta) {
            AdaptiveFactors f;
            const head::HeadCalibrationFile::Entry* e = cal ? cal->find(o, delta) : nullptr;
            if (e) f.fudge_best = e->fudge_best, f.fudge_norm = e->fudge_norm;
            if (given_b) f.fudge_best = adaptive.fudge_best;
            if (given_n) f.fudge_norm = adaptive.fudge_norm;
            f.source = e ? "calibrated (" + calibration_path + ")" : "theory constants";
            if (given_b && given_n) f.source = "given";
            else if (given_b || given_n) f.source = std::string(given_b ? "f_b" : "f_ln") + " given, the other " + f.source;
            return f;
        };
    };
    if (dev.device == Device::cuda && !adaptive_deltas.empty()) {
        // a default calibration file made for another model or epsilon is skipped with a note, a named one stops the run
        const bool named = !calibration_path.empty();
        if (!named && std::filesystem::exists(model->path() + ".head.json")) calibration_path = model->path() + ".head.json";
        try {
            if (!calibration_path.empty()) cal = head::HeadCalibrationFile::load_for(calibration_path, *model, adaptive.epsilon);
        } catch (const Error& e) {
            if (named) throw;
            std::fprintf(stderr, "adaptive head: %s; theory constants instead\n", e.what());
        }
        adaptive_factors = factors_for(head::AdaptiveHeadOptions{});
        bench_adaptive_rows(*be, std::make_shared<const head::ColumnMajorHead>(W), nullptr, test_qs, adaptive_deltas, adaptive, adaptive_factors, warmup,
                            adaptive_queries, copy_gbps, real_label, false, rows);
        if (!basis_path.empty()) {
            head::AdaptiveHeadOptions with_basis;
            head::ModelContentHash content_hash(model->path());
            load_head_basis(basis_path, content_hash, d, with_basis);
            std::fprintf(stderr, "building the rotated head's column-major copy (%s) ...\n", basis_path.c_str());
            bench_adaptive_rows(*be, head::fast_head_columns(*model, with_basis), &with_basis.basis->rotation, test_qs, adaptive_deltas, adaptive,
                                factors_for(with_basis), warmup, adaptive_queries, copy_gbps, real_label, false, rows);
        }
    }
#endif

    nlohmann::ordered_json synthetic_info;
    const auto syn_formats = list_items(syn_formats_arg);
    if (!syn_formats.empty()) {
        if (syn_dim < d || (syn_dim & (syn_dim - 1)) != 0) throw Error(ErrorKind::invalid_argument, "--synthetic-dim must be a power of two >= " + std::to_string(d));
        if (syn_vocab < n) throw Error(ErrorKind::invalid_argument, "--synthetic-vocab must be >= the real vocabulary (" + std::to_string(n) + ")");
        const int D = syn_dim;
        const int64_t N = syn_vocab;
        std::vector<float> signs(static_cast<size_t>(D));
        for (int i = 0; i < D; ++i) signs[i] = (splitmix64(0x5eed0000ull + i) & 1) ? 1.0f : -1.0f;
        std::fprintf(stderr, "building the synthetic head (%lld x %d) ...\n", static_cast<long long>(N), D);
        std::vector<float> ws(static_cast<size_t>(N) * D);
#pragma omp parallel for schedule(static)
        for (int64_t b = 0; b < n; ++b) rotate_pad(wf.data() + static_cast<size_t>(b) * d, d, D, signs, ws.data() + static_cast<size_t>(b) * D);
        const float amp = static_cast<float>(syn_noise * std::sqrt(3.0)); // uniform [-sqrt 3, sqrt 3] has unit variance
#pragma omp parallel for schedule(static)
        for (int64_t r = n; r < N; ++r) {
            const float* base = ws.data() + static_cast<size_t>(r % n) * D;
            float* out = ws.data() + static_cast<size_t>(r) * D;
            double ss = 0;
            for (int i = 0; i < D; ++i) ss += static_cast<double>(base[i]) * base[i];
            const float rms = static_cast<float>(std::sqrt(ss / D));
            for (int i = 0; i < D; ++i) {
                const double u = static_cast<double>(splitmix64(static_cast<uint64_t>(r) * D + i) >> 11) * 0x1.0p-53; // [0, 1)
                out[i] = base[i] + amp * rms * static_cast<float>(2.0 * u - 1.0);
            }
        }
        std::vector<std::vector<float>> sq(qs.size(), std::vector<float>(static_cast<size_t>(D)));
        for (size_t q = 0; q < qs.size(); ++q) rotate_pad(qs[q].data(), d, D, signs, sq[q].data());
        // the embedding leaves the original rows' logits unchanged (up to fp32 rounding): measured, not assumed
        double max_diff = 0, max_logit = 0;
        for (size_t q = 0; q < std::min<size_t>(qs.size(), 4); ++q) {
            double local_diff = 0, local_max = 0;
#pragma omp parallel for schedule(static) reduction(max : local_diff, local_max)
            for (int64_t r = 0; r < n; ++r) {
                double a = 0, b = 0;
                for (int c = 0; c < d; ++c) a += static_cast<double>(wf[static_cast<size_t>(r) * d + c]) * qs[q][c];
                for (int c = 0; c < D; ++c) b += static_cast<double>(ws[static_cast<size_t>(r) * D + c]) * sq[q][c];
                local_diff = std::max(local_diff, std::fabs(a - b));
                local_max = std::max(local_max, std::fabs(a));
            }
            max_diff = std::max(max_diff, local_diff);
            max_logit = std::max(max_logit, local_max);
        }
        synthetic_info = {{"label", "SYNTHETIC: SmolLM2's head and queries rotated into d = " + std::to_string(D) + " and tiled to " + std::to_string(N) +
                                        " rows by perturbed copies"},
                          {"n", N},
                          {"d", D},
                          {"map", "y = H (s * [x; 0]) / sqrt(D): random signs s, Walsh-Hadamard H (orthogonal; the same map for head rows and queries)"},
                          {"copies", "row r >= n is row r mod n rotated, plus uniform noise of sd noise x the row's rms per element"},
                          {"noise", syn_noise},
                          {"original_rows_max_abs_logit_change", max_diff},
                          {"original_rows_max_abs_logit", max_logit}};
        std::fprintf(stderr, "synthetic head: original rows' logits changed by at most %.3g (largest |logit| %.3g)\n", max_diff, max_logit);
        const std::string syn_label = "SYNTHETIC " + std::to_string(N) + "x" + std::to_string(D) + " (SmolLM2 rotated + perturbed copies)";
        for (const std::string& f : syn_formats) {
            bench_head(place_head_from_f32(*be, parse_format(f), N, D, ws), sq, syn_label, true);
        }
#ifdef WINNOW_HAVE_CUDA
        // #15's 3x target: the adaptive head on the synthetic head, its rows stored as Q8_0 by the quantizer the fused
        // q8_0 row used (so that row is the same-format exact baseline), at the real head's factors (calibrated on the
        // real head, not on this one: its success is measured, not assumed)
        if (adaptive_factors) {
            std::fprintf(stderr, "building the synthetic head's column-major copy ...\n");
            const auto syn_column_major = std::make_shared<const head::ColumnMajorHead>(ws, static_cast<int>(N), D, true);
            auto factors = [&](double delta) {
                AdaptiveFactors f = adaptive_factors(delta);
                f.source += ", the real head's";
                return f;
            };
            const std::vector<std::vector<float>> test_sq(sq.begin() + static_cast<std::ptrdiff_t>(first_test), sq.end());
            bench_adaptive_rows(*be, syn_column_major, nullptr, test_sq, adaptive_deltas, adaptive, factors, warmup, adaptive_queries, copy_gbps, syn_label, true, rows);
        }
#endif
    }

    nlohmann::ordered_json report;
    report["device"] = device_name;
    report["copy_bandwidth_gbps"] = copy_gbps; // device-to-device copy, bytes read + written, measured in this run
    report["model"] = model->path();
    report["head_type"] = ggml_type_name(W.type);
    report["queries"] = qs.size();
    report["query_device"] = to_string(qdev.device);
    report["text"] = text_path;
    report["text_fnv1a"] = hq.text_hash;
    report["window"] = window;
    report["timing"] = "host steady_clock around each call, which ends with the k ids, logits and log Z copied to the host and the stream synchronized; median, p10, p90 over the timed calls after the warm-up";
    report["warmup"] = warmup;
    report["reps"] = reps;
    if (!synthetic_info.is_null()) report["synthetic"] = synthetic_info;
    report["rows"] = rows;
    if (json_out) {
        std::cout << report.dump(2) << "\n";
        return 0;
    }
    std::printf("exact output head on %s: %zu real hidden states (%s, computed on %s), %d timed calls per row after %d warm-up calls\n", device_name.c_str(),
                qs.size(), text_path.c_str(), to_string(qdev.device), reps, warmup);
    std::printf("timing: %s\n", report["timing"].get<std::string>().c_str());
    if (!synthetic_info.is_null()) std::printf("%s\n", synthetic_info["label"].get<std::string>().c_str());
    std::printf("| head | n x d | format | method | k | median us | p10 | p90 | head GB/s | vs copy | top-1 = fused | top-k = fused | max |dlogZ| |\n");
    std::printf("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (auto& r : rows)
        std::printf("| %s | %lldx%lld | %s | %s | %d | %.1f | %.1f | %.1f | %.0f | %.2f | %.3f | %.3f | %.2g |\n", r["head"].get<std::string>().c_str(),
                    r["n"].get<long long>(), r["d"].get<long long>(), r["format"].get<std::string>().c_str(), r["method"].get<std::string>().c_str(),
                    r["k"].get<int>(), r["us_median"].get<double>(), r["us_p10"].get<double>(), r["us_p90"].get<double>(), r["head_gbps"].get<double>(),
                    r.contains("head_gbps_vs_copy") ? r["head_gbps_vs_copy"].get<double>() : 0.0, r["top1_agree_with_fused"].get<double>(),
                    r["topk_ids_equal_fused"].get<double>(), r["max_log_norm_diff_vs_fused"].get<double>());
    for (auto& r : rows)
        if (r.contains("gain"))
            std::printf("%s %s delta %.3g (f_b %.3g, f_ln %.3g: %s, eps %.2g): median %.1f us, gain %.2fx, success %.1f%% (top-1 = fused %.1f%%)\n",
                        r["method"].get<std::string>().c_str(), r["format"].get<std::string>().c_str(), r["delta"].get<double>(), r["fudge_best"].get<double>(),
                        r["fudge_norm"].get<double>(), r["factors"].get<std::string>().c_str(), r["epsilon"].get<double>(), r["us_median"].get<double>(), r["gain"].get<double>(),
                        100 * r["success"].get<double>(), 100 * r["top1_agree_with_fused"].get<double>());
    return 0;
}

} // namespace winnow::cli
