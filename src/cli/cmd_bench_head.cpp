// winnow bench head: AdaptiveSoftmax against the exact head on real hidden states (spec adaptive-softmax.md §4-§6).
// Queries are final-norm hidden states at the last position of sliding windows over a text (the window's last
// token, the target, is dropped), 1000 by default: 200 calibration windows from the text's first --tune-share of
// tokens and the rest from the remainder, so no test window shares a token with a calibration window
// (cli/head_queries.h). --tune-text takes the calibration windows (and the pca basis's states) from other texts
// instead, the test windows staying the same. For each delta the fudge factors are calibrated, then the test queries
// are run. Failures are split into wrong-arm ones (the top-1 is not the exact one) and estimate ones (the right arm,
// |p^ - p| > eps p): they call for different fixes (f_b and the elimination, or f_ln and the normalizer).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <thread>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "cli/bench_stats.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "cli/head_queries.h"
#include "head/output_head.h"
#include "decode/forward.h"
#include "head/adaptive_head.h"
#include "head/adaptive_softmax.h"
#include "head/calibration.h"
#include "head/fast_adaptive_softmax.h"
#include "head/rotation.h"
#include "head/row_clusters.h"
#include "head/exact_head.h"
#include "io/gguf.h"
#include "io/quant.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "winnow/error.h"

namespace po = boost::program_options;

namespace winnow::cli {

namespace {

using Clock = std::chrono::steady_clock;

} // namespace

int cmd_bench_head(const std::vector<std::string>& args) {
    if (bench_head_wants_device(args)) return cmd_bench_head_device(args); // the exact head's kernels per device (cmd_bench_head_device.cpp)
    std::string model_arg, text_path = "/usr/share/common-licenses/GPL-3", cache, csv_path, variants_arg = "fast,faithful", confidences_arg = "0",
                rotations_arg = "none", prefixes_arg = "0", row_clusters_arg = "0", pulls_arg = "batched", tune_texts_arg;
    int window = 64, n_queries = 1000, n_tune = 200, threads = 0, head_threads = 0, tail_pilot = 16, pca_windows = 1000, calibration_repeats = 1;
    std::string best_arm_shares_arg = "0.5";
    double tune_share = 0.2, normalizer_exact_share = 0, normalizer_exact_sds = 0;
    std::string warmup_caps_arg = "0.1", deltas_arg = "0.01,0.05,0.1", norm_factor_arg = "reference", normalizer_arg = "plain", stream_costs_arg = "3";
    bool json_out = false, warmup_prune = false, warmup_without_norm_factor = false;
    po::options_description opts("winnow bench head options");
    opts.add_options()("help,h", "show this help")("model,m", po::value(&model_arg), "model (.gguf)")(
        "text", po::value(&text_path)->default_value(text_path), "text the query windows slide over")(
        "window", po::value(&window)->default_value(64), "tokens per window (the last one is the target and dropped)")(
        "queries", po::value(&n_queries)->default_value(1000), "number of windows")("tune", po::value(&n_tune)->default_value(200), "queries used for calibration")(
        "tune-share", po::value(&tune_share)->default_value(0.2, "0.2"), "calibration windows come from this first share of the text's tokens, test windows from the rest")(
        "tune-text", po::value(&tune_texts_arg),
        "comma-separated files the calibration windows (and the pca basis's states) come from instead of the text's first share, spread over all of them; "
        "the test windows stay the same (test = --queries - --tune)")(
        "cache", po::value(&cache), "file to keep the collected hidden states in (reused when it matches)")(
        "threads,t", po::value(&threads)->default_value(0), "threads for the forward passes")("csv", po::value(&csv_path), "also write the table as CSV")(
        "variants", po::value(&variants_arg)->default_value(variants_arg), "comma-separated: fast, faithful (reference)")(
        "confidence", po::value(&confidences_arg)->default_value(confidences_arg),
        "comma-separated calibration confidences: 0 = the authors' rule (floor(delta N) tuning failures), c in (0, 1) = the tuning set must reject 'failure rate >= delta' at confidence c")(
        "head-threads", po::value(&head_threads)->default_value(0), "threads for the exact and the fast head (0 = all cores)")(
        "rotate", po::value(&rotations_arg)->default_value(rotations_arg),
        "comma-separated bases for the heads: none, pca (the principal axes of the tuning queries: head A R, queries R^T x; the fast head stores A R as the model stores its head and rotates each query inside the timed run)")(
        "pca-windows", po::value(&pca_windows)->default_value(pca_windows),
        "the pca basis is fit on the states of this many windows of the tuning region, less those that are calibration windows (0: on the calibration queries themselves)")(
        "exact-prefix", po::value(&prefixes_arg)->default_value(prefixes_arg),
        "comma-separated exact prefixes for the faithful and the fast head: every arm reads the query's m heaviest columns exactly, only the rest is sampled (0 = the reference)")(
        "row-clusters", po::value(&row_clusters_arg)->default_value(row_clusters_arg),
        "comma-separated: the faithful and the fast head cluster the head's rows into k groups (k-means) and sample each row less its centroid, "
        "the k centroid logits computed exactly (0 = the reference: sample the rows themselves)")(
        "pulls", po::value(&pulls_arg)->default_value(pulls_arg),
        "comma-separated PullToVar modes of the faithful head's warm-up and elimination: batched (the reference: the whole set to one prefix), per-arm (only the arms above their target)")(
        "best-arm-share", po::value(&best_arm_shares_arg)->default_value(best_arm_shares_arg),
        "the share of the calibration's failure budget (rounded up) that f_b's search may spend on wrong arms; the full run's f_ln search has the whole. "
        "A comma-separated list: each share in turn until a calibration meets its budget (e.g. 0.5,0.25)")(
        "calibration-repeats", po::value(&calibration_repeats)->default_value(1), "runs of each tuning query (fresh noise) per factor tried")(
        "warmup-cap", po::value(&warmup_caps_arg)->default_value(warmup_caps_arg),
        "warm-up pulls at most this fraction of d' per arm (the exact prefix and pilot are read whatever it says); a comma-separated list: "
        "per delta, the cap whose calibrated run costs the fewest samples on the tuning queries is chosen, then tested")(
        "warmup-without-norm-factor", po::bool_switch(&warmup_without_norm_factor),
        "faithful head: the warm-up's variance target is the theory constant whatever f_ln is (f_ln then only moves the normalizer phase)")(
        "warmup-prune", po::bool_switch(&warmup_prune), "faithful head: the warm-up's variance target only for arms that may carry softmax mass")(
        "tail-pilot", po::value(&tail_pilot)->default_value(tail_pilot), "faithful head, with an exact prefix: tail columns every arm reads before its variance is used (the fast head reads 16)")(
        "deltas", po::value(&deltas_arg)->default_value(deltas_arg), "comma-separated failure probabilities, each calibrated and tested in turn")(
        "norm-factor", po::value(&norm_factor_arg)->default_value(norm_factor_arg),
        "faithful head: how f_ln enters the normalizer: reference (it scales the variances of the lower bounds too) or targets (it divides the targets only: "
        "a monotone knob)")(
        "normalizer", po::value(&normalizer_arg)->default_value(normalizer_arg),
        "faithful and fast heads: plain (the reference: logsumexp of the estimates) or debiased (each arm's estimate less half its variance, "
        "the lognormal mean correction for exp's convexity)")(
        "normalizer-exact-share", po::value(&normalizer_exact_share)->default_value(0),
        "faithful head: the normalizer phase first computes exactly the arms whose upper bound could hold this share of the normalizer (0: none)")(
        "normalizer-exact-sds", po::value(&normalizer_exact_sds)->default_value(0),
        "faithful head: that upper bound's width in standard deviations of each estimate (0: the estimate itself; negative: sqrt(2 L), the elimination's)")(
        "stream-cost", po::value(&stream_costs_arg)->default_value(stream_costs_arg),
        "comma-separated: the fast head streams a round's new columns when that costs less than exact rows, a streamed element taken as this many "
        "exact-row elements (larger: more exact rows, fewer samples saved)")(
        "json", po::bool_switch(&json_out), "print the table as JSON");
    po::variables_map vm;
    if (!parse_options(opts, args, vm)) return 0;
    if (window < 2 || n_queries < 10 || n_tune < 1 || n_tune >= n_queries) throw Error(ErrorKind::invalid_argument, "need --window >= 2, --queries >= 10, 1 <= --tune < --queries");

    std::vector<std::string> variants;
    for (const std::string& v : list_items(variants_arg)) {
        if (v != "fast" && v != "faithful") throw Error(ErrorKind::invalid_argument, "--variants: '" + v + "' is not fast or faithful");
        variants.push_back(v);
    }
    // options that only the faithful head reads are refused when no faithful row runs, rather than silently ignored
    if (std::find(variants.begin(), variants.end(), "faithful") == variants.end())
        for (const char* o : {"pulls", "warmup-without-norm-factor", "warmup-prune", "tail-pilot", "norm-factor", "normalizer-exact-share", "normalizer-exact-sds"})
            if (vm.count(o) && !vm[o].defaulted())
                throw Error(ErrorKind::invalid_argument, std::string("--") + o + " applies to the faithful head only, and --variants has no faithful");
    std::vector<std::string> rotations;
    for (const std::string& v : list_items(rotations_arg)) {
        if (v != "none" && v != "pca") throw Error(ErrorKind::invalid_argument, "--rotate: '" + v + "' is not none or pca");
        rotations.push_back(v);
    }
    // a comma-separated list of counts >= 0 (stoi's partial parses, e.g. "16x", pass as 16, as they always did)
    auto count_list = [](const std::string& arg, const std::string& option, const std::string& what) {
        std::vector<int> counts;
        for (const std::string& v : list_items(arg)) {
            int c = -1;
            try { c = std::stoi(v); } catch (const std::exception&) {}
            if (c < 0) throw Error(ErrorKind::invalid_argument, option + ": '" + v + "' is not a " + what + " >= 0");
            counts.push_back(c);
        }
        return counts;
    };
    const std::vector<int> prefixes = count_list(prefixes_arg, "--exact-prefix", "column count");
    const std::vector<int> row_cluster_counts = count_list(row_clusters_arg, "--row-clusters", "cluster count");
    std::vector<bool> batched_modes;
    for (const std::string& v : list_items(pulls_arg)) {
        if (v != "batched" && v != "per-arm") throw Error(ErrorKind::invalid_argument, "--pulls: '" + v + "' is not batched or per-arm");
        batched_modes.push_back(v == "batched");
    }
    const std::vector<double> warmup_caps = number_list(warmup_caps_arg, "--warmup-cap", "in (0, 1]", [](double v) { return v > 0 && v <= 1; });
    if (norm_factor_arg != "reference" && norm_factor_arg != "targets")
        throw Error(ErrorKind::invalid_argument, "--norm-factor: '" + norm_factor_arg + "' is not reference or targets");
    const std::vector<double> best_arm_shares = number_list(best_arm_shares_arg, "--best-arm-share", "in (0, 1]", [](double v) { return v > 0 && v <= 1; });
    if (!(normalizer_exact_share >= 0 && normalizer_exact_share <= 1))
        throw Error(ErrorKind::invalid_argument, "--normalizer-exact-share must be in [0, 1]");
    if (normalizer_arg != "plain" && normalizer_arg != "debiased")
        throw Error(ErrorKind::invalid_argument, "--normalizer: '" + normalizer_arg + "' is not plain or debiased");
    const std::vector<double> stream_costs = number_list(stream_costs_arg, "--stream-cost", "finite and > 0", [](double v) { return v > 0 && std::isfinite(v); });
    const std::vector<double> deltas = number_list(deltas_arg, "--deltas", "in (0, 1)", [](double v) { return v > 0 && v < 1; });
    const std::vector<double> confidences = number_list(confidences_arg, "--confidence", "in [0, 1)", [](double v) { return v >= 0 && v < 1; });
    const std::vector<std::string> tune_texts = list_items(tune_texts_arg);
    auto model = LoadedModel::load(resolve_model_path(model_arg));
    if (!model->gguf()) throw Error(ErrorKind::unsupported, "bench head needs a GGUF model");
    const HeadQueries hq = collect_head_queries(
        *model, text_path, {.window = window, .n_tune = n_tune, .n_test = n_queries - n_tune, .tune_share = tune_share, .tune_texts = tune_texts}, threads, cache);
    const std::string& hash = hq.text_hash;
    const int n = model->config().n_vocab, d = model->config().n_embd;

    // the exact head runs on the stored format; the fast adaptive head on a column-major copy of the same values;
    // the faithful reference on an fp32 copy
    const Matrix& W = model->weights().output;
    head::AdaptiveHeadOptions fast_options;
    fast_options.threads = head_threads;
    head::AdaptiveHead fast_head(*model, fast_options);
    const std::span<const float> A = fast_head.dense_matrix();

    const std::vector<std::vector<float>>& tune = hq.tune;
    const std::vector<std::vector<float>>& test = hq.test;
    const head::AdaptiveParams base;
    const auto truth_tune = head::exact_answers(A, n, d, tune, base), truth = head::exact_answers(A, n, d, test, base);

    // exact head wall-clock: the decoder's exact output head (GEMV on the stored weights, argmax) on the same threads
    // as the fast head, and the log-normalizer with the fast head's exp kernel (head::log_sum_exp), so the two heads
    // pay for the same exp (the backend's top_k would use scalar double exp: ~0.3 ms more on 49152 logits)
    auto be = make_cpu_backend(head_threads);
    head::ExactOutputHead exact_head(*be, W);
    const Tensor hidden = be->alloc(GgmlType::F32, 1, d);
    std::vector<double> exact_ms;
    for (int rep = 0; rep < 2; ++rep) // the first pass warms caches and the thread pool
        for (size_t q = 0; q < std::min<size_t>(test.size(), 200); ++q) {
            const auto t0 = Clock::now();
            be->upload(test[q].data(), hidden);
            const head::HeadOutput out = exact_head.compute(hidden, {.k = 1, .full_logits = true});
            volatile double sink = head::log_sum_exp(out.logits);
            (void)sink;
            if (rep == 1) exact_ms.push_back(ms_since(t0));
        }
    const double exact_median = median(exact_ms);
    const double head_bytes = static_cast<double>(W.row_bytes) * n;

    // One run of each query with its own seed (seed0 + q) against the exact answers, summed over the set.
    struct Score {
        double frac = 0, macs = 0, bytes = 0, warm = 0, best = 0, norm = 0;
        int ok = 0, wrong_arm = 0, estimate = 0; // failures: the top-1 is not the exact one / the right arm, |p^ - p| > eps p
        int estimate_low = 0;                      // estimate failures with p^ < p (the normalizer too large)
        std::vector<double> ms;
        std::vector<double> setup_ms, warmup_ms, best_ms, norm_ms; // per phase, where the head times them
    };
    auto score = [](head::AdaptiveAlgorithm& algo, head::AdaptiveParams p, const std::vector<std::vector<float>>& qs, const std::vector<head::HeadResult>& exact,
                    uint64_t seed0) {
        Score s;
        for (size_t q = 0; q < qs.size(); ++q) {
            p.seed = seed0 + q;
            const auto t0 = Clock::now();
            const auto r = algo.run(qs[q], p);
            s.ms.push_back(ms_since(t0));
            s.setup_ms.push_back(r.cost.setup_ms), s.warmup_ms.push_back(r.cost.warmup_ms);
            s.best_ms.push_back(r.cost.best_arm_ms), s.norm_ms.push_back(r.cost.normalizer_ms);
            s.frac += r.cost.fraction();
            s.macs += static_cast<double>(r.cost.multiply_adds) / r.cost.baseline;
            s.bytes += static_cast<double>(r.cost.bytes_read);
            s.warm += static_cast<double>(r.cost.warmup) / r.cost.baseline;
            s.best += static_cast<double>(r.cost.best_arm) / r.cost.baseline;
            s.norm += static_cast<double>(r.cost.normalizer) / r.cost.baseline;
            if (r.head.top != exact[q].top) ++s.wrong_arm;
            else if (std::abs(r.head.p_top - exact[q].p_top) > p.epsilon * exact[q].p_top) {
                ++s.estimate;
                s.estimate_low += r.head.p_top < exact[q].p_top;
            }
            else ++s.ok;
        }
        return s;
    };

    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    // How a rotated head's exact answers differ from the model's (fp32 rounding of A R, or its quantization).
    auto report_rotated_truth = [&](const char* what, const std::vector<head::HeadResult>& rotated, const std::vector<head::HeadResult>& unrotated) {
        int flips = 0;
        double worst_p = 0;
        for (size_t q = 0; q < unrotated.size(); ++q) {
            flips += rotated[q].top != unrotated[q].top;
            worst_p = std::max(worst_p, static_cast<double>(std::abs(rotated[q].p_top - unrotated[q].p_top) / unrotated[q].p_top));
        }
        std::fprintf(stderr, "pca basis: exact answers of the rotated head (%s) vs the unrotated: %d top-1 differences in %zu test queries, max relative p_top difference %.2g\n",
                     what, flips, unrotated.size(), worst_p);
    };
    // the queries an algorithm sees (rotated ones for a rotated head); truths stay those of the unrotated head
    auto bench_variant = [&](head::AdaptiveAlgorithm& algo, const std::string& label, int algo_threads, double confidence,
                             const std::vector<std::vector<float>>& tune_q, const std::vector<std::vector<float>>& test_q, const std::string& basis,
                             const head::FaithfulOptions& fo, std::optional<double> stream_cost = std::nullopt) { // stream_cost: a fast row's, for its label
        for (double delta : deltas) {
            head::AdaptiveParams p = base;
            p.delta = delta;
            // The warm-up cap, chosen on the tuning queries alone when several are given: each is calibrated, then run
            // with its factors over the tuning queries (fresh noise), and the one that costs the fewest samples there
            // wins (among those whose calibration met its budget, when any did). The test queries are not looked at.
            // The rerun is made for a single cap too: its success against the test success tells a calibration that
            // selected its factors on the noise of its own draws (low here too) from a test region harder than the
            // tuning queries (high here, low on the test). It advances the head's per-query noise counter, so with a
            // single cap the test rows are another noise draw than those of a binary without the rerun.
            nlohmann::ordered_json cap_trials = nlohmann::ordered_json::array();
            head::Calibration cal;
            Score chosen_tune;
            double chosen_cost = INFINITY;
            bool chosen_met = false;
            for (double cap : warmup_caps) {
                head::AdaptiveParams t = p;
                t.warmup_cap = cap;
                const auto c = head::calibrate_over_shares(algo, tune_q, truth_tune, t, confidence, calibration_repeats, best_arm_shares);
                t.fudge_best = c.fudge_best, t.fudge_norm = c.fudge_norm;
                const Score st = score(algo, t, tune_q, truth_tune, 2'000'000);
                const double tune_frac = st.frac / static_cast<double>(tune_q.size());
                cap_trials.push_back({{"warmup_cap", cap}, {"fudge_best", c.fudge_best}, {"fudge_norm", c.fudge_norm}, {"calibration_met", c.met},
                                      {"tuning_samples_fraction", tune_frac}, {"tuning_success", st.ok / static_cast<double>(tune_q.size())},
                                      {"tuning_failures_wrong_arm", st.wrong_arm}, {"tuning_failures_estimate", st.estimate}});
                const bool better = (c.met && !chosen_met) || (c.met == chosen_met && tune_frac < chosen_cost);
                if (cap_trials.size() == 1 || better) cal = c, chosen_tune = st, chosen_cost = tune_frac, chosen_met = c.met, p.warmup_cap = cap;
            }
            p.fudge_best = cal.fudge_best;
            p.fudge_norm = cal.fudge_norm;
            const Score st = score(algo, p, test_q, truth, 1'000'000);
            const double frac = st.frac, macs = st.macs, bytes = st.bytes, warm = st.warm, best = st.best, norm = st.norm;
            const int ok = st.ok;
            const std::vector<double>& ms = st.ms;
            const double m = static_cast<double>(test.size());
            nlohmann::ordered_json row;
            row["variant"] = label;
            row["basis"] = basis;
            row["exact_prefix"] = fo.exact_prefix;
            row["tail_pilot"] = fo.exact_prefix > 0 ? fo.tail_pilot : 0;
            row["pulls"] = fo.batched_warmup && fo.batched_elimination ? "batched" : "per-arm";
            row["warmup_prune"] = fo.warmup_skips_negligible;
            row["norm_factor"] = fo.norm_factor_on_targets_only ? "targets" : "reference";
            row["normalizer"] = fo.debiased_normalizer ? "debiased" : "plain";
            row["normalizer_exact_share"] = fo.normalizer_exact_share;
            row["normalizer_exact_sds"] = fo.normalizer_exact_sds;
            row["row_clusters"] = fo.row_clusters;
            row["warmup_without_norm_factor"] = fo.warmup_without_norm_factor;
            row["threads"] = algo_threads;
            row["calibration_confidence"] = confidence;
            row["warmup_cap"] = p.warmup_cap;
            if (stream_cost) row["stream_cost"] = *stream_cost;
            if (warmup_caps.size() > 1) row["warmup_cap_trials"] = cap_trials; // chosen on the tuning queries
            row["delta"] = delta;
            row["gain"] = m / frac;
            row["success"] = ok / m;
            row["failures_wrong_arm"] = st.wrong_arm;
            row["failures_estimate"] = st.estimate;
            row["failures_estimate_low"] = st.estimate_low; // of those, p^ below p
            // the chosen factors rerun on the tuning queries with fresh noise
            row["tuning_success"] = chosen_tune.ok / static_cast<double>(tune_q.size());
            row["tuning_failures_wrong_arm"] = chosen_tune.wrong_arm;
            row["tuning_failures_estimate"] = chosen_tune.estimate;
            row["tuning_failures_estimate_low"] = chosen_tune.estimate_low;
            row["fudge_best"] = cal.fudge_best;
            row["fudge_norm"] = cal.fudge_norm;
            row["calibration_met"] = cal.met; // false: even the most conservative factors missed the tuning budget
            row["calibration_allowed_failures"] = cal.allowed;
            row["calibration_allowed_best_arm_failures"] = cal.allowed_best;
            row["calibration_best_arm_share"] = cal.best_arm_share;
            row["calibration_failures_at_top_best"] = cal.failures_at_top_best; // f_b = 1
            row["calibration_failures_at_top_norm"] = cal.failures_at_top_norm; // f_ln at its range's top, f_b calibrated
            row["samples_fraction"] = frac / m;
            row["warmup_fraction"] = warm / m;
            row["best_arm_fraction"] = best / m;
            row["normalizer_fraction"] = norm / m;
            row["multiply_adds_fraction"] = macs / m;     // real products incl. re-reads and SIMD padding, / (n d')
            row["bytes_read_per_query"] = bytes / m;      // in the layout the variant reads (faithful: fp32 copy)
            row["bytes_read_vs_stored_head"] = bytes / m / head_bytes;
            row["exact_head_ms"] = exact_median;
            row["adaptive_head_ms"] = median(ms);
            row["wall_clock_speedup"] = exact_median / median(ms);
            // medians of each phase's time (0 for a head that does not time its phases); they need not add up to the total's median
            row["phase_ms_median"] = {{"setup", median(st.setup_ms)}, {"warmup", median(st.warmup_ms)}, {"best_arm", median(st.best_ms)},
                                      {"normalizer", median(st.norm_ms)}};
            rows.push_back(row);
            char stream_cost_label[48] = "";
            if (stream_cost) std::snprintf(stream_cost_label, sizeof stream_cost_label, " stream-cost %g", *stream_cost);
            const std::string departures = (fo.row_clusters > 0 ? " clusters " + std::to_string(fo.row_clusters) : std::string()) +
                                           (fo.warmup_without_norm_factor ? " warm-up-without-f_ln" : "");
            std::fprintf(stderr,
                         "%s%s %s prefix %d%s %s%s%s%s delta %.2f: gain %.2fx, success %.1f%% (failures: %d wrong arm, %d estimate (%d low); tuning rerun %.1f%%: %d / %d (%d low)), "
                         "f_b %.3g, f_ln %.3g, budget met %s (at the top factors %d / %d and %d / %d), warm-up cap %.3g, warm-up %.4f, best arm %.4f, normalizer %.4f\n",
                         label.c_str(), stream_cost_label, basis.c_str(), fo.exact_prefix, departures.c_str(), row["pulls"].get<std::string>().c_str(), fo.warmup_skips_negligible ? " prune" : "",
                         fo.norm_factor_on_targets_only ? " f_ln-on-targets" : "", fo.debiased_normalizer ? " debiased" : "", delta, m / frac, 100.0 * ok / m,
                         st.wrong_arm, st.estimate, st.estimate_low, 100 * row["tuning_success"].get<double>(), chosen_tune.wrong_arm, chosen_tune.estimate,
                         chosen_tune.estimate_low, cal.fudge_best, cal.fudge_norm,
                         cal.met ? "yes" : "no", cal.failures_at_top_best, cal.allowed_best, cal.failures_at_top_norm, cal.allowed, p.warmup_cap, warm / m, best / m, norm / m);
        }
    };
    const int fast_threads = head_threads > 0 ? head_threads : static_cast<int>(std::thread::hardware_concurrency());
    // The PCA basis, made once on first use: the rotation, the rotated head (fp32) and the rotated queries.
    struct PcaBasis {
        head::HeadRotation rot;
        std::vector<float> AR;
        std::vector<std::vector<float>> tune_r, test_r;
    };
    std::optional<PcaBasis> pca;
    auto pca_basis = [&]() -> const PcaBasis& {
        if (pca) return *pca;
        // PCA of states from the tuning region only (the test queries never shape the basis), and not of the
        // calibration queries themselves: 200 states span only 200 of the 576 dimensions, so in a basis fit on
        // them the calibration queries have no energy in the trailing axes while every other query has some,
        // and the factors calibrated on them are too aggressive for held-out queries.
        std::vector<std::vector<float>> pca_states;
        if (pca_windows > 0) {
            const HeadQueries ps = collect_head_queries(
                *model, text_path, {.window = window, .n_tune = pca_windows, .n_test = 0, .tune_share = tune_share, .tune_texts = tune_texts}, threads,
                cache.empty() ? cache : cache + ".pca");
            for (size_t q = 0; q < ps.tune.size(); ++q) // both lists are sorted by (text, start)
                if (!std::binary_search(hq.tune_windows.begin(), hq.tune_windows.end(), ps.tune_windows[q])) pca_states.push_back(ps.tune[q]);
            if (pca_states.empty()) // every basis window is a calibration window (e.g. --pca-windows equal to --tune over tuning texts)
                throw Error(ErrorKind::invalid_argument, "--pca-windows " + std::to_string(pca_windows) + " leaves no window beyond the calibration ones");
            std::fprintf(stderr, "pca basis: fit on %zu states of the %s (%zu windows less the calibration windows)\n", pca_states.size(),
                         tune_texts.empty() ? "tuning region" : "tuning texts", ps.tune.size());
        }
        PcaBasis b;
        b.rot = head::pca_rotation(pca_windows > 0 ? pca_states : tune, d);
        auto energy_of = [&](const std::vector<std::vector<float>>& set, int k) {
            double lead = 0, total = 0;
            for (const auto& x : set) {
                const auto y = head::rotate_query(x, b.rot);
                for (int j = 0; j < d; ++j) (j < k ? lead : total) += static_cast<double>(y[j]) * y[j];
            }
            return lead / (lead + total);
        };
        std::fprintf(stderr, "pca basis: share of the energy in the first 8 / 32 / 128 axes: calibration queries %.3f / %.3f / %.3f, test queries %.3f / %.3f / %.3f\n",
                     energy_of(tune, 8), energy_of(tune, 32), energy_of(tune, 128), energy_of(test, 8), energy_of(test, 32), energy_of(test, 128));
        b.AR = head::rotate_head(A, n, b.rot);
        for (const auto& x : tune) b.tune_r.push_back(head::rotate_query(x, b.rot));
        for (const auto& x : test) b.test_r.push_back(head::rotate_query(x, b.rot));
        std::fprintf(stderr, "pca basis: %.1f%% / %.1f%% / %.1f%% of the tuning states' energy in the first 8 / 32 / 128 axes\n",
                     100 * b.rot.energy_in_leading(8), 100 * b.rot.energy_in_leading(32), 100 * b.rot.energy_in_leading(128));
        // the rotated head's exact answers against the unrotated truth (equal up to fp32 rounding of A R)
        report_rotated_truth("fp32 A R", head::exact_answers(b.AR, n, d, b.test_r, base), truth);
        pca = std::move(b);
        return *pca;
    };
    // The fast head's rotated head, made once on first use: its columns A R stored as the model stores its head (Q8_0
    // for a Q8_0 or Q4_0 head: A R quantized again, whose exact answers differ from the model's; reported), its exact
    // rows the model's own in the model's basis.
    std::shared_ptr<const head::ColumnMajorHead> pca_fast;
    std::shared_ptr<const head::ColumnMajorHead> plain_fast; // the unrotated fast head's columns, for non-default options
    auto pca_fast_columns = [&]() {
        if (pca_fast) return pca_fast;
        const PcaBasis& b = pca_basis();
        const bool q8 = head::ColumnMajorHead::stores_q8(W.type);
        if (q8) report_rotated_truth("Q8_0 A R", head::exact_answers(head::ColumnMajorHead(b.AR, n, d, true).dense(), n, d, b.test_r, base), truth);
        pca_fast = std::make_shared<const head::ColumnMajorHead>(b.AR, n, d, q8, W, b.rot.R);
        return pca_fast;
    };
    // The fast head's cluster-centred columns per basis and k, made once on first use: the residual rows of A (or A R)
    // stored as the model stores its head, the exact rows the model's.
    std::map<std::pair<std::string, int>, std::shared_ptr<const head::ColumnMajorHead>> clustered_fast;
    auto clustered_fast_columns = [&](const std::string& basis, int k) {
        auto& slot = clustered_fast[{basis, k}];
        if (slot) return slot;
        const bool q8 = head::ColumnMajorHead::stores_q8(W.type);
        const std::span<const float> S = basis == "none" ? A : std::span<const float>(pca_basis().AR);
        head::RowClusters clusters = head::cluster_rows(S, n, d, k);
        std::fprintf(stderr, "fast head, basis %s: %d row clusters leave %.1f%% of the rows' energy in the residuals\n", basis.c_str(), clusters.k,
                     100 * head::residual_energy_share(S, head::residual_rows(S, n, clusters)));
        slot = std::make_shared<const head::ColumnMajorHead>(S, n, d, q8, W, basis == "none" ? std::vector<float>{} : pca_basis().rot.R, std::move(clusters));
        return slot;
    };
    for (double confidence : confidences)
        for (const auto& v : variants)
            for (const auto& basis : rotations) {
                if (v == "fast") {
                    for (int m : prefixes)
                        for (int clusters : row_cluster_counts)
                            for (double stream_cost : stream_costs) {
                                // the row's labels (the fast head's pulls are batched, its tail pilot fixed)
                                const bool debiased = normalizer_arg == "debiased";
                                const head::FaithfulOptions row_label{.exact_prefix = m,
                                                                      .tail_pilot = head::FastAdaptiveSoftmax::kTailPilot,
                                                                      .debiased_normalizer = debiased,
                                                                      .row_clusters = clusters};
                                const head::FastOptions fo{.threads = fast_threads, .exact_prefix = m, .stream_cost = stream_cost, .debiased_normalizer = debiased};
                                if (basis == "none") {
                                    // the default options run the model's own AdaptiveHead (as every committed table did: its
                                    // noise counter runs on across confidences); other options, a head on one shared column copy
                                    if (m == 0 && clusters == 0 && stream_cost == head::FastOptions{}.stream_cost && !debiased) {
                                        bench_variant(fast_head.algorithm(), head::algorithm_key(fast_options), fast_threads, confidence, tune, test, "none", row_label, stream_cost);
                                    } else {
                                        if (!plain_fast) plain_fast = std::make_shared<const head::ColumnMajorHead>(W);
                                        head::FastAdaptiveSoftmax fast(clusters > 0 ? clustered_fast_columns("none", clusters) : plain_fast, fo);
                                        bench_variant(fast, head::algorithm_key(fast_options), fast_threads, confidence, tune, test, "none", row_label, stream_cost);
                                    }
                                    continue;
                                }
                                // The fast head on the rotated head, queries rotated inside every timed run; a fresh head per
                                // confidence and options (its query count seeds the noise), on one column copy
                                const PcaBasis& b = pca_basis();
                                head::RotatedAlgorithm rotated(
                                    std::make_unique<head::FastAdaptiveSoftmax>(clusters > 0 ? clustered_fast_columns("pca", clusters) : pca_fast_columns(), fo), b.rot);
                                bench_variant(rotated, head::algorithm_key(fast_options), fast_threads, confidence, tune, test, "pca", row_label, stream_cost);
                            }
                    continue;
                }
                auto faithful_rows = [&](std::span<const float> M, const std::vector<std::vector<float>>& tune_q, const std::vector<std::vector<float>>& test_q) {
                    for (int m : prefixes)
                        for (int clusters : row_cluster_counts)
                            for (bool batched : batched_modes) {
                                const head::FaithfulOptions fo{.exact_prefix = m, .tail_pilot = tail_pilot, .batched_warmup = batched, .batched_elimination = batched,
                                                               .warmup_skips_negligible = warmup_prune,
                                                               .norm_factor_on_targets_only = norm_factor_arg == "targets",
                                                               .debiased_normalizer = normalizer_arg == "debiased",
                                                               .normalizer_exact_share = normalizer_exact_share,
                                                               .normalizer_exact_sds = normalizer_exact_sds,
                                                               .row_clusters = clusters,
                                                               .warmup_without_norm_factor = warmup_without_norm_factor};
                                head::AdaptiveSoftmax faithful(M, n, d, fo);
                                bench_variant(faithful, "faithful", 1, confidence, tune_q, test_q, basis, fo);
                            }
                };
                if (basis == "none") {
                    faithful_rows(A, tune, test);
                    continue;
                }
                const PcaBasis& b = pca_basis();
                faithful_rows(b.AR, b.tune_r, b.test_r);
            }
    nlohmann::ordered_json report;
    report["model"] = model->path();
    report["n"] = n;
    report["d"] = d;
    report["head_type"] = ggml_type_name(W.type);
    report["text"] = text_path;
    report["text_fnv1a"] = hash;
    report["text_tokens"] = hq.text_tokens;
    report["window"] = window;
    report["queries"] = n_queries;
    report["tune"] = n_tune;
    report["tune_region_tokens"] = hq.boundary; // calibration windows lie in tokens [0, boundary) (unless tuning texts are given), test windows after it
    if (!tune_texts.empty()) {
        nlohmann::ordered_json tt = nlohmann::ordered_json::array(); // the calibration windows' and the pca basis's texts
        for (size_t i = 0; i < tune_texts.size(); ++i) tt.push_back({{"path", tune_texts[i]}, {"fnv1a", hq.tune_hashes[i]}, {"tokens", hq.tune_text_tokens[i]}});
        report["tune_texts"] = tt;
    }
    report["model_hash"] = head::model_content_hash(model->path());
    report["test"] = test.size();
    report["pca_windows"] = pca_windows; // the pca basis's states: this many tuning-region (or tuning-text) windows less the calibration ones
    report["tail_pilot"] = tail_pilot;
    report["calibration_repeats"] = calibration_repeats;
    // one cap, or the candidates each row chose from on its tuning queries (the row's warmup_cap)
    if (warmup_caps.size() == 1) report["warmup_cap"] = warmup_caps[0];
    else report["warmup_cap_candidates"] = warmup_caps;
    report["epsilon"] = 0.3;
    report["rows"] = rows;
    report["paper_gpt2_wikitext2"] = {{"delta_0.01", "6.87x / 98.1%"}, {"delta_0.05", "7.67x / 94.8%"}, {"delta_0.10", "8.30x / 89.2%"}};
    if (!csv_path.empty()) {
        std::ofstream csv(csv_path);
        bool header = true;
        for (auto& r : rows) {
            if (header) {
                for (auto it = r.begin(); it != r.end(); ++it) csv << (it == r.begin() ? "" : ",") << it.key();
                csv << "\n";
                header = false;
            }
            for (auto it = r.begin(); it != r.end(); ++it) csv << (it == r.begin() ? "" : ",") << (it->is_string() ? it->get<std::string>() : it->dump());
            csv << "\n";
        }
    }
    if (json_out) {
        std::cout << report.dump(2) << "\n";
        return 0;
    }
    std::printf("AdaptiveSoftmax on %s (n = %d, d = %d, head %s), %zu test queries from %s (fnv1a %s), windows of %d, eps = 0.3\n",
                std::filesystem::path(model->path()).filename().c_str(), n, d, ggml_type_name(W.type), test.size(), text_path.c_str(), hash.c_str(), window);
    if (!tune_texts.empty()) std::printf("calibration windows from the %zu tuning texts (--tune-text), ", tune_texts.size());
    else std::printf("calibration windows from tokens [0, %zu), ", hq.boundary);
    std::printf("test windows from [%zu, %zu); budget met = the calibrated factors kept the tuning failures within the budget (no: even f = 1 did not, the factors are 1)\n",
                hq.boundary, hq.text_tokens);
    std::printf("| variant | basis | exact prefix | pulls | threads | conf. | delta | budget met | gain | success | wrong arm | estimate | tuning rerun | f_b | f_ln | warm-up | best arm | normalizer | real MACs / nd | bytes / stored head | exact ms | adaptive ms | speed-up |\n");
    std::printf("| --- | --- | ---: | --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (auto& r : rows)
        std::printf("| %s | %s | %d | %s | %d | %.2g | %.2f | %s | %.2fx | %.1f%% | %d | %d | %.1f%% | %.2g | %.2g | %.4f | %.4f | %.4f | %.4f | %.3f | %.3f | %.3f | %.2fx |\n",
                    r["variant"].get<std::string>().c_str(), r["basis"].get<std::string>().c_str(), r["exact_prefix"].get<int>(), r["pulls"].get<std::string>().c_str(), r["threads"].get<int>(), r["calibration_confidence"].get<double>(), r["delta"].get<double>(),
                    r["calibration_met"].get<bool>() ? "yes" : "no", r["gain"].get<double>(),
                    100 * r["success"].get<double>(), r["failures_wrong_arm"].get<int>(), r["failures_estimate"].get<int>(), 100 * r["tuning_success"].get<double>(),
                    r["fudge_best"].get<double>(), r["fudge_norm"].get<double>(), r["warmup_fraction"].get<double>(),
                    r["best_arm_fraction"].get<double>(), r["normalizer_fraction"].get<double>(), r["multiply_adds_fraction"].get<double>(),
                    r["bytes_read_vs_stored_head"].get<double>(), r["exact_head_ms"].get<double>(), r["adaptive_head_ms"].get<double>(),
                    r["wall_clock_speedup"].get<double>());
    std::printf("| paper GPT-2 / WikiText-2 (authors' result files) | | | | | | 0.01 / 0.05 / 0.10 | | 6.87x / 7.67x / 8.30x | 98.1%% / 94.8%% / 89.2%% | | | | | | | | | | | | | |\n");
    return 0;
}

} // namespace winnow::cli
