// The public C++ API (include/winnow/winnow.h) over the library's internals.
#define WINNOW_PUBLIC_API_IMPL // winnow::Model is the public class here, not the internal alias
#include "winnow/winnow.h"

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <optional>

#include "backend/backend.h"
#include "chat/chat_template.h"
#include "decode/generator.h"
#include "head/adaptive_head.h"
#include "head/column_major_head.h"
#include "model/model.h"
#include "model/quantize_model.h"
#include "sparse/pattern.h"
#include "tokenizer/model_tokenizer.h"

namespace winnow {

struct Model::Impl {
    std::unique_ptr<LoadedModel> model;
    std::unique_ptr<Tokenizer> tokenizer;
    ChatTemplate chat_template; // the model's Jinja text and its BOS/EOS strings
    ModelParams params;
    ModelInfo info;
    std::optional<head::HeadCalibrationFile> calibration;
    std::string calibration_path;
    std::shared_ptr<const head::HeadBasis> basis; // ModelParams::adaptive_basis, loaded once
    // The fast adaptive head's columns, built by the first session that generates adaptively and shared by all (each
    // session's head is its own: it holds per-query state)
    // (one set per model: a model's head options are fixed at load, so every session asks for the same columns)
    mutable std::mutex fast_columns_mutex;
    mutable std::shared_ptr<const head::ColumnMajorHead> fast_columns;
    std::shared_ptr<const head::ColumnMajorHead> shared_fast_columns(const head::AdaptiveHeadOptions& o) const {
        if (o.impl != head::HeadImpl::fast) return nullptr;
        std::lock_guard<std::mutex> lock(fast_columns_mutex);
        if (!fast_columns) fast_columns = head::fast_head_columns(*model, o);
        return fast_columns;
    }
};

struct Session::Impl {
    std::shared_ptr<const Model::Impl> model;
    std::vector<BlockMask> masks; // block-sparse attention, per layer (empty: dense)
    std::unique_ptr<Backend> backend;
    std::unique_ptr<Generator> generator;
    std::unique_ptr<head::AdaptiveHead> adaptive; // built on the first adaptive generation (per session: stateful; its columns are the model's)
};

namespace {

GgmlType kv_ggml_type(KvType t) {
    switch (t) {
    case KvType::f16: return GgmlType::F16;
    case KvType::bf16: return GgmlType::BF16;
    default: return GgmlType::F32;
    }
}

// The adaptive head a session builds for the model's parameters (on the CPU).
head::AdaptiveHeadOptions adaptive_head_options(const ModelParams& p, std::shared_ptr<const head::HeadBasis> basis) {
    return {.impl = head::parse_head_impl(p.adaptive_impl),
            .threads = p.threads,
            .exact_prefix = p.adaptive_exact_prefix,
            .row_clusters = p.adaptive_row_clusters,
            .basis = std::move(basis)};
}

} // namespace

Model Model::load(const std::string& path, const ModelParams& params) {
    auto impl = std::make_shared<Impl>();
    impl->params = params;
    head::parse_head_impl(params.adaptive_impl); // reject a bad name at load, not at the first generation
    check_chat_template_kwargs(params.chat_template_kwargs); // likewise bad template kwargs
    impl->model = LoadedModel::load(path);
    impl->tokenizer = load_model_tokenizer(*impl->model);
    impl->chat_template = load_chat_template_for(*impl->model, *impl->tokenizer, {.file = "", .kwargs_json = params.chat_template_kwargs});
    const ModelConfig& c = impl->model->config();
    head::ModelContentHash content_hash(impl->model->path()); // read once, when a basis or a calibration file needs it
    if (!params.adaptive_basis.empty()) impl->basis = head::HeadBasis::load_for(params.adaptive_basis, content_hash(), c.n_embd);
    head::check_options(adaptive_head_options(params, impl->basis), c.n_vocab, c.n_embd); // likewise the head's options
    if (impl->tokenizer->n_vocab() != c.n_vocab)
        throw Error(ErrorKind::format, "tokenizer has " + std::to_string(impl->tokenizer->n_vocab()) + " tokens but the model's vocabulary is " +
                                           std::to_string(c.n_vocab));
    ModelInfo& i = impl->info;
    i.path = path;
    i.name = c.name;
    i.architecture = c.architecture();
    i.n_vocab = c.n_vocab;
    i.n_embd = c.n_embd;
    i.n_layer = c.n_layer;
    i.n_head = c.n_head;
    i.n_head_kv = c.n_head_kv;
    i.n_ctx_train = c.n_ctx_train;
    i.tokenizer = impl->tokenizer->name();
    i.has_chat_template = !impl->chat_template.source.empty();
    std::string cal = params.head_calibration;
    if (cal.empty() && std::filesystem::exists(path + ".head.json")) cal = path + ".head.json";
    if (!cal.empty()) { // made on this model's content (checked once, here); its eps is checked per generation
        impl->calibration = head::HeadCalibrationFile::load(cal);
        impl->calibration->check_matches(cal, content_hash(), impl->calibration->epsilon);
        impl->calibration_path = cal;
    }
    return Model(std::move(impl));
}

const ModelInfo& Model::info() const { return impl_->info; }

std::vector<int32_t> Model::tokenize(std::string_view text, bool parse_special) const {
    return impl_->tokenizer->encode(text, impl_->tokenizer->add_bos_default(), parse_special);
}
std::vector<int32_t> Model::tokenize(std::string_view text, bool add_bos, bool parse_special) const {
    return impl_->tokenizer->encode(text, add_bos, parse_special);
}
std::string Model::detokenize(std::span<const int32_t> ids) const {
    for (int32_t id : ids)
        if (id < 0 || id >= impl_->info.n_vocab)
            throw Error(ErrorKind::invalid_argument, "token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(impl_->info.n_vocab) + ")");
    return impl_->tokenizer->decode(std::vector<int32_t>(ids.begin(), ids.end()));
}
std::string Model::token_to_piece(int32_t id) const {
    if (id < 0 || id >= impl_->info.n_vocab) throw Error(ErrorKind::invalid_argument, "token id " + std::to_string(id) + " is outside the vocabulary");
    return impl_->tokenizer->token_to_piece(id);
}
bool Model::is_end_of_generation(int32_t id) const { return impl_->tokenizer->is_eog(id); }
std::string Model::apply_chat_template(const std::string& user, const std::string& system) const {
    return winnow::apply_chat_template(impl_->chat_template, system, user);
}
std::string Model::apply_chat_template(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
    return render_chat(impl_->chat_template, messages, add_generation_prompt);
}

Session Model::session(const SessionParams& params) const {
    if (params.n_ctx < 0) throw Error(ErrorKind::invalid_argument, "SessionParams::n_ctx must be >= 0");
    auto s = std::make_unique<Session::Impl>();
    s->model = impl_;
    BackendOptions bo;
    bo.device = impl_->params.device;
    bo.cuda_device = impl_->params.cuda_device;
    bo.threads = impl_->params.threads;
    bo.dot = impl_->params.dot;
    s->backend = make_backend(bo);
    const int n_ctx = params.n_ctx == 0 ? 0 : std::min(params.n_ctx, impl_->info.n_ctx_train);
    s->generator = std::make_unique<Generator>(*impl_->model, *impl_->tokenizer, *s->backend, n_ctx, nullptr, kv_ggml_type(params.kv_type));
    if (!params.sparse_pattern.empty()) {
        if (params.sparse_select_blocks < 0) throw Error(ErrorKind::invalid_argument, "SessionParams::sparse_select_blocks must be >= 0");
        if (params.sparse_select_block_size < 0) throw Error(ErrorKind::invalid_argument, "SessionParams::sparse_select_block_size must be >= 0");
        const auto pattern = sparse::SparsePattern::load(params.sparse_pattern);
        pattern.check_model(impl_->model->config(), params.sparse_pattern);
        Forward& f = s->generator->forward();
        if (params.sparse_dense_below < 0) throw Error(ErrorKind::invalid_argument, "SessionParams::sparse_dense_below must be >= 0");
        s->masks = pattern.masks(f.n_ctx(), params.sparse_spion_denominator ? SparseDenominator::spion : SparseDenominator::standard, params.sparse_dense_below);
        f.set_attention_masks(s->masks);
        f.set_block_selection(params.sparse_select_blocks, params.sparse_select_block_size);
    }
    return Session(std::move(s));
}

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;
Session::~Session() = default;

GenerateResult Session::generate(const std::string& prompt, const GenerateOptions& options, const TokenCallback& on_piece) {
    const Model::Impl& m = *impl_->model;
    // a chat prompt whose template printed BOS already gets no second one (encode_chat_prompt); others as the model asks
    return generate(encode_chat_prompt(*m.tokenizer, prompt), options, on_piece);
}

GenerateResult Session::generate(std::span<const int32_t> prompt_ids, const GenerateOptions& options, const TokenCallback& on_piece) {
    GenerateOptions opt = options;
    std::string head_factors_note;
    if (opt.head == HeadMode::adaptive) {
        const Model::Impl& m = *impl_->model;
        const head::AdaptiveHeadOptions ho = adaptive_head_options(m.params, m.basis);
        if (!impl_->adaptive) {
            impl_->adaptive = std::make_unique<head::AdaptiveHead>(*m.model, ho, m.shared_fast_columns(ho));
            impl_->generator->set_adaptive_head(impl_->adaptive.get());
        }
        // calibrated factors, unless the caller set their own
        if (m.calibration) m.calibration->check_matches(m.calibration_path, m.calibration->model_hash, opt.adaptive.epsilon);
        if (opt.adaptive.fudge_best == 1.0 && opt.adaptive.fudge_norm == 1.0) {
            const head::HeadFactors f = head::head_factors(m.calibration ? &*m.calibration : nullptr, m.calibration_path, ho, opt.adaptive.delta);
            opt.adaptive.fudge_best = f.fudge_best;
            opt.adaptive.fudge_norm = f.fudge_norm;
            head_factors_note = f.note;
        } else {
            head_factors_note = "the caller's (GenerateOptions::adaptive)";
        }
    }
    StreamCallback cb;
    if (on_piece) cb = [&](std::string_view piece) { return on_piece(piece); };
    GenerateResult r = impl_->generator->generate(std::vector<int32_t>(prompt_ids.begin(), prompt_ids.end()), opt, cb);
    r.head_factors = std::move(head_factors_note);
    return r;
}

std::vector<float> Session::eval(std::span<const int32_t> ids, bool all_logits) { return impl_->generator->forward().eval(ids, all_logits); }
std::vector<float> Session::hidden() const { return impl_->generator->forward().final_hidden(); }
int Session::n_past() const { return impl_->generator->forward().n_past(); }
int Session::n_ctx() const { return impl_->generator->forward().n_ctx(); }
void Session::reset() { impl_->generator->forward().reset(); }

QuantizeResult quantize(const std::string& in, const std::string& out, const QuantizeParams& params) {
    QuantizeOptions o;
    o.preset = find_quant_preset(params.preset);
    if (!o.preset) throw Error(ErrorKind::invalid_argument, "unknown quantization preset '" + params.preset + "'");
    const auto type = [](const std::string& name, const char* what) -> std::optional<GgmlType> {
        if (name.empty()) return std::nullopt;
        return require_written_type(name, what);
    };
    o.output_type = type(params.output_tensor_type, "output_tensor_type");
    o.token_embedding_type = type(params.token_embedding_type, "token_embedding_type");
    o.allow_requantize = params.allow_requantize;
    o.pure = params.pure;
    o.threads = params.threads;
    const QuantizeSummary s = quantize_model(in, out, o);
    return {s.tensors, s.quantized, s.bytes_in, s.bytes_out};
}

} // namespace winnow
