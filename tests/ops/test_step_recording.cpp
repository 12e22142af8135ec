// Forward's recorded decode steps (CUDA graphs on the GPU) checked on the CPU: a backend that records ops the way
// stream capture does — while recording, ops are stored, not run, and uploads, downloads and allocations are refused —
// and replays them later, reading each op's position from its device tensor when it runs. Forward over that backend
// must give the plain CPU backend's logits bit for bit, at every position, after reset() and rewind(), with block
// masks (with query-aware selection too) and with gpt2's learned positions; and a recording must be dropped when what it points at changes (scratch
// grown by a longer prefill, new masks). The CUDA twin of this test is CudaDecoder.RecordedDecodeStepsEqualOpByOp.
//
// The whole generation step (#11, one launch per token): Generator and ChatSession over that backend record the layers,
// the head product and the sample op as one step, so a generated token costs one upload of the step's inputs, one
// replay and a 4-byte download; their tokens must equal the host path's (every logit to the host's Sampler) for greedy
// and drawing chains. The CUDA twin: CudaDecoder.OneLaunchGenerationEqualsOpByOp.
#include <algorithm>
#include <functional>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "chat/chat_template.h"
#include "decode/chat_session.h"
#include "decode/forward.h"
#include "decode/generator.h"
#include "model/model.h"
#include "sample_cases.h"
#include "tokenizer/model_tokenizer.h"
#include "winnow/error.h"
#include "fixture_dir.h"

namespace {

using namespace winnow;


class RecordingCpu final : public Backend {
public:
    RecordingCpu() : cpu_(make_cpu_backend(1)) {}
    const char* name() const override { return "cpu-recording"; }
    Device device() const override { return Device::cpu; }
    bool supports(Op op, GgmlType type) const override { return cpu_->supports(op, type); }
    Tensor alloc(GgmlType t, int64_t r, int64_t c) override {
        refuse_while_recording("alloc");
        return cpu_->alloc(t, r, c);
    }
    Tensor place_readonly(GgmlType t, int64_t r, int64_t c, const void* h) override {
        refuse_while_recording("place_readonly");
        return cpu_->place_readonly(t, r, c, h);
    }
    void upload(const void* h, const Tensor& d) override {
        refuse_while_recording("upload");
        events.push_back("upload " + std::to_string(d.bytes()) + " B");
        cpu_->upload(h, d);
    }
    void download(const Tensor& s, void* h) override {
        refuse_while_recording("download");
        events.push_back("download " + std::to_string(s.bytes()) + " B");
        cpu_->download(s, h);
    }
    void synchronize() override { refuse_while_recording("synchronize"); }

    // Every op is stored (its arguments by value, position tensors included) or run now.
    void get_rows(const Matrix& t, const Tensor& i, const Tensor& o) override {
        op([=, this] { cpu_->get_rows(t, i, o); });
    }
    void linear(const Matrix& w, const Tensor* b, const Tensor& x, const Tensor& y) override {
        const Tensor bias = b ? *b : Tensor();
        op([=, this] { cpu_->linear(w, bias.empty() ? nullptr : &bias, x, y); });
    }
    void linear_parts(const LinearPart* parts, int n_parts, const Tensor& x) override {
        std::vector<LinearPart> copy(parts, parts + n_parts);
        std::vector<Tensor> biases;
        for (const LinearPart& p : copy) biases.push_back(p.bias ? *p.bias : Tensor());
        op([=, this]() mutable {
            for (size_t i = 0; i < copy.size(); ++i) copy[i].bias = biases[i].empty() ? nullptr : &biases[i];
            cpu_->linear_parts(copy.data(), static_cast<int>(copy.size()), x);
        });
    }
    void linear_add(const Matrix& w, const Tensor* b, const Tensor& x, const Tensor& y) override {
        const Tensor bias = b ? *b : Tensor();
        op([=, this] { cpu_->linear_add(w, bias.empty() ? nullptr : &bias, x, y); });
    }
    void linear_swiglu(const Matrix& g, const Matrix& u, const Tensor& x, const Tensor& y) override {
        op([=, this] { cpu_->linear_swiglu(g, u, x, y); });
    }
    void rms_norm(const Tensor& x, const Tensor& w, float e, const Tensor& y) override {
        op([=, this] { cpu_->rms_norm(x, w, e, y); });
    }
    void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float e, const Tensor& y) override {
        op([=, this] { cpu_->layer_norm(x, w, b, e, y); });
    }
    void rope(const Tensor& x, const RopeParams& p) override {
        if (recording_ && !p.pos && p.style != RopeStyle::none) ADD_FAILURE() << "rope recorded with a host position (" << p.pos0 << ")";
        const Tensor pos = p.pos ? *p.pos : Tensor();
        op([=, this] {
            RopeParams q = p;
            q.pos = pos.empty() ? nullptr : &pos;
            cpu_->rope(x, q);
        });
    }
    void copy_rows(const Tensor& s, const Tensor& d, int64_t r) override {
        op([=, this] { cpu_->copy_rows(s, d, r); });
    }
    void copy_rows_at(const Tensor& s, const Tensor& d, const Tensor& row) override {
        // the row is read when the op runs (never through download(), which a recording refuses)
        op([=, this] { cpu_->copy_rows(s, d, *row.data<int32_t>()); });
    }
    void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const AttentionParams& p) override {
        if (recording_ && !p.pos) ADD_FAILURE() << "attention recorded with a host position (" << p.pos0 << "): a replay would reuse it";
        if (recording_) recorded_key_limits.push_back(p.key_limit);
        const Tensor pos = p.pos ? *p.pos : Tensor();
        op([=, this] {
            AttentionParams a = p;
            a.pos = pos.empty() ? nullptr : &pos;
            cpu_->attention(q, k, v, o, a);
        });
    }
    void summarize_keys(const Tensor& k, const Tensor& hi, const Tensor& lo, int heads, int unit, int64_t row0, int n, const Tensor* at) override {
        if (recording_ && !at) ADD_FAILURE() << "summarize_keys recorded with a host row (" << row0 << "): a replay would reuse it";
        const Tensor row = at ? *at : Tensor();
        op([=, this] { cpu_->summarize_keys(k, hi, lo, heads, unit, row0, n, row.empty() ? nullptr : &row); });
    }
    void gelu_tanh(const Tensor& x) override {
        op([=, this] { cpu_->gelu_tanh(x); });
    }
    void geglu(const Tensor& g, const Tensor& u, const Tensor& o) override {
        op([=, this] { cpu_->geglu(g, u, o); });
    }
    void softcap(const Tensor& x, float cap) override {
        op([=, this] { cpu_->softcap(x, cap); });
    }
    void scale(const Tensor& x, float s) override {
        op([=, this] { cpu_->scale(x, s); });
    }
    void swiglu(const Tensor& g, const Tensor& u, const Tensor& o) override {
        op([=, this] { cpu_->swiglu(g, u, o); });
    }
    void add(const Tensor& y, const Tensor& x) override {
        op([=, this] { cpu_->add(y, x); });
    }
    TopK top_k(const Tensor& l, int k, bool n) override {
        refuse_while_recording("top_k");
        events.push_back("top_k");
        return cpu_->top_k(l, k, n);
    }
    void sample(const Tensor& l, const SampleParams& p, const Tensor& t) override {
        if (recording_ && refuse_sample_recording) throw Error(ErrorKind::unsupported, "cpu-recording: no sample op in a recording");
        // the history, its length and u are read when the op runs, as the device kernel reads them
        const Tensor h = p.history ? *p.history : Tensor(), len = p.n_history_at ? *p.n_history_at : Tensor(), u = p.u ? *p.u : Tensor();
        op([=, this] {
            SampleParams q = p;
            q.history = h.empty() ? nullptr : &h;
            q.n_history_at = len.empty() ? nullptr : &len;
            q.u = u.empty() ? nullptr : &u;
            cpu_->sample(l, q, t);
        });
    }

    bool can_record() const override { return true; }
    void begin_recording() override {
        if (recording_) throw Error(ErrorKind::invalid_argument, "already recording");
        recording_ = true;
        open_.clear();
    }
    int end_recording() override {
        recording_ = false;
        recordings_.push_back(std::move(open_));
        return static_cast<int>(recordings_.size()) - 1;
    }
    void abort_recording() override {
        recording_ = false;
        open_.clear();
    }
    void replay(int r) override {
        ++replays;
        events.push_back("replay");
        for (const auto& f : recordings_.at(static_cast<size_t>(r))) f();
    }
    void drop_recording(int r) override {
        recordings_.at(static_cast<size_t>(r)).clear();
        ++dropped;
    }

    int replays = 0, dropped = 0;
    std::vector<int> recorded_key_limits; // AttentionParams::key_limit of every attention op recorded
    bool refuse_sample_recording = false; // a backend whose recording cannot hold the sample op
    // What crossed between host and device, in order: "upload N B", "download N B", "replay", "op" (an op run at once,
    // outside a replay), "top_k".
    std::vector<std::string> events;
    size_t recorded_ops() const { return recordings_.empty() ? 0 : recordings_.back().size(); }

private:
    void refuse_while_recording(const char* what) const {
        if (recording_) throw Error(ErrorKind::invalid_argument, std::string("cpu-recording: ") + what + " while recording");
    }
    void op(std::function<void()> f) {
        if (recording_) return open_.push_back(std::move(f));
        events.push_back("op");
        f();
    }
    std::unique_ptr<Backend> cpu_;
    bool recording_ = false;
    std::vector<std::function<void()>> open_;
    std::vector<std::vector<std::function<void()>>> recordings_;
};

std::vector<int32_t> ids_for(int n, int n_vocab) {
    std::vector<int32_t> ids;
    for (int i = 0; i < n; ++i) ids.push_back((i * 7919 + 3) % n_vocab);
    return ids;
}

BlockMask local_mask(int n_ctx) {
    const int nb = n_ctx / 16;
    BlockMask m{16, nb, std::vector<uint8_t>(static_cast<size_t>(nb) * nb, 0)};
    for (int qb = 0; qb < nb; ++qb)
        for (int kb = 0; kb <= qb; ++kb) m.keep[static_cast<size_t>(qb) * nb + kb] = kb == 0 || kb == qb || kb + 1 == qb;
    return m;
}

// One model over the recording backend and over the plain CPU backend, with the same context and token ids.
struct RecordedAndPlain {
    RecordedAndPlain(const std::string& model, int n_ctx)
        : name(model), m(Model::load(kDir + "/" + model)), plain_be(make_cpu_backend(1)), rec(*m, rec_be, n_ctx), plain(*m, *plain_be, n_ctx),
          ids(ids_for(n_ctx, m->config().n_vocab)) {}
    // Tokens [first, first + n) through both as one batch, then positions [first + n, last) one decode step at a time:
    // the logits of every eval must be equal, bit for bit.
    void expect_equal(int first, int n, int last) {
        ASSERT_EQ(rec.eval(std::span(ids).subspan(first, n)), plain.eval(std::span(ids).subspan(first, n))) << name << ": positions from " << first;
        for (int t = first + n; t < last; ++t)
            ASSERT_EQ(rec.eval(std::span(ids).subspan(t, 1)), plain.eval(std::span(ids).subspan(t, 1))) << name << ": recorded and plain decode differ at position " << t;
    }
    void rewind(int n) {
        rec.rewind(n);
        plain.rewind(n);
    }
    void reset() {
        rec.reset();
        plain.reset();
    }
    std::string name;
    std::unique_ptr<LoadedModel> m;
    RecordingCpu rec_be;
    std::unique_ptr<Backend> plain_be;
    Forward rec, plain;
    std::vector<int32_t> ids;
};

// Prefill, decode, reset, decode from position 0 (a recording with a baked-in position would write the wrong cache row
// and rotate by the wrong angle), rewind into the middle and decode again: recorded vs plain, bit for bit.
void expect_recorded_equal_plain(const std::string& model, bool masked, int select = 0) {
    const int n_ctx = 64;
    RecordedAndPlain s(model, n_ctx);
    Forward &rec = s.rec, &plain = s.plain;
    ASSERT_TRUE(rec.step_recording());
    ASSERT_FALSE(plain.step_recording()); // the CPU backend cannot record
    const BlockMask mask = local_mask(n_ctx);
    if (masked) {
        rec.set_attention_masks(std::vector<const BlockMask*>(s.m->config().n_layer, &mask));
        plain.set_attention_masks(std::vector<const BlockMask*>(s.m->config().n_layer, &mask));
        rec.set_block_selection(select, 4); // query-aware 4-token units: their key summaries are ops of the step too
        plain.set_block_selection(select, 4);
    }
    s.expect_equal(0, 6, 40);
    s.reset();
    s.expect_equal(0, 1, 20); // position 0 as a one-token step too
    s.rewind(10);
    s.expect_equal(10, 1, n_ctx);
    EXPECT_EQ(rec.step_recording_error(), "");
    // 34 + 20 + 54 decode steps; the first one runs op by op and the second is recorded, then replayed
    EXPECT_EQ(rec.replayed_steps(), 34 + 20 + 54 - 1);
    EXPECT_EQ(s.rec_be.replays, rec.replayed_steps());
    EXPECT_GT(s.rec_be.recorded_ops(), static_cast<size_t>(8 * s.m->config().n_layer)); // the whole step, not a part
}

TEST(StepRecording, TinyLlamaRecordedStepsEqualPlain) { expect_recorded_equal_plain("tiny-llama.gguf", false); }
TEST(StepRecording, TinyLlamaQ4_1MaskedRecordedStepsEqualPlain) { expect_recorded_equal_plain("tiny-llama-q4_1.gguf", true); }
TEST(StepRecording, TinyLlamaSelectionRecordedStepsEqualPlain) { expect_recorded_equal_plain("tiny-llama.gguf", true, 2); }
TEST(StepRecording, TinyGpt2RecordedStepsEqualPlain) { expect_recorded_equal_plain("tiny-gpt2.gguf", false); } // learned positions

// A recording holds the addresses of the scratch tensors and the masks: a longer prefill (scratch grows) or new masks
// drop it, and the next decode steps record again and stay equal to plain.
TEST(StepRecording, ScratchGrowthAndNewMasksDropTheRecording) {
    const int n_ctx = 64;
    RecordedAndPlain s("tiny-llama.gguf", n_ctx);
    auto run = [&](int first, int prefill, int last) {
        s.reset();
        s.expect_equal(first, prefill, last);
    };
    run(0, 2, 10);
    EXPECT_EQ(s.rec_be.dropped, 0);
    run(0, 12, 30); // 12 > 2 scratch rows: reallocated, the recording dropped
    EXPECT_EQ(s.rec_be.dropped, 1);
    const BlockMask mask = local_mask(n_ctx);
    s.rec.set_attention_masks(std::vector<const BlockMask*>(s.m->config().n_layer, &mask));
    s.plain.set_attention_masks(std::vector<const BlockMask*>(s.m->config().n_layer, &mask));
    EXPECT_EQ(s.rec_be.dropped, 2);
    run(0, 3, 40);
    EXPECT_GT(s.rec.replayed_steps(), 40);
    s.rec.set_step_recording(false);
    EXPECT_EQ(s.rec_be.dropped, 3);
    const int64_t replayed = s.rec.replayed_steps();
    run(0, 3, 20);
    EXPECT_EQ(s.rec.replayed_steps(), replayed);
}

// The context buckets a recorded step's attention is sized for: powers of two from 512 keys, capped by the context.
TEST(StepRecording, KeyLimitIsTheContextBucket) {
    EXPECT_EQ(recorded_step_key_limit(1, 64), 64);
    EXPECT_EQ(recorded_step_key_limit(64, 64), 64);
    EXPECT_EQ(recorded_step_key_limit(1, 8192), 512);
    EXPECT_EQ(recorded_step_key_limit(512, 8192), 512);
    EXPECT_EQ(recorded_step_key_limit(513, 8192), 1024);
    EXPECT_EQ(recorded_step_key_limit(2049, 8192), 4096);
    EXPECT_EQ(recorded_step_key_limit(4097, 8192), 8192);
    EXPECT_EQ(recorded_step_key_limit(8192, 8192), 8192);
    EXPECT_EQ(recorded_step_key_limit(1025, 1100), 1100);
    EXPECT_THROW(recorded_step_key_limit(0, 64), Error);
    EXPECT_THROW(recorded_step_key_limit(65, 64), Error);
}

// A step past the recording's key limit records again at the next bucket (the CPU attention rejects a row past the
// limit it is given, as a device launch sized for it would silently miss keys); a rewind keeps a recording up to 4x
// larger than the step needs and records again below that: every step equal to plain, one recording per bucket.
TEST(StepRecording, RecordsAgainAtEachKeyLimit) {
    const int n_ctx = 2100;
    RecordedAndPlain s("tiny-llama.gguf", n_ctx);
    s.expect_equal(0, 4, n_ctx);
    EXPECT_EQ(s.rec.step_recording_error(), "");
    EXPECT_EQ(s.rec_be.dropped, 3); // 512 -> 1024 -> 2048 -> 2100
    const int n_layer = s.m->config().n_layer;
    std::vector<int> expected;
    for (int limit : {512, 1024, 2048, 2100}) expected.insert(expected.end(), n_layer, limit);
    EXPECT_EQ(s.rec_be.recorded_key_limits, expected);
    s.rewind(1000); // needs 1024 keys; 2100 < 4 x 1024: the recording stays
    s.expect_equal(1000, 1, 1010);
    EXPECT_EQ(s.rec_be.dropped, 3);
    s.rewind(100); // needs 512; 2100 >= 4 x 512: recorded again at 512
    s.expect_equal(100, 1, 110);
    EXPECT_EQ(s.rec_be.dropped, 4);
    EXPECT_EQ(s.rec_be.recorded_key_limits.back(), 512);
    // after each drop one step runs op by op (lazy uploads and allocations), the next records, the rest replay
    EXPECT_EQ(s.rec.replayed_steps(), (n_ctx - 4) + 10 + 10 - 5);
}

// The attention op keeps to the key limit: a row past it, or a limit outside the cache, is an error (CPU backend).
TEST(StepRecording, AttentionRejectsRowsPastTheKeyLimit) {
    auto be = make_cpu_backend(1);
    const int hd = 8, n_ctx = 32;
    const Tensor q = be->alloc(GgmlType::F32, 1, hd), k = be->alloc(GgmlType::F32, n_ctx, hd), v = be->alloc(GgmlType::F32, n_ctx, hd),
                 out = be->alloc(GgmlType::F32, 1, hd), pos = be->alloc(GgmlType::I32, 1, 1);
    const int32_t at = 20;
    be->upload(&at, pos);
    AttentionParams p;
    p.pos = &pos;
    p.n_head = p.n_head_kv = 1;
    p.head_dim = hd;
    p.key_limit = 21; // position 20's row reads keys 0..20
    EXPECT_NO_THROW(be->attention(q, k, v, out, p));
    p.key_limit = 0; // the whole cache
    EXPECT_NO_THROW(be->attention(q, k, v, out, p));
    p.key_limit = 20;
    EXPECT_THROW(be->attention(q, k, v, out, p), Error);
    p.key_limit = n_ctx + 1;
    EXPECT_THROW(be->attention(q, k, v, out, p), Error);
    p.key_limit = -1;
    EXPECT_THROW(be->attention(q, k, v, out, p), Error);
}

// ---- the whole generation step as one replay (#11 item 2)

// Greedy with and without the penalty, a draw from the whole vocabulary, and top-k, top-p, min-p and temperature in
// both orders, each with a fixed seed.
std::vector<SamplingParams> chains() {
    std::vector<SamplingParams> out;
    auto add = [&](auto... params) { out.push_back(test::sampling::chain_of(params...)); };
    add(0.0f, 0, 1.0f, 0.0f, 1.0f, -1, SamplerOrder::hf, 0);          // greedy: the host takes the head's top-1
    add(0.0f, 0, 1.0f, 0.0f, 1.3f, -1, SamplerOrder::hf, 0);          // greedy after the penalty
    add(1.0f, 0, 1.0f, 0.0f, 1.0f, -1, SamplerOrder::hf, 1);          // the whole vocabulary
    add(0.7f, 5, 1.0f, 0.0f, 1.0f, -1, SamplerOrder::llama_cpp, 2);   // top-k
    add(1.2f, 0, 0.9f, 0.0f, 1.3f, -1, SamplerOrder::hf, 3);          // top-p and the penalty
    add(0.9f, 0, 1.0f, 0.1f, 1.0f, -1, SamplerOrder::hf, 4);          // min-p
    add(0.8f, 40, 0.95f, 0.05f, 1.1f, 16, SamplerOrder::llama_cpp, 5); // llama.cpp's chain with a penalty window
    return out;
}

using test::sampling::describe;

// Generation through the recorded step (layers, head product and sample op replayed as one) against the host path on
// the plain CPU backend (every logit to the host's Sampler; the head's top-1 for plain greedy): the same ids. After the
// warm-up (the first decode step runs op by op, the second records) each token costs exactly one upload of the step's
// 24 bytes (token, position, history length, pad, u), one replay and one 4-byte download, and nothing else runs.
void expect_one_launch_generation(const std::string& model) {
    auto m = Model::load(kDir + "/" + model);
    auto tok = load_model_tokenizer(*m);
    RecordingCpu rec_be;
    auto plain_be = make_cpu_backend(1);
    Generator rec(*m, *tok, rec_be, 64), host(*m, *tok, *plain_be, 64);
    host.set_device_sampling(false);
    const std::vector<int32_t> prompt{1, 5, 9, 5, 12};
    const int n = 24, steady = n - 2; // n tokens: the prefill picks the first, then n - 1 decode steps, the first op by op
    bool first = true;
    for (const SamplingParams& s : chains()) {
        GenerateOptions o;
        o.max_tokens = n;
        o.ignore_eos = true;
        o.sampling = s;
        rec_be.events.clear();
        const int replays = rec_be.replays, dropped = rec_be.dropped;
        const GenerateResult a = rec.generate(prompt, o);
        const GenerateResult b = host.generate(prompt, o);
        const std::string what = model + ", " + describe(s);
        ASSERT_EQ(a.output_ids.size(), static_cast<size_t>(n)) << what;
        EXPECT_EQ(a.output_ids, b.output_ids) << what;
        EXPECT_EQ(rec.device_sampled_steps(), n) << what;
        EXPECT_EQ(rec.forward().step_recording_error(), "") << what;
        EXPECT_EQ(rec_be.replays - replays, steady) << what;
        EXPECT_EQ(rec_be.dropped - dropped, first ? 0 : 1) << what << ": a new chain drops the step recorded with the last one";
        first = false;
        const std::vector<std::string>& ev = rec_be.events;
        ASSERT_GE(ev.size(), static_cast<size_t>(3 * steady)) << what;
        const size_t from = ev.size() - 3 * steady;
        for (int i = 0; i < steady; ++i) {
            EXPECT_EQ(ev[from + 3 * i], "upload 24 B") << what << ", step " << i;
            EXPECT_EQ(ev[from + 3 * i + 1], "replay") << what << ", step " << i;
            EXPECT_EQ(ev[from + 3 * i + 2], "download 4 B") << what << ", step " << i;
        }
    }
    // the same chain again: the recording is kept, and every decode step is a replay
    {
        GenerateOptions o;
        o.max_tokens = n;
        o.ignore_eos = true;
        o.sampling = chains().back();
        const int replays = rec_be.replays, dropped = rec_be.dropped;
        EXPECT_EQ(rec.generate(prompt, o).output_ids, host.generate(prompt, o).output_ids);
        EXPECT_EQ(rec_be.replays - replays, n - 1);
        EXPECT_EQ(rec_be.dropped, dropped);
    }
    // without recording (WINNOW_CUDA_GRAPHS=0): op by op, the same ids, still one upload and one 4-byte download a step
    rec.forward().set_step_recording(false);
    GenerateOptions o;
    o.max_tokens = n;
    o.ignore_eos = true;
    o.sampling = chains()[4];
    rec_be.events.clear();
    const int replays = rec_be.replays;
    EXPECT_EQ(rec.generate(prompt, o).output_ids, host.generate(prompt, o).output_ids);
    EXPECT_EQ(rec_be.replays, replays);
    EXPECT_EQ(std::count(rec_be.events.begin(), rec_be.events.end(), "download 4 B"), n);
    EXPECT_EQ(std::count(rec_be.events.begin(), rec_be.events.end(), "upload 24 B"), n);
}

TEST(StepRecording, TinyLlamaGenerationIsOneReplayPerToken) { expect_one_launch_generation("tiny-llama.gguf"); }
TEST(StepRecording, TinyGpt2GenerationIsOneReplayPerToken) { expect_one_launch_generation("tiny-gpt2.gguf"); }

// A recording that fails at the sample op is given up (the reason kept) and every step goes op by op: the same ids.
TEST(StepRecording, AFailedRecordingFallsBackToOpByOp) {
    auto m = Model::load(kDir + "/tiny-llama.gguf");
    auto tok = load_model_tokenizer(*m);
    RecordingCpu rec_be;
    rec_be.refuse_sample_recording = true;
    auto plain_be = make_cpu_backend(1);
    Generator rec(*m, *tok, rec_be, 64), host(*m, *tok, *plain_be, 64);
    host.set_device_sampling(false);
    GenerateOptions o;
    o.max_tokens = 16;
    o.ignore_eos = true;
    o.sampling = chains()[6];
    EXPECT_EQ(rec.generate({1, 5, 9}, o).output_ids, host.generate({1, 5, 9}, o).output_ids);
    EXPECT_EQ(rec.forward().step_recording_error(), "cpu-recording: no sample op in a recording");
    EXPECT_FALSE(rec.forward().step_recording());
    EXPECT_EQ(rec_be.replays, 0);
    EXPECT_EQ(rec.device_sampled_steps(), 16);
}

// ChatSession takes the same path (ExactTokenPicker): over three turns and a reset its conversation (the tokens in
// the cache, the answers) equals the host path's token for token, for every chain, with the steps replayed.
TEST(StepRecording, ChatSessionTokensEqualTheHostPath) {
    auto m = Model::load(kDir + "/tiny-llama-chat.gguf");
    auto tok = load_model_tokenizer(*m);
    const ChatTemplate tmpl = load_chat_template_for(*m, *tok);
    RecordingCpu rec_be;
    auto plain_be = make_cpu_backend(1);
    for (const SamplingParams& s : chains()) {
        GenerateOptions o;
        o.max_tokens = 8;
        o.ignore_eos = true;
        o.sampling = s;
        ChatSession rec(*m, *tok, rec_be, tmpl, o, 512), host(*m, *tok, *plain_be, tmpl, o, 512);
        host.set_device_sampling(false);
        const int replays = rec_be.replays;
        auto turn = [&](const char* user) {
            const ChatTurnStats a = rec.ask(user), b = host.ask(user);
            EXPECT_EQ(a.generated, b.generated);
            EXPECT_EQ(a.reused, b.reused);
            EXPECT_EQ(a.stop_reason, b.stop_reason);
            EXPECT_EQ(rec.cached_tokens(), host.cached_tokens()) << describe(s) << ", turn " << user;
            EXPECT_EQ(rec.turns().back().content, host.turns().back().content);
        };
        for (const char* user : {"Hi", "Yo there", "again"}) turn(user);
        rec.reset();
        host.reset();
        turn("after a reset");
        EXPECT_GE(rec_be.replays - replays, 4 * (8 - 2)) << describe(s);
    }
}

// The CPU backend cannot record: asking for it is a clear error, and the default is off.
TEST(StepRecording, CpuBackendRefusesRecording) {
    auto m = Model::load(kDir + "/tiny-llama.gguf");
    auto be = make_cpu_backend(1);
    Forward f(*m, *be, 16);
    EXPECT_FALSE(f.step_recording());
    try {
        f.set_step_recording(true);
        ADD_FAILURE() << "the cpu backend accepted step recording";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), "the cpu backend cannot record decode steps");
    }
}

} // namespace
