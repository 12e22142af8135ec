// winnow calibrate-head: the offline step that tunes AdaptiveSoftmax's two fudge factors for a model (spec §2.7)
// on hidden states from a text, and saves them beside the model (MODEL.head.json) for `generate --head adaptive`.
// The windows come from the text's tuning region (its first --tune-share of tokens), the region `bench head` tunes on,
// so bench head's test region stays unseen by every calibration. With --fit-head-basis it first fits the head's basis
// (head/basis_file.h) on more windows of the same region and calibrates the head in it.
#include <algorithm>
#include <filesystem>
#include <cstdio>
#include <iostream>

#include <boost/program_options.hpp>

#include "cli/adaptive_head_options.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "cli/head_queries.h"
#include "head/adaptive_head.h"
#include "head/calibration.h"
#include "io/number_text.h"
#include "model/model.h"
#include "winnow/error.h"

namespace po = boost::program_options;

namespace winnow::cli {

namespace {

// The principal axes of the final hidden states of `windows` windows of the tuning region, less those that start
// where a calibration window starts (a basis fit on the calibration queries themselves gives them no energy in the
// trailing axes, which every other query has, so factors tuned on them are too aggressive for the rest:
// bench/reports/adaptive-head-rotation-smollm2.md). The caller sets the model's identity and saves it.
head::HeadBasis fit_head_basis(const LoadedModel& model, const std::string& text_path, HeadQueryPlan plan, int windows, const HeadQueries& calibration,
                               int threads, const std::string& cache) {
    plan.n_tune = windows;
    const HeadQueries hq = collect_head_queries(model, text_path, plan, threads, cache.empty() ? cache : cache + ".basis");
    std::vector<std::vector<float>> states;
    for (size_t q = 0; q < hq.tune.size(); ++q) // both window lists are sorted
        if (!std::binary_search(calibration.tune_windows.begin(), calibration.tune_windows.end(), hq.tune_windows[q])) states.push_back(hq.tune[q]);
    if (states.empty()) throw Error(ErrorKind::invalid_argument, "--basis-windows " + std::to_string(windows) + " leaves no window beyond the calibration ones");
    head::HeadBasis basis;
    basis.rotation = head::pca_rotation(states, model.config().n_embd);
    basis.states = states.size();
    basis.source = text_path + " (fnv1a " + hq.text_hash + "): " + std::to_string(hq.tune.size()) + " windows of " + std::to_string(plan.window) +
                   " tokens in its first " + number_text(plan.tune_share) + " of tokens, less those starting where one of the " +
                   std::to_string(calibration.tune.size()) + " calibration windows starts";
    return basis;
}

} // namespace

int cmd_calibrate_head(const std::vector<std::string>& args) {
    std::string model_arg, text_path = "/usr/share/common-licenses/GPL-3", out_path, deltas_arg = "0.01,0.05,0.1", cache, impl = "fast", shares_arg = "0.5,0.25",
                basis_path;
    int window = 32, n_queries = 200, threads = 0, basis_windows = 1000;
    bool fit_basis = false;
    head::AdaptiveHeadOptions head_options;
    double epsilon = 0.3, confidence = 0, tune_share = 0.2;
    po::options_description opts("winnow calibrate-head options");
    opts.add_options()("help,h", "show this help")("model,m", po::value(&model_arg), "model (.gguf)")(
        "text", po::value(&text_path)->default_value(text_path), "text the query windows slide over")(
        "window", po::value(&window)->default_value(32), "tokens per window")("queries", po::value(&n_queries)->default_value(200), "tuning queries")(
        "tune-share", po::value(&tune_share)->default_value(0.2, "0.2"), "the windows come from this first share of the text's tokens (the rest is bench head's test region)")(
        "deltas", po::value(&deltas_arg)->default_value(deltas_arg), "comma-separated failure probabilities to calibrate")(
        "eps", po::value(&epsilon)->default_value(0.3, "0.3"), "relative error of the top probability")(
        "cache", po::value(&cache), "file to keep the collected hidden states in")("threads,t", po::value(&threads)->default_value(0), "threads for the forward passes")(
        "confidence", po::value(&confidence)->default_value(0.8, "0.8"),
        "0 = the authors' rule (floor(delta N) tuning failures); c in (0, 1) = the tuning set must reject 'failure rate >= delta' at confidence c (default 0.8: the authors' rule lands above delta on held-out queries)")(
        "head-impl", po::value(&impl)->default_value(impl), "AdaptiveSoftmax implementation: fast or faithful (reference)")(
        "best-arm-share", po::value(&shares_arg)->default_value(shares_arg),
        "comma-separated shares of the failure budget f_b's search may spend, tried in turn until a calibration meets its budget")(
        "out,o", po::value(&out_path), "output JSON (default: MODEL.head.json; entries for other algorithms or deltas are kept)");
    add_adaptive_head_options(opts, head_options, basis_path);
    opts.add_options()("fit-head-basis", po::bool_switch(&fit_basis),
                       "first fit the basis --head-basis names (written there, atomically) on the hidden states of --basis-windows windows of the tuning "
                       "region (less those starting where a calibration window starts), then calibrate the head in it")(
        "basis-windows", po::value(&basis_windows)->default_value(basis_windows), "windows whose states --fit-head-basis fits the basis on (at least 10)");
    po::variables_map vm;
    if (!parse_options(opts, args, vm)) return 0;
    const std::vector<double> deltas = number_list(deltas_arg, "--deltas", "a probability in (0, 1)", [](double v) { return v > 0 && v < 1; });
    const std::vector<double> shares = number_list(shares_arg, "--best-arm-share", "in (0, 1]", [](double v) { return v > 0 && v <= 1; });
    if (!(confidence >= 0 && confidence < 1)) throw Error(ErrorKind::invalid_argument, "--confidence must be in [0, 1)");
    if (window < 2 || n_queries < 10 || !(epsilon > 0)) throw Error(ErrorKind::invalid_argument, "need --window >= 2, --queries >= 10, --eps > 0");
    if (fit_basis && basis_path.empty()) throw Error(ErrorKind::invalid_argument, "--fit-head-basis needs --head-basis FILE: where to write the basis");
    if (basis_windows < 10) throw Error(ErrorKind::invalid_argument, "--basis-windows must be at least 10");

    auto model = LoadedModel::load(resolve_model_path(model_arg));
    if (out_path.empty()) out_path = model->path() + ".head.json";
    HeadQueryPlan plan;
    plan.window = window, plan.n_tune = n_queries, plan.n_test = 0, plan.tune_share = tune_share;
    // the head's options are checked before minutes of forward passes (and before a basis file is replaced)
    head_options.impl = head::parse_head_impl(impl);
    head::check_options(head_options, model->config().n_vocab, model->config().n_embd);
    head::ModelContentHash content_hash(model->path());
    const std::string model_hash = content_hash();
    if (!fit_basis) load_head_basis(basis_path, content_hash, model->config().n_embd, head_options);
    const HeadQueries hq = collect_head_queries(*model, text_path, plan, threads, cache);
    if (fit_basis) {
        head::HeadBasis basis = fit_head_basis(*model, text_path, plan, basis_windows, hq, threads, cache);
        basis.model_hash = model_hash;
        basis.model = model->path();
        basis.save(basis_path);
        std::printf("head basis: fit on %llu states, %.1f%% / %.1f%% / %.1f%% of their energy in the first 8 / 32 / 128 axes; wrote %s (checksum %s)\n",
                    static_cast<unsigned long long>(basis.states), 100 * basis.rotation.energy_in_leading(8), 100 * basis.rotation.energy_in_leading(32),
                    100 * basis.rotation.energy_in_leading(128), basis_path.c_str(), basis.checksum.c_str());
        head_options.basis = std::make_shared<const head::HeadBasis>(std::move(basis));
    }
    head::AdaptiveHead adaptive(*model, head_options);
    const std::string algorithm = head::algorithm_key(head_options);
    head::HeadCalibrationFile file;
    if (std::filesystem::exists(out_path)) file = head::HeadCalibrationFile::load(out_path); // keep the other entries
    // factors tuned for another epsilon or another model do not carry over
    if (file.epsilon != epsilon || file.model_hash != model_hash) file.factors.clear();
    file.model = model->path();
    file.model_hash = model_hash;
    file.epsilon = epsilon;
    for (double delta : deltas) {
        head::AdaptiveParams p;
        p.delta = delta;
        p.epsilon = epsilon;
        const auto truth = head::exact_answers(adaptive.dense_matrix(), model->config().n_vocab, model->config().n_embd, hq.tune, p);
        const auto c = head::calibrate_over_shares(adaptive.algorithm(), hq.tune, truth, p, confidence, 1, shares);
        file.put({algorithm, delta, c.fudge_best, c.fudge_norm, c.met, head::calibration_basis(head_options)});
        std::printf("%s, delta %.3g: f_b = %.4g, f_ln = %.4g (f_b's share of the budget %.3g; %d searches over %zu queries)%s\n", algorithm.c_str(), delta,
                    c.fudge_best, c.fudge_norm, c.best_arm_share, c.runs, hq.tune.size(), c.met ? "" : " -- budget NOT met");
        if (!c.met)
            std::fprintf(stderr, "warning: %s at delta %.3g: even the most conservative factor (%s) fails more than %d of %zu tuning queries; the entry keeps the smallest factor that fails no more often, met = false\n",
                         algorithm.c_str(), delta, c.met_best ? "full run, f_ln at its bound" : "best-arm phase, f_b = 1",
                         c.met_best ? c.allowed : c.allowed_best, hq.tune.size());
    }
    file.save(out_path);
    std::printf("wrote %s\n", out_path.c_str());
    return 0;
}

} // namespace winnow::cli
