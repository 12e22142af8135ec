// The op harness's sample cases (Backend::sample): every backend's token against the host SamplerChain for each
// logit shape x chain x u (tests/ops/sample_cases.h). OpResult: compared = (chain, u) pairs, nmse = the number of
// tokens that differ (tolerance 0; a token that is the reference's at u +- 1e-12 counts as a boundary case, reported).
#include "sample_cases.h"

#include "op_harness.h"

namespace winnow::test {

namespace {

using namespace sampling;

OpResult to_result(const Tally& t) {
    OpResult r;
    r.compared = t.compared;
    r.nmse = static_cast<double>(t.mismatches);
    r.exact_ids = t.mismatches == 0;
    std::printf("  %zu tokens compared, %zu on a rounding boundary, %zu differ%s%s\n", t.compared, t.near_boundary, t.mismatches,
                t.first_failure.empty() ? "" : "; first: ", t.first_failure.c_str());
    return r;
}

// The length read from a device tensor and the appended token: the window is history[0, length).
OpResult device_length_and_append(Backend& be) {
    const int64_t n = 1003;
    const auto logits = make_logits(Shape::random, n, 17);
    const auto history = make_history(n, 40, 18, logits);
    Tensor lt = be.alloc(GgmlType::F32, 1, n), ht = be.alloc(GgmlType::I32, 41, 1), len = be.alloc(GgmlType::I32, 1, 1);
    Tensor ut = be.alloc(GgmlType::I32, 1, 2), tok = be.alloc(GgmlType::I32, 1, 1);
    be.upload(logits.data(), lt);
    be.upload(history.data(), ht.rows_view(0, 40));
    OpResult r;
    for (int length : {0, 5, 23}) {
        be.upload(&length, len);
        for (double u : {0.1, 0.6}) {
            be.upload(&u, ut);
            SampleParams p;
            p.chain.temperature = 0.9f;
            p.chain.top_k = 20;
            p.chain.repeat_penalty = 2.0f;
            p.history = &ht;
            p.n_history = 40; // ignored: the tensor's length wins
            p.n_history_at = &len;
            p.u = &ut;
            p.append = true;
            be.sample(lt, p, tok);
            int32_t got = -1;
            be.download(tok, &got);
            std::vector<int32_t> h(static_cast<size_t>(41));
            be.download(ht, h.data());
            const int32_t want = SamplerChain(p.chain).run(logits, std::span(history).first(static_cast<size_t>(length)), u);
            r.compared += 2;
            if (got != want || h[static_cast<size_t>(length)] != want) {
                r.exact_ids = false;
                r.nmse += 1;
            }
            be.upload(history.data(), ht.rows_view(0, 40)); // undo the append
        }
    }
    return r;
}

} // namespace

void add_sample_cases(std::vector<OpCase>& cases) {
    struct Case { Shape shape; int64_t n; int random_u; };
    for (Case c : {Case{Shape::random, 49152, 1}, Case{Shape::ties, 49152, 1}, Case{Shape::random, 1003, 6}, Case{Shape::ties, 1003, 6},
                   Case{Shape::near_ties, 1003, 6}, Case{Shape::with_neg_inf, 1003, 6},
                   Case{Shape::merged_by_temperature, 1003, 6}, Case{Shape::four_equal, 1003, 6}, Case{Shape::ties, 7, 6},
                   Case{Shape::all_neg_inf, 1003, 6}, Case{Shape::pos_inf, 1003, 6}, Case{Shape::nan_first, 1003, 0},
                   Case{Shape::nan_scattered, 1003, 0}, Case{Shape::nan_ties, 1003, 0}, Case{Shape::all_nan, 1003, 0}}) {
        const std::string name = std::string("sample/F32/") + sampling::name(c.shape) + "_vocab" + std::to_string(c.n);
        cases.push_back({name, Op::sample, GgmlType::F32, 0.0, 0.0, [c, name](Backend& be) {
                             const auto logits = make_logits(c.shape, c.n, 1000 + static_cast<uint64_t>(c.n));
                             const auto history = make_history(c.n, 100, 7, logits);
                             return to_result(compare(backend_picker(be, logits, history), host_chain(logits, history), uniforms(99, c.random_u), name,
                                                      greedy_only(c.shape)));
                         }});
    }
    cases.push_back({"sample/F32/device_length_and_append", Op::sample, GgmlType::F32, 0.0, 0.0, device_length_and_append});
}

} // namespace winnow::test
