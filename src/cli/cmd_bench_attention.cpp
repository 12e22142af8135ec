// winnow bench attention: dense vs block-sparse attention (a calibrated SPION pattern, extended to each context
// length), per context length:
//  - the attention op alone, all layers, for one decoded token and for a prefill batch (the last rows of the
//    context), on per-layer random caches (so a long context's caches do not fit the CPU caches, as in a real model);
//  - with --text, end to end on the model over the text's first ctx tokens: prefill tokens/s, teacher-forced decode
//    tokens/s at the end of the context, and that chunk's perplexity (llama.cpp's protocol).
// Medians of repeated runs for the op; the end-to-end rows are single runs of long work. --device cuda times the CUDA
// kernels the same way (the stream synchronised around each repetition).
#include <algorithm>
#include <cmath>
#include <chrono>
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
#include "cli/sparse_options.h"
#include "decode/forward.h"
#include "io/text_file.h"
#include "model/model.h"
#include "sparse/key_summary.h"
#include "sparse/pattern.h"
#include "tokenizer/model_tokenizer.h"
#include "winnow/error.h"

namespace po = boost::program_options;

namespace winnow::cli {

namespace {

using Clock = std::chrono::steady_clock;

// A tensor of `type` on the backend holding N(0, 1) values (converted by the backend's cache write for half types).
Tensor random_tensor(Backend& be, int64_t rows, int64_t cols, uint64_t seed, GgmlType type = GgmlType::F32) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> h(static_cast<size_t>(rows * cols));
    for (auto& v : h) v = nd(rng);
    Tensor t = be.alloc(GgmlType::F32, rows, cols);
    be.upload(h.data(), t);
    if (type == GgmlType::F32) return t;
    Tensor c = be.alloc(type, rows, cols);
    be.copy_rows(t, c, 0);
    return c;
}

// Fraction of the causal keys of the row at position pos that a mask keeps (mean over its head groups), with up to
// select_tokens keys of its dropped complete blocks added (query-aware selection).
double row_density(const BlockMask& m, int pos, int select_tokens) {
    int64_t kept = 0;
    for (int g = 0; g < m.groups; ++g) {
        int64_t dropped_complete = 0;
        for (int kb = 0; kb * m.block <= pos; ++kb) {
            if (m.row(pos / m.block, g)[kb]) kept += std::min(m.block, pos + 1 - kb * m.block);
            else dropped_complete += (kb + 1) * m.block <= pos + 1 ? m.block : 0;
        }
        kept += std::min<int64_t>(select_tokens, dropped_complete);
    }
    return static_cast<double>(kept) / (static_cast<int64_t>(pos + 1) * m.groups);
}

// The key summaries query-aware selection reads, for one layer's cache of ctx rows, on the backend (as Forward keeps them).
struct LayerSummary {
    Tensor kmax, kmin;
    int units = 0;
    KeyBlockSummary view(int unit) const { return {unit, units, kmax.data<uint16_t>(), kmin.data<uint16_t>()}; }
};
std::vector<LayerSummary> summarise(Backend& be, const std::vector<Tensor>& k, int unit, int ctx, int n_head_kv) {
    std::vector<LayerSummary> s(k.size());
    for (size_t l = 0; l < k.size(); ++l) {
        const int64_t units = (k[l].rows() + unit - 1) / unit, plane = units * (k[l].cols() / n_head_kv); // a plane per KV head
        s[l] = {be.alloc(GgmlType::F16, n_head_kv, plane), be.alloc(GgmlType::F16, n_head_kv, plane), static_cast<int>(units)};
        be.summarize_keys(k[l], s[l].kmax, s[l].kmin, n_head_kv, unit, 0, ctx);
    }
    return s;
}

struct OpBench {
    const ModelConfig& c;
    Backend& be;
    int reps;
    int select_blocks = 0, select_unit = 0;
    const std::vector<LayerSummary>* summaries = nullptr; // per layer, with select_blocks

    // all layers' attention for n_rows query rows ending at the context's last position; median milliseconds. A backend
    // that records (CUDA graphs) is timed replaying one recording of the layers, as a decode step runs them, so that
    // kernel launches (a few per layer) do not hide the kernels' own times; the CPU runs them as issued.
    double time_all_layers(const std::vector<Tensor>& k, const std::vector<Tensor>& v, const Tensor& q, const Tensor& out, int ctx, int n_rows,
                           const std::vector<BlockMask>* masks) const {
        auto issue = [&] {
            for (int l = 0; l < c.n_layer; ++l) {
                AttentionParams p;
                p.pos0 = ctx - n_rows;
                p.n_head = c.n_head;
                p.n_head_kv = c.n_head_kv;
                p.head_dim = c.head_dim;
                p.mask = masks ? &(*masks)[l] : nullptr;
                if (masks && select_blocks > 0) p.select_blocks = select_blocks, p.key_summary = (*summaries)[l].view(select_unit);
                be.attention(q.rows_view(0, n_rows), k[l], v[l], out.rows_view(0, n_rows), p);
            }
        };
        issue(); // warm-up: masks uploaded, workspaces sized, caches warm
        be.synchronize();
        int recording = -1;
        if (be.can_record()) {
            be.begin_recording();
            issue();
            recording = be.end_recording();
        }
        std::vector<double> ms;
        for (int r = 0; r < reps; ++r) {
            const auto t0 = Clock::now();
            if (recording >= 0) be.replay(recording);
            else issue();
            be.synchronize(); // a device backend's kernels run asynchronously
            ms.push_back(ms_since(t0));
        }
        if (recording >= 0) be.drop_recording(recording);
        return median(ms);
    }
};

struct EndToEnd {
    double prefill_tps = 0, decode_tps = 0, ppl = 0;
};

// -log softmax(row)[target], in double
double nll_of(const float* row, int n_vocab, int32_t target) {
    const double mx = *std::max_element(row, row + n_vocab);
    double sum = 0;
    for (int i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(row[i]) - mx);
    return mx + std::log(sum) - row[target];
}

// One chunk of ctx tokens of the text (BOS first): prefill ctx - n_decode tokens in batches of 512, then decode the
// rest one at a time (teacher forced). The perplexity is llama.cpp's for that chunk: the logits at positions ctx/2 ..
// ctx-2 predict the next token; so the prefill rate includes the output head for the scored second half of the
// prefill. masks: null for dense.
EndToEnd end_to_end(const LoadedModel& model, Backend& be, const std::vector<int32_t>& ids, int32_t bos, int ctx, int n_decode,
                    const std::vector<BlockMask>* masks, int select_blocks, int select_block_size, GgmlType kv_type) {
    Forward f(model, be, ctx, kv_type);
    if (masks) f.set_attention_masks(*masks), f.set_block_selection(select_blocks, select_block_size);
    std::vector<int32_t> chunk(ids.begin(), ids.begin() + ctx);
    if (bos >= 0) chunk[0] = bos;
    const int n_vocab = model.config().n_vocab, first = ctx / 2, n_prefill = ctx - n_decode;
    double nll = 0;
    int scored = 0;
    auto score = [&](const float* row, int pos) {
        if (pos >= first && pos <= ctx - 2) nll += nll_of(row, n_vocab, chunk[pos + 1]), ++scored;
    };
    EndToEnd r;
    auto t0 = Clock::now();
    for (int i = 0; i < n_prefill; i += 512) {
        const int n = std::min(512, n_prefill - i);
        const bool logits = i + n > first;
        const auto& out = f.eval(std::span(chunk).subspan(i, n), logits);
        if (logits)
            for (int t = 0; t < n; ++t) score(out.data() + static_cast<size_t>(t) * n_vocab, i + t);
    }
    r.prefill_tps = n_prefill / (ms_since(t0) / 1000);
    t0 = Clock::now();
    for (int i = n_prefill; i < ctx; ++i) score(f.eval(std::span(chunk).subspan(i, 1), false).data(), i);
    r.decode_tps = n_decode / (ms_since(t0) / 1000);
    r.ppl = std::exp(nll / scored);
    return r;
}

} // namespace

int cmd_bench_attention(const std::vector<std::string>& args) {
    std::string model_arg, pattern_path, ctx_list = "1024,2048,4096,8192", text_path;
    int reps = 5, threads = 0, prefill = 64, n_decode = 32, dense_below = sparse::kDenseBelow, select_blocks = sparse::kSelectBlocks,
        select_block_size = 0;
    bool json_out = false;
    DeviceArgs device;
    po::options_description opts("winnow bench attention options");
    opts.add_options()("help,h", "show this help")("model,m", po::value(&model_arg), "model (for its head shapes and layer count)")(
        "sparse-pattern", po::value(&pattern_path), "pattern from `winnow calibrate-sparse`")(
        "ctx", po::value(&ctx_list)->default_value("1024,2048,4096,8192"), "context lengths, comma-separated")(
        "prefill", po::value(&prefill)->default_value(64), "query rows of the op's prefill case (the last rows of the context)")(
        "reps,r", po::value(&reps)->default_value(5), "timed repetitions of the op (median) after one warm-up")(
        "text", po::value(&text_path), "also end to end on this text: prefill and decode tokens/s, perplexity")(
        "decode", po::value(&n_decode)->default_value(32), "end to end: tokens decoded at the end of each context")(
        "sparse-dense-below", po::value(&dense_below)->default_value(sparse::kDenseBelow), "queries below this position attend densely, as in generate")(
        "sparse-select", po::value(&select_blocks)->default_value(sparse::kSelectBlocks), "query-aware blocks per sparse row, as in generate (0: the pattern alone)")(
        "sparse-select-block", po::value(&select_block_size)->default_value(0), "tokens per query-aware block (0: as in generate)")(
        "threads,t", po::value(&threads)->default_value(0), "CPU threads")("json", po::bool_switch(&json_out), "print rows as JSON");
    add_device_options(opts, device);
    po::variables_map vm;
    if (!parse_options(opts, args, vm)) return 0;
    if (pattern_path.empty()) throw Error(ErrorKind::invalid_argument, "--sparse-pattern FILE is required");
    if (reps < 1 || prefill < 1 || n_decode < 1 || dense_below < 0 || select_blocks < 0 || select_block_size < 0)
        throw Error(ErrorKind::invalid_argument, "--reps, --prefill, --decode must be >= 1 and --sparse-dense-below, --sparse-select, --sparse-select-block >= 0");
    auto model = LoadedModel::load(resolve_model_path(model_arg));
    const ModelConfig& c = model->config();
    const auto pattern = sparse::SparsePattern::load(pattern_path);
    pattern.check_model(c, pattern_path);
    std::vector<int> ctxs;
    for (const std::string& item : list_items(ctx_list)) {
        try {
            ctxs.push_back(std::stoi(item));
        } catch (const std::exception&) {
            throw Error(ErrorKind::invalid_argument, "--ctx: '" + item + "' is not a number");
        }
    }
    for (int ctx : ctxs)
        if (ctx < std::max(prefill, n_decode) + 1 || ctx > c.n_ctx_train)
            throw Error(ErrorKind::invalid_argument, "context " + std::to_string(ctx) + " is outside (" + std::to_string(std::max(prefill, n_decode)) + ", " +
                                                         std::to_string(c.n_ctx_train) + "]");
    std::vector<int32_t> ids;
    int32_t bos = -1;
    if (!text_path.empty()) {
        const auto tok = load_model_tokenizer(*model);
        ids = tok->encode(io::read_text_file(text_path, "text"), tok->add_bos_default(), false);
        bos = tok->add_bos_default() ? tok->bos() : -1;
        const int need = *std::max_element(ctxs.begin(), ctxs.end());
        if (static_cast<int>(ids.size()) < need)
            throw Error(ErrorKind::invalid_argument, "--text has " + std::to_string(ids.size()) + " tokens; the longest context needs " + std::to_string(need));
    }
    const GgmlType kv_type = kv_cache_type(device);
    auto be = make_backend(backend_options(device, threads, CpuDotMode::f32));
    const int qd = c.n_head * c.head_dim, kvd = c.n_head_kv * c.head_dim;
    select_block_size = sparse::selection_unit(select_block_size, pattern.block);
    OpBench bench{c, *be, reps, select_blocks, select_block_size};

    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (int ctx : ctxs) {
        const auto masks = pattern.masks(ctx, SparseDenominator::standard, dense_below);
        double density = 0, last_row = 0;
        for (const BlockMask& m : masks) {
            density += sparse::SparsePattern::density_of(m, select_blocks * select_block_size) / c.n_layer;
            last_row += row_density(m, ctx - 1, select_blocks * select_block_size) / c.n_layer;
        }
        nlohmann::ordered_json j;
        j["device"] = be->name();
        j["op_timing"] = be->can_record() ? "one recorded launch of all layers, replayed" : "ops as issued";
        j["kv_type"] = ggml_type_name(kv_type);
        j["ctx"] = ctx;
        j["dense_below"] = dense_below;
        j["select_blocks"] = select_blocks;
        j["select_block_size"] = select_block_size;
        j["density"] = density;
        j["last_row_density"] = last_row;
        {
            std::vector<Tensor> k, v;
            for (int l = 0; l < c.n_layer; ++l)
                k.push_back(random_tensor(*be, ctx, kvd, 2 * l + 1, kv_type)), v.push_back(random_tensor(*be, ctx, kvd, 2 * l + 2, kv_type));
            const Tensor q = random_tensor(*be, prefill, qd, 3), out = be->alloc(GgmlType::F32, prefill, qd);
            if (select_blocks > 0 && masks.front().block % select_block_size != 0)
                throw Error(ErrorKind::invalid_argument, "--sparse-select-block must divide the pattern's block (" + std::to_string(masks.front().block) + ")");
            const auto summaries = summarise(*be, k, select_block_size, ctx, c.n_head_kv);
            bench.summaries = &summaries;
            for (int n_rows : {1, prefill}) {
                const double dense = bench.time_all_layers(k, v, q, out, ctx, n_rows, nullptr), sparse = bench.time_all_layers(k, v, q, out, ctx, n_rows, &masks);
                const std::string key = n_rows == 1 ? "op_decode" : "op_prefill" + std::to_string(prefill);
                j[key] = {{"dense_ms", dense}, {"sparse_ms", sparse}, {"speedup", dense / sparse}};
                if (!json_out)
                    std::printf("ctx %5d  op %-10s  density %.3f (last row %.3f)  dense %9.3f ms  sparse %9.3f ms  speedup %5.2fx\n", ctx, key.c_str() + 3,
                                density, last_row, dense, sparse, dense / sparse);
            }
        }
        if (!ids.empty()) {
            const EndToEnd d = end_to_end(*model, *be, ids, bos, ctx, n_decode, nullptr, 0, 0, kv_type);
            const EndToEnd s = end_to_end(*model, *be, ids, bos, ctx, n_decode, &masks, select_blocks, select_block_size, kv_type);
            j["prefill_tps"] = {{"dense", d.prefill_tps}, {"sparse", s.prefill_tps}, {"speedup", s.prefill_tps / d.prefill_tps}};
            j["decode_tps"] = {{"dense", d.decode_tps}, {"sparse", s.decode_tps}, {"speedup", s.decode_tps / d.decode_tps}};
            j["ppl"] = {{"dense", d.ppl}, {"sparse", s.ppl}, {"change", s.ppl / d.ppl - 1}};
            if (!json_out)
                std::printf("ctx %5d  end to end: prefill %7.1f -> %7.1f tok/s (%4.2fx)  decode %6.2f -> %6.2f tok/s (%4.2fx)  ppl %.3f -> %.3f (%+.2f%%)\n", ctx,
                            d.prefill_tps, s.prefill_tps, s.prefill_tps / d.prefill_tps, d.decode_tps, s.decode_tps, s.decode_tps / d.decode_tps, d.ppl, s.ppl,
                            100 * (s.ppl / d.ppl - 1));
        }
        std::fflush(stdout);
        rows.push_back(j);
    }
    if (json_out) std::cout << rows.dump(2) << "\n";
    return 0;
}

} // namespace winnow::cli
