/* The C API from C11: `test_c_api MODEL PROMPT N` prints the N greedy ids ("ids: ..."); `test_c_api --errors BADFILE`
 * checks the failure paths (status codes, the last-error string, NULL arguments) and prints "c api errors: ok". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <winnow.h>

static int count_pieces(const char* piece, size_t len, void* user) {
    (void)piece;
    *(size_t*)user += len;
    return 1;
}

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                              \
        }                                                                          \
    } while (0)

static int errors(const char* bad_file) {
    winnow_model* m = (winnow_model*)1;
    CHECK(winnow_model_load("/nonexistent/model.gguf", NULL, &m) == WINNOW_ERR_IO);
    CHECK(m == NULL);
    CHECK(strstr(winnow_last_error(), "/nonexistent/model.gguf") != NULL);
    winnow_status s = winnow_model_load(bad_file, NULL, &m);
    CHECK(s == WINNOW_ERR_FORMAT || s == WINNOW_ERR_IO);
    CHECK(strlen(winnow_last_error()) > 0);
    CHECK(winnow_model_load(NULL, NULL, &m) == WINNOW_ERR_INVALID_ARGUMENT);
    CHECK(winnow_session_new(NULL, NULL, NULL) == WINNOW_ERR_INVALID_ARGUMENT);
    char* text = (char*)1;
    CHECK(winnow_apply_chat_template_messages(NULL, NULL, 0, 1, &text) == WINNOW_ERR_INVALID_ARGUMENT);
    winnow_model_params mp = winnow_model_default_params();
    CHECK(mp.device == WINNOW_DEVICE_CPU && mp.threads == 0 && mp.dot == WINNOW_DOT_AUTO && mp.chat_template_kwargs == NULL);
    /* chat template kwargs are checked before the model is read */
    mp.chat_template_kwargs = "[1]";
    CHECK(winnow_model_load(bad_file, &mp, &m) == WINNOW_ERR_INVALID_ARGUMENT && m == NULL);
    CHECK(strstr(winnow_last_error(), "chat template kwargs: must be a JSON object") != NULL);
    mp.chat_template_kwargs = NULL;
    winnow_generate_params gp = winnow_generate_default_params();
    CHECK(gp.max_tokens == 64 && gp.temperature == 0.0f && gp.top_p == 1.0f && gp.repeat_penalty == 1.0f);
    winnow_quantize_params qp = winnow_quantize_default_params();
    CHECK(strcmp(qp.preset, "Q4_K_M") == 0 && qp.allow_requantize == 0 && qp.output_tensor_type == NULL);
    CHECK(winnow_quantize(NULL, "/tmp/x.gguf", NULL) == WINNOW_ERR_INVALID_ARGUMENT);
    s = winnow_quantize(bad_file, "/nonexistent/dir/out.gguf", NULL);
    CHECK(s == WINNOW_ERR_FORMAT || s == WINNOW_ERR_IO);
    qp.preset = "iq2_xxs";
    CHECK(winnow_quantize(bad_file, "/nonexistent/dir/out.gguf", &qp) == WINNOW_ERR_INVALID_ARGUMENT);
    CHECK(strstr(winnow_last_error(), "iq2_xxs") != NULL);
    printf("c api errors: ok\n");
    return 0;
}

int main(int argc, char** argv) {
    if (argc == 3 && strcmp(argv[1], "--errors") == 0) return errors(argv[2]);
    if (argc != 4) {
        fprintf(stderr, "usage: test_c_api MODEL PROMPT N | --errors BADFILE\n");
        return 2;
    }
    winnow_model* model = NULL;
    winnow_session* session = NULL;
    winnow_result* result = NULL;
    winnow_model_params mp = winnow_model_default_params();
    if (winnow_model_load(argv[1], &mp, &model) != WINNOW_OK) {
        fprintf(stderr, "load: %s\n", winnow_last_error());
        return 1;
    }
    CHECK(winnow_model_n_vocab(model) > 0);
    int32_t ids[64];
    size_t n_ids = 0;
    CHECK(winnow_tokenize(model, argv[2], ids, 64, &n_ids) == WINNOW_OK && n_ids > 0);
    CHECK(winnow_tokenize(model, argv[2], ids, 1, &n_ids) == WINNOW_ERR_INVALID_ARGUMENT && n_ids > 1); /* too small a buffer */
    /* the model's chat template over a conversation: the turns in order, the generation prompt only when asked */
    winnow_chat_message conversation[3] = {{"user", "Hi there"}, {"assistant", "Hello!"}, {"user", "Bye now"}};
    char* history = NULL;
    char* prompt = NULL;
    CHECK(winnow_apply_chat_template_messages(model, conversation, 3, 0, &history) == WINNOW_OK);
    CHECK(winnow_apply_chat_template_messages(model, conversation, 3, 1, &prompt) == WINNOW_OK);
    CHECK(strstr(history, "Hi there") && strstr(history, "Hello!") > strstr(history, "Hi there") && strstr(history, "Bye now") > strstr(history, "Hello!"));
    CHECK(strlen(prompt) > strlen(history) && strncmp(prompt, history, strlen(history)) == 0);
    winnow_string_free(history);
    winnow_string_free(prompt);
    conversation[1].content = NULL;
    CHECK(winnow_apply_chat_template_messages(model, conversation, 3, 1, &prompt) == WINNOW_ERR_INVALID_ARGUMENT && prompt == NULL);
    CHECK(strstr(winnow_last_error(), "message 1") != NULL);
    winnow_session_params sp = winnow_session_default_params();
    if (winnow_session_new(model, &sp, &session) != WINNOW_OK) {
        fprintf(stderr, "session: %s\n", winnow_last_error());
        return 1;
    }
    winnow_generate_params gp = winnow_generate_default_params();
    gp.max_tokens = atoi(argv[3]);
    gp.ignore_eos = 1;
    size_t streamed = 0;
    if (winnow_generate(session, argv[2], &gp, count_pieces, &streamed, &result) != WINNOW_OK) {
        fprintf(stderr, "generate: %s\n", winnow_last_error());
        return 1;
    }
    size_t n = 0;
    const int32_t* out = winnow_result_ids(result, &n);
    CHECK(streamed == strlen(winnow_result_text(result)));
    CHECK(strcmp(winnow_result_stop_reason(result), "max_tokens") == 0);
    printf("ids:");
    for (size_t i = 0; i < n; ++i) printf(" %d", out[i]);
    printf("\n");
    winnow_result_free(result);
    winnow_session_free(session);
    /* sparse attention is a session parameter: a missing pattern file is an error naming it */
    CHECK(sp.sparse_pattern == NULL && sp.sparse_dense_below == 1024 && sp.sparse_select_blocks == 64);
    sp.sparse_pattern = "/nonexistent/pattern.json";
    session = (winnow_session*)1;
    CHECK(winnow_session_new(model, &sp, &session) != WINNOW_OK);
    CHECK(session == NULL);
    CHECK(strstr(winnow_last_error(), "/nonexistent/pattern.json") != NULL);
    winnow_model_free(model);
    /* the adaptive head's options are model parameters, checked at load: a missing basis file and a cluster count out
     * of range are errors naming them */
    winnow_model_params hp = winnow_model_default_params();
    CHECK(hp.adaptive_impl == NULL && hp.adaptive_exact_prefix == 0 && hp.adaptive_row_clusters == 0 && hp.adaptive_basis == NULL);
    hp.adaptive_basis = "/nonexistent/basis.gguf";
    model = (winnow_model*)1;
    CHECK(winnow_model_load(argv[1], &hp, &model) != WINNOW_OK);
    CHECK(model == NULL);
    CHECK(strstr(winnow_last_error(), "/nonexistent/basis.gguf") != NULL);
    hp.adaptive_basis = NULL;
    hp.adaptive_row_clusters = -1;
    CHECK(winnow_model_load(argv[1], &hp, &model) == WINNOW_ERR_INVALID_ARGUMENT);
    CHECK(strstr(winnow_last_error(), "row clusters must be 0 to") != NULL);
    hp.adaptive_row_clusters = 0;
    hp.adaptive_impl = "quick";
    CHECK(winnow_model_load(argv[1], &hp, &model) == WINNOW_ERR_INVALID_ARGUMENT);
    return 0;
}
