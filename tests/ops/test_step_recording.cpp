// Forward's recorded decode steps (CUDA graphs on the GPU) checked on the CPU: a backend that records ops the way
// stream capture does — while recording, ops are stored, not run, and uploads, downloads and allocations are refused —
// and replays them later, reading each op's position from its device tensor when it runs. Forward over that backend
// must give the plain CPU backend's logits bit for bit, at every position, after reset() and rewind(), with block
// masks and with gpt2's learned positions; and a recording must be dropped when what it points at changes (scratch
// grown by a longer prefill, new masks). The CUDA twin of this test is CudaDecoder.RecordedDecodeStepsEqualOpByOp.
#include <functional>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "decode/forward.h"
#include "model/model.h"
#include "winnow/error.h"

namespace {

using namespace winnow;

const std::string kDir = WINNOW_FIXTURE_DIR;

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
        cpu_->upload(h, d);
    }
    void download(const Tensor& s, void* h) override {
        refuse_while_recording("download");
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
        const Tensor pos = p.pos ? *p.pos : Tensor();
        op([=, this] {
            AttentionParams a = p;
            a.pos = pos.empty() ? nullptr : &pos;
            cpu_->attention(q, k, v, o, a);
        });
    }
    void gelu_tanh(const Tensor& x) override {
        op([=, this] { cpu_->gelu_tanh(x); });
    }
    void swiglu(const Tensor& g, const Tensor& u, const Tensor& o) override {
        op([=, this] { cpu_->swiglu(g, u, o); });
    }
    void add(const Tensor& y, const Tensor& x) override {
        op([=, this] { cpu_->add(y, x); });
    }
    TopK top_k(const Tensor& l, int k, bool n) override {
        refuse_while_recording("top_k");
        return cpu_->top_k(l, k, n);
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
        for (const auto& f : recordings_.at(static_cast<size_t>(r))) f();
    }
    void drop_recording(int r) override {
        recordings_.at(static_cast<size_t>(r)).clear();
        ++dropped;
    }

    int replays = 0, dropped = 0;
    size_t recorded_ops() const { return recordings_.empty() ? 0 : recordings_.back().size(); }

private:
    void refuse_while_recording(const char* what) const {
        if (recording_) throw Error(ErrorKind::invalid_argument, std::string("cpu-recording: ") + what + " while recording");
    }
    void op(std::function<void()> f) {
        if (recording_) open_.push_back(std::move(f));
        else f();
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

// Prefill, decode, reset, decode from position 0 (a recording with a baked-in position would write the wrong cache row
// and rotate by the wrong angle), rewind into the middle and decode again: recorded vs plain, bit for bit.
void expect_recorded_equal_plain(const std::string& model, bool masked) {
    auto m = Model::load(kDir + "/" + model);
    const int n_ctx = 64, nv = m->config().n_vocab;
    RecordingCpu rec_be;
    auto plain_be = make_cpu_backend(1);
    Forward rec(*m, rec_be, n_ctx), plain(*m, *plain_be, n_ctx);
    ASSERT_TRUE(rec.step_recording());
    ASSERT_FALSE(plain.step_recording()); // the CPU backend cannot record
    const BlockMask mask = local_mask(n_ctx);
    if (masked) {
        rec.set_attention_masks(std::vector<const BlockMask*>(m->config().n_layer, &mask));
        plain.set_attention_masks(std::vector<const BlockMask*>(m->config().n_layer, &mask));
    }
    const auto ids = ids_for(n_ctx, nv);
    auto step = [&](int t) {
        const std::vector<float> a = rec.eval(std::span(ids).subspan(t, 1));
        const std::vector<float>& b = plain.eval(std::span(ids).subspan(t, 1));
        ASSERT_EQ(a, b) << model << ": recorded and plain decode differ at position " << t;
    };
    ASSERT_EQ(rec.eval(std::span(ids).first(6)), plain.eval(std::span(ids).first(6)));
    for (int t = 6; t < 40; ++t) step(t);
    rec.reset();
    plain.reset();
    for (int t = 0; t < 20; ++t) step(t);
    rec.rewind(10);
    plain.rewind(10);
    for (int t = 10; t < n_ctx; ++t) step(t);
    EXPECT_EQ(rec.step_recording_error(), "");
    // 34 + 20 + 54 decode steps; the first one runs op by op and the second is recorded, then replayed
    EXPECT_EQ(rec.replayed_steps(), 34 + 20 + 54 - 1);
    EXPECT_EQ(rec_be.replays, rec.replayed_steps());
    EXPECT_GT(rec_be.recorded_ops(), static_cast<size_t>(8 * m->config().n_layer)); // the whole step, not a part
}

TEST(StepRecording, TinyLlamaRecordedStepsEqualPlain) { expect_recorded_equal_plain("tiny-llama.gguf", false); }
TEST(StepRecording, TinyLlamaQ4_1MaskedRecordedStepsEqualPlain) { expect_recorded_equal_plain("tiny-llama-q4_1.gguf", true); }
TEST(StepRecording, TinyGpt2RecordedStepsEqualPlain) { expect_recorded_equal_plain("tiny-gpt2.gguf", false); } // learned positions

// A recording holds the addresses of the scratch tensors and the masks: a longer prefill (scratch grows) or new masks
// drop it, and the next decode steps record again and stay equal to plain.
TEST(StepRecording, ScratchGrowthAndNewMasksDropTheRecording) {
    auto m = Model::load(kDir + "/tiny-llama.gguf");
    const int n_ctx = 64;
    RecordingCpu rec_be;
    auto plain_be = make_cpu_backend(1);
    Forward rec(*m, rec_be, n_ctx), plain(*m, *plain_be, n_ctx);
    const auto ids = ids_for(n_ctx, m->config().n_vocab);
    auto run = [&](int first, int prefill, int last) {
        rec.reset();
        plain.reset();
        ASSERT_EQ(rec.eval(std::span(ids).subspan(first, prefill)), plain.eval(std::span(ids).subspan(first, prefill)));
        for (int t = first + prefill; t < last; ++t) ASSERT_EQ(rec.eval(std::span(ids).subspan(t, 1)), plain.eval(std::span(ids).subspan(t, 1)));
    };
    run(0, 2, 10);
    EXPECT_EQ(rec_be.dropped, 0);
    run(0, 12, 30); // 12 > 2 scratch rows: reallocated, the recording dropped
    EXPECT_EQ(rec_be.dropped, 1);
    const BlockMask mask = local_mask(n_ctx);
    rec.set_attention_masks(std::vector<const BlockMask*>(m->config().n_layer, &mask));
    plain.set_attention_masks(std::vector<const BlockMask*>(m->config().n_layer, &mask));
    EXPECT_EQ(rec_be.dropped, 2);
    run(0, 3, 40);
    EXPECT_GT(rec.replayed_steps(), 40);
    rec.set_step_recording(false);
    EXPECT_EQ(rec_be.dropped, 3);
    const int64_t replayed = rec.replayed_steps();
    run(0, 3, 20);
    EXPECT_EQ(rec.replayed_steps(), replayed);
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
