/* winnow's C API: opaque handles, status codes, a last-error string, parameter structs with defaults (in the manner
 * of llama.h). A thin layer over the C++ API (winnow/winnow.h); the same threading contract holds: a model may be
 * shared by sessions on many threads, a session is used by one thread at a time. Every function that can fail returns
 * a winnow_status; on failure winnow_last_error() (per thread) names what went wrong in one line.
 *
 *   winnow_model* model; winnow_session* session; winnow_result* result;
 *   winnow_model_params mp = winnow_model_default_params();
 *   if (winnow_model_load("model.gguf", &mp, &model) != WINNOW_OK) { fprintf(stderr, "%s\n", winnow_last_error()); ... }
 *   winnow_session_params sp = winnow_session_default_params();
 *   winnow_session_new(model, &sp, &session);
 *   winnow_generate_params gp = winnow_generate_default_params();
 *   gp.max_tokens = 16;
 *   winnow_generate(session, "The capital of France is", &gp, NULL, NULL, &result);
 *   printf("%s\n", winnow_result_text(result));
 *   winnow_result_free(result); winnow_session_free(session); winnow_model_free(model);
 */
#ifndef WINNOW_C_H
#define WINNOW_C_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define WINNOW_C_API __declspec(dllexport)
#else
#define WINNOW_C_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum winnow_status {
    WINNOW_OK = 0,
    WINNOW_ERR_IO = 1,               /* a file could not be opened, mapped or read */
    WINNOW_ERR_FORMAT = 2,           /* a file is malformed */
    WINNOW_ERR_UNSUPPORTED = 3,      /* well-formed but not implemented (or no GPU for device = CUDA) */
    WINNOW_ERR_INVALID_ARGUMENT = 4, /* a caller passed something invalid */
    WINNOW_ERR_INTERNAL = 5          /* anything else (out of memory, ...) */
} winnow_status;

typedef enum winnow_device { WINNOW_DEVICE_CPU = 0, WINNOW_DEVICE_CUDA = 1 } winnow_device;
typedef enum winnow_dot_mode { WINNOW_DOT_F32 = 0, WINNOW_DOT_Q8 = 1, WINNOW_DOT_AUTO = 2 } winnow_dot_mode;
typedef enum winnow_kv_type { WINNOW_KV_F32 = 0, WINNOW_KV_F16 = 1, WINNOW_KV_BF16 = 2 } winnow_kv_type;

typedef struct winnow_model winnow_model;
typedef struct winnow_session winnow_session;
typedef struct winnow_result winnow_result;

typedef struct winnow_model_params {
    winnow_device device;      /* default CPU */
    int cuda_device;           /* default 0 */
    int threads;               /* CPU threads; 0 (default): every core */
    winnow_dot_mode dot;       /* default AUTO (F32 before 2026-12-07): 8-bit activations in single-token products, exact in prefill; Q8: 8-bit everywhere, as llama.cpp; F32: exact */
    const char* head_calibration; /* NULL (default): MODEL.head.json beside the model if present */
    /* The adaptive head (winnow_generate_params.adaptive_head), as the C++ API's ModelParams: */
    const char* adaptive_impl;    /* NULL (default): "fast"; or "faithful" */
    int adaptive_exact_prefix;    /* default 0: columns every arm reads exactly (16 in the reports) */
    int adaptive_row_clusters;    /* default 0: cluster-centred rows (64 in the reports; at most 1024) */
    const char* adaptive_basis;   /* NULL (default): none; a basis file from `winnow calibrate-head --fit-head-basis` */
    /* More variables for the chat template (winnow_apply_chat_template), a JSON object: e.g. {"enable_thinking": false}
       for Qwen3. NULL (default): none. */
    const char* chat_template_kwargs;
} winnow_model_params;

typedef struct winnow_session_params {
    int n_ctx;                 /* default 2048 (capped at the trained context); 0: the trained context */
    winnow_kv_type kv_type;    /* default F32 */
    /* Block-sparse (SPION) attention: a pattern file from `winnow calibrate-sparse`; NULL (default): dense. */
    const char* sparse_pattern;
    int sparse_spion_denominator; /* default 0; 1: dropped keys count as logit 0 */
    int sparse_dense_below;       /* default 1024: queries before this position attend densely */
    int sparse_select_blocks;     /* default 64: query-aware blocks per sparse row (CPU; 0 on cuda) */
    int sparse_select_block_size; /* default 0: 8 tokens where that divides the pattern's block */
} winnow_session_params;

typedef struct winnow_generate_params {
    int max_tokens;            /* default 64 */
    float temperature;         /* default 0: greedy */
    int top_k;                 /* default 0: off */
    float top_p;               /* default 1: off */
    float min_p;               /* default 0: off */
    float repeat_penalty;      /* default 1: off */
    uint64_t seed;             /* default 0 */
    int ignore_eos;            /* default 0 */
    int adaptive_head;         /* default 0: exact head; 1: AdaptiveSoftmax (greedy and top-k) */
    double delta, epsilon;     /* adaptive head: defaults 0.01, 0.3 */
} winnow_generate_params;

/* Receives each new piece of text (complete UTF-8, `len` bytes, not NUL-terminated); return 0 to stop. */
typedef int (*winnow_piece_callback)(const char* piece, size_t len, void* user_data);

WINNOW_C_API winnow_model_params winnow_model_default_params(void);
WINNOW_C_API winnow_session_params winnow_session_default_params(void);
WINNOW_C_API winnow_generate_params winnow_generate_default_params(void);

/* The message of the last failure on this thread ("" when none). Valid until the next failing call on this thread. */
WINNOW_C_API const char* winnow_last_error(void);

WINNOW_C_API winnow_status winnow_model_load(const char* path, const winnow_model_params* params, winnow_model** out);
WINNOW_C_API void winnow_model_free(winnow_model* model);
WINNOW_C_API int32_t winnow_model_n_vocab(const winnow_model* model);
WINNOW_C_API int32_t winnow_model_n_ctx_train(const winnow_model* model);

/* Tokenizes `text` (the model's BOS convention, special tokens parsed) into ids[0..capacity). *n_ids receives the
 * number of ids the text has; if it exceeds `capacity`, nothing is written and WINNOW_ERR_INVALID_ARGUMENT is
 * returned (call again with a larger buffer). */
WINNOW_C_API winnow_status winnow_tokenize(const winnow_model* model, const char* text, int32_t* ids, size_t capacity, size_t* n_ids);
/* The model's chat template applied to one user turn (after `system` when it is neither NULL nor ""), ending with the
 * assistant's generation prompt; the result is owned by the caller (free with winnow_string_free). */
WINNOW_C_API winnow_status winnow_apply_chat_template(const winnow_model* model, const char* user, const char* system, char** out);
/* One turn of a conversation: role ("system", "user", "assistant", ...) and text, both NUL-terminated. */
typedef struct winnow_chat_message {
    const char* role;
    const char* content;
} winnow_chat_message;
/* The model's chat template applied to a conversation of n_messages messages; add_generation_prompt (1: yes) ends it
 * with the opening of the assistant's turn. Fails (WINNOW_ERR_INVALID_ARGUMENT) when the template refuses the
 * conversation, e.g. roles that do not alternate. The result is owned by the caller (free with winnow_string_free). */
WINNOW_C_API winnow_status winnow_apply_chat_template_messages(const winnow_model* model, const winnow_chat_message* messages, size_t n_messages,
                                                               int add_generation_prompt, char** out);
WINNOW_C_API void winnow_string_free(char* s);

WINNOW_C_API winnow_status winnow_session_new(const winnow_model* model, const winnow_session_params* params, winnow_session** out);
WINNOW_C_API void winnow_session_free(winnow_session* session);

/* Generates from `prompt` (the session's cache is reset first). on_piece may be NULL. */
WINNOW_C_API winnow_status winnow_generate(winnow_session* session, const char* prompt, const winnow_generate_params* params,
                                           winnow_piece_callback on_piece, void* user_data, winnow_result** out);
/* The same from token ids. */
WINNOW_C_API winnow_status winnow_generate_ids(winnow_session* session, const int32_t* ids, size_t n_ids, const winnow_generate_params* params,
                                               winnow_piece_callback on_piece, void* user_data, winnow_result** out);

WINNOW_C_API const char* winnow_result_text(const winnow_result* result);
WINNOW_C_API const int32_t* winnow_result_ids(const winnow_result* result, size_t* n_ids); /* the generated ids */
WINNOW_C_API const char* winnow_result_stop_reason(const winnow_result* result);        /* eos, stop_string, max_tokens, context, callback */
WINNOW_C_API double winnow_result_tokens_per_second(const winnow_result* result);
WINNOW_C_API void winnow_result_free(winnow_result* result);

/* Writes the GGUF model at `in` to `out` in one of llama.cpp's presets, as `winnow quantize` does (llama-quantize's
 * per-tensor mix; `out` written to a temporary file and renamed when complete). */
typedef struct winnow_quantize_params {
    const char* preset;               /* default "Q4_K_M"; also Q5_K_M, Q6_K, Q8_0, Q4_0, F16, ... (any case) */
    int allow_requantize;             /* default 0; 1: quantize tensors that are already quantized */
    int pure;                         /* default 0; 1: every matrix in the preset's base type */
    const char* output_tensor_type;   /* default NULL: the preset's; else a type name such as "q8_0" */
    const char* token_embedding_type; /* default NULL: the preset's */
    int threads;                      /* default 0: all cores */
} winnow_quantize_params;
WINNOW_C_API winnow_quantize_params winnow_quantize_default_params(void);
WINNOW_C_API winnow_status winnow_quantize(const char* in, const char* out, const winnow_quantize_params* params);

#ifdef __cplusplus
}
#endif

#endif /* WINNOW_C_H */
