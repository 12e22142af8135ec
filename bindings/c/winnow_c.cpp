// The C API over the C++ API: every entry point catches, stores the message per thread and returns a status.
#include "winnow.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "winnow/winnow.h"

struct winnow_model {
    winnow::Model model;
};
struct winnow_session {
    winnow::Session session;
};
struct winnow_result {
    winnow::GenerateResult r;
};

namespace {

thread_local std::string last_error;

template <class F>
winnow_status guarded(F&& f) {
    try {
        f();
        return WINNOW_OK;
    } catch (const winnow::Error& e) {
        last_error = e.what();
        switch (e.kind()) {
        case winnow::ErrorKind::io: return WINNOW_ERR_IO;
        case winnow::ErrorKind::format: return WINNOW_ERR_FORMAT;
        case winnow::ErrorKind::unsupported: return WINNOW_ERR_UNSUPPORTED;
        case winnow::ErrorKind::invalid_argument: return WINNOW_ERR_INVALID_ARGUMENT;
        }
        return WINNOW_ERR_INTERNAL;
    } catch (const std::bad_alloc&) {
        last_error = "out of memory";
        return WINNOW_ERR_INTERNAL;
    } catch (const std::exception& e) {
        last_error = e.what();
        return WINNOW_ERR_INTERNAL;
    }
}

winnow_status invalid(const char* message) {
    last_error = message;
    return WINNOW_ERR_INVALID_ARGUMENT;
}

winnow::GenerateOptions options(const winnow_generate_params* p) {
    const winnow_generate_params d = winnow_generate_default_params();
    if (!p) p = &d;
    winnow::GenerateOptions o;
    o.max_tokens = p->max_tokens;
    o.sampling.temperature = p->temperature;
    o.sampling.top_k = p->top_k;
    o.sampling.top_p = p->top_p;
    o.sampling.min_p = p->min_p;
    o.sampling.repeat_penalty = p->repeat_penalty;
    o.sampling.seed = p->seed;
    o.sampling.validate();
    o.ignore_eos = p->ignore_eos != 0;
    o.head = p->adaptive_head ? winnow::HeadMode::adaptive : winnow::HeadMode::exact;
    o.adaptive.delta = p->delta;
    o.adaptive.epsilon = p->epsilon;
    return o;
}

winnow::TokenCallback callback(winnow_piece_callback cb, void* user) {
    if (!cb) return {};
    return [cb, user](std::string_view piece) { return cb(piece.data(), piece.size(), user) != 0; };
}

} // namespace

extern "C" {

winnow_model_params winnow_model_default_params(void) { return {WINNOW_DEVICE_CPU, 0, 0, WINNOW_DOT_AUTO, nullptr, nullptr, 0, 0, nullptr, nullptr}; }
winnow_session_params winnow_session_default_params(void) {
    const winnow::SessionParams d;
    return {d.n_ctx, WINNOW_KV_F32, nullptr, d.sparse_spion_denominator ? 1 : 0, d.sparse_dense_below, d.sparse_select_blocks, d.sparse_select_block_size};
}
winnow_generate_params winnow_generate_default_params(void) { return {64, 0.0f, 0, 1.0f, 0.0f, 1.0f, 0, 0, 0, 0.01, 0.3}; }

const char* winnow_last_error(void) { return last_error.c_str(); }

winnow_status winnow_model_load(const char* path, const winnow_model_params* params, winnow_model** out) {
    if (!path || !out) return invalid("winnow_model_load: path and out must not be NULL");
    *out = nullptr;
    const winnow_model_params d = winnow_model_default_params();
    if (!params) params = &d;
    return guarded([&] {
        winnow::ModelParams mp;
        mp.device = params->device == WINNOW_DEVICE_CUDA ? winnow::Device::cuda : winnow::Device::cpu;
        mp.cuda_device = params->cuda_device;
        mp.threads = params->threads;
        switch (params->dot) {
        case WINNOW_DOT_F32: mp.dot = winnow::CpuDotMode::f32; break;
        case WINNOW_DOT_Q8: mp.dot = winnow::CpuDotMode::q8; break;
        case WINNOW_DOT_AUTO: mp.dot = winnow::CpuDotMode::automatic; break;
        default: throw winnow::Error(winnow::ErrorKind::invalid_argument, "winnow_model_params.dot: " + std::to_string(static_cast<int>(params->dot)) + " is not a winnow_dot_mode");
        }
        if (params->head_calibration) mp.head_calibration = params->head_calibration;
        if (params->adaptive_impl) mp.adaptive_impl = params->adaptive_impl;
        mp.adaptive_exact_prefix = params->adaptive_exact_prefix;
        mp.adaptive_row_clusters = params->adaptive_row_clusters;
        if (params->adaptive_basis) mp.adaptive_basis = params->adaptive_basis;
        if (params->chat_template_kwargs) mp.chat_template_kwargs = params->chat_template_kwargs;
        *out = new winnow_model{winnow::Model::load(path, mp)};
    });
}

void winnow_model_free(winnow_model* model) { delete model; }
int32_t winnow_model_n_vocab(const winnow_model* model) { return model ? model->model.info().n_vocab : 0; }
int32_t winnow_model_n_ctx_train(const winnow_model* model) { return model ? model->model.info().n_ctx_train : 0; }

winnow_status winnow_tokenize(const winnow_model* model, const char* text, int32_t* ids, size_t capacity, size_t* n_ids) {
    if (!model || !text || !n_ids || (!ids && capacity > 0)) return invalid("winnow_tokenize: model, text and n_ids must not be NULL");
    return guarded([&] {
        const auto v = model->model.tokenize(text);
        *n_ids = v.size();
        if (v.size() > capacity)
            throw winnow::Error(winnow::ErrorKind::invalid_argument, "winnow_tokenize: the text has " + std::to_string(v.size()) + " tokens, the buffer holds " +
                                                                         std::to_string(capacity));
        std::memcpy(ids, v.data(), v.size() * sizeof(int32_t));
    });
}

winnow_status winnow_apply_chat_template(const winnow_model* model, const char* user, const char* system, char** out) {
    if (!model || !user || !out) return invalid("winnow_apply_chat_template: model, user and out must not be NULL");
    *out = nullptr;
    return guarded([&] {
        const std::string s = model->model.apply_chat_template(user, system ? system : "");
        char* c = static_cast<char*>(std::malloc(s.size() + 1));
        if (!c) throw std::bad_alloc();
        std::memcpy(c, s.c_str(), s.size() + 1);
        *out = c;
    });
}

winnow_status winnow_apply_chat_template_messages(const winnow_model* model, const winnow_chat_message* messages, size_t n_messages,
                                                  int add_generation_prompt, char** out) {
    if (!model || !out || (!messages && n_messages > 0)) return invalid("winnow_apply_chat_template_messages: model, messages and out must not be NULL");
    *out = nullptr;
    for (size_t i = 0; i < n_messages; ++i)
        if (!messages[i].role || !messages[i].content)
            return invalid(("winnow_apply_chat_template_messages: message " + std::to_string(i) + " has a NULL role or content").c_str());
    return guarded([&] {
        std::vector<winnow::ChatMessage> conversation;
        for (size_t i = 0; i < n_messages; ++i) conversation.push_back({messages[i].role, messages[i].content});
        const std::string s = model->model.apply_chat_template(conversation, add_generation_prompt != 0);
        char* c = static_cast<char*>(std::malloc(s.size() + 1));
        if (!c) throw std::bad_alloc();
        std::memcpy(c, s.c_str(), s.size() + 1);
        *out = c;
    });
}

void winnow_string_free(char* s) { std::free(s); }

winnow_status winnow_session_new(const winnow_model* model, const winnow_session_params* params, winnow_session** out) {
    if (!model || !out) return invalid("winnow_session_new: model and out must not be NULL");
    *out = nullptr;
    const winnow_session_params d = winnow_session_default_params();
    if (!params) params = &d;
    return guarded([&] {
        winnow::SessionParams sp;
        sp.n_ctx = params->n_ctx;
        sp.kv_type = params->kv_type == WINNOW_KV_F16 ? winnow::KvType::f16 : params->kv_type == WINNOW_KV_BF16 ? winnow::KvType::bf16 : winnow::KvType::f32;
        if (params->sparse_pattern) sp.sparse_pattern = params->sparse_pattern;
        sp.sparse_spion_denominator = params->sparse_spion_denominator != 0;
        sp.sparse_dense_below = params->sparse_dense_below;
        sp.sparse_select_blocks = params->sparse_select_blocks;
        sp.sparse_select_block_size = params->sparse_select_block_size;
        *out = new winnow_session{model->model.session(sp)};
    });
}

void winnow_session_free(winnow_session* session) { delete session; }

winnow_status winnow_generate(winnow_session* session, const char* prompt, const winnow_generate_params* params, winnow_piece_callback on_piece,
                              void* user_data, winnow_result** out) {
    if (!session || !prompt || !out) return invalid("winnow_generate: session, prompt and out must not be NULL");
    *out = nullptr;
    return guarded([&] { *out = new winnow_result{session->session.generate(std::string(prompt), options(params), callback(on_piece, user_data))}; });
}

winnow_status winnow_generate_ids(winnow_session* session, const int32_t* ids, size_t n_ids, const winnow_generate_params* params,
                                  winnow_piece_callback on_piece, void* user_data, winnow_result** out) {
    if (!session || !ids || !out) return invalid("winnow_generate_ids: session, ids and out must not be NULL");
    *out = nullptr;
    return guarded([&] {
        *out = new winnow_result{session->session.generate(std::span<const int32_t>(ids, n_ids), options(params), callback(on_piece, user_data))};
    });
}

const char* winnow_result_text(const winnow_result* r) { return r ? r->r.text.c_str() : ""; }
const int32_t* winnow_result_ids(const winnow_result* r, size_t* n_ids) {
    if (n_ids) *n_ids = r ? r->r.output_ids.size() : 0;
    return r ? r->r.output_ids.data() : nullptr;
}
const char* winnow_result_stop_reason(const winnow_result* r) { return r ? r->r.stop_reason.c_str() : ""; }
double winnow_result_tokens_per_second(const winnow_result* r) {
    return r && r->r.gen_seconds > 0 ? static_cast<double>(r->r.output_ids.size()) / r->r.gen_seconds : 0.0;
}
void winnow_result_free(winnow_result* r) { delete r; }

winnow_quantize_params winnow_quantize_default_params(void) { return {"Q4_K_M", 0, 0, nullptr, nullptr, 0}; }

winnow_status winnow_quantize(const char* in, const char* out, const winnow_quantize_params* params) {
    if (!in || !out) return invalid("winnow_quantize: in and out must not be NULL");
    const winnow_quantize_params d = winnow_quantize_default_params();
    if (!params) params = &d;
    return guarded([&] {
        winnow::QuantizeParams p;
        p.preset = params->preset ? params->preset : "";
        p.allow_requantize = params->allow_requantize != 0;
        p.pure = params->pure != 0;
        p.output_tensor_type = params->output_tensor_type ? params->output_tensor_type : "";
        p.token_embedding_type = params->token_embedding_type ? params->token_embedding_type : "";
        p.threads = params->threads;
        winnow::quantize(in, out, p);
    });
}

} // extern "C"
