#include "train/checkpoint.h"

#include <cstring>

#include "io/gguf_writer.h"
#include "winnow/error.h"

namespace winnow::train {

void save_checkpoint(const std::string& path, const io::GgufFile& source, const Transformer<float>& model, const AdamW<float>* opt,
                     const CheckpointState& state) {
    io::GgufWriter w;
    // The source's metadata without what this function sets: a run resumed from a checkpoint (whose metadata already
    // holds these keys, in sorted order) then writes the same bytes as the uninterrupted run.
    for (const auto& [key, value] : source.metadata())
        if (key != "general.alignment" && key != "general.file_type" && !key.starts_with("winnow.train.")) w.set(key, value);
    w.set_u32("general.file_type", 0); // all F32
    w.set_u64("winnow.train.step", static_cast<uint64_t>(state.step));
    w.set_string("winnow.train.rng", state.rng);
    w.set_string("winnow.train.settings", state.settings);
    w.set_string("winnow.train.policy", model.policy().describe());

    const auto& params = model.params();
    const bool gpt2 = model.shape().arch == Arch::gpt2;
    std::vector<std::vector<float>> fused; // gpt2's q|k|v, concatenated as its GGUF stores them
    fused.reserve(2 * model.shape().n_layer);
    for (const auto& t : model.tensors()) {
        const float* data = params.data() + t.offset;
        if (gpt2 && (t.name.find(".attn_k.") != std::string::npos || t.name.find(".attn_v.") != std::string::npos)) continue;
        if (gpt2 && t.name.find(".attn_q.") != std::string::npos) {
            const std::string base = t.name.substr(0, t.name.find(".attn_q.")), suffix = t.name.substr(t.name.rfind('.'));
            const auto& k = model.tensor(base + ".attn_k" + suffix);
            const auto& v = model.tensor(base + ".attn_v" + suffix);
            std::vector<float> qkv(params.begin() + t.offset, params.begin() + t.offset + t.size);
            qkv.insert(qkv.end(), params.begin() + k.offset, params.begin() + k.offset + k.size);
            qkv.insert(qkv.end(), params.begin() + v.offset, params.begin() + v.offset + v.size);
            fused.push_back(std::move(qkv));
            const uint64_t rows = static_cast<uint64_t>(t.rows + k.rows + v.rows);
            w.add_tensor(base + ".attn_qkv" + suffix, fused.back().data(), t.rows == 1 ? std::vector<uint64_t>{static_cast<uint64_t>(t.cols + k.cols + v.cols)}
                                                                                       : std::vector<uint64_t>{static_cast<uint64_t>(t.cols), rows});
            continue;
        }
        if (t.rows == 1) w.add_tensor(t.name, data, {static_cast<uint64_t>(t.cols)});
        else w.add_tensor(t.name, data, {static_cast<uint64_t>(t.cols), static_cast<uint64_t>(t.rows)});
    }
    if (opt) {
        w.add_tensor("train.adam_m", opt->m().data(), {opt->m().size()});
        w.add_tensor("train.adam_v", opt->v().data(), {opt->v().size()});
    }
    w.write(path);
}

CheckpointState load_optimizer_state(const std::string& path, AdamW<float>& opt) {
    auto f = io::GgufFile::open(path);
    CheckpointState s;
    s.step = static_cast<int>(f->require_uint("winnow.train.step"));
    s.rng = f->require_string("winnow.train.rng");
    s.settings = f->require_string("winnow.train.settings");
    for (auto [name, dst] : {std::pair{"train.adam_m", &opt.m()}, std::pair{"train.adam_v", &opt.v()}}) {
        const io::GgufTensorInfo* t = f->find_tensor(name);
        if (!t) throw Error(ErrorKind::format, "checkpoint '" + path + "' has no optimizer state ('" + name + "'): it cannot be resumed");
        if (t->type != GgmlType::F32 || t->n_elements() != dst->size())
            throw Error(ErrorKind::format, "checkpoint '" + path + "': '" + name + "' does not match the model's " + std::to_string(dst->size()) + " parameters");
        std::memcpy(dst->data(), t->data, dst->size() * sizeof(float));
    }
    return s;
}

} // namespace winnow::train
