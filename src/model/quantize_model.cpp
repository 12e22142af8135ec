#include "model/quantize_model.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "io/quant.h"
#include "winnow/error.h"

namespace winnow {

namespace {

constexpr uint32_t kQuantizationVersion = 2; // ggml's GGML_QNT_VERSION: the current block layouts

// A head count as the quantizer's rules read it: the integer, or layer 0's where the file gives one per layer (an
// array, as some architectures do; llama.cpp's hparams take layer 0's too); nullopt where absent or not an integer.
std::optional<uint64_t> head_count(const io::GgufFile& f, const std::string& key) {
    const io::GgufValue* v = f.find(key);
    if (v && v->type == io::GgufValueType::array) v = v->elems.empty() ? nullptr : &v->elems.front();
    return v ? io::unsigned_value(*v) : std::nullopt;
}

PresetModelShape model_shape(const io::GgufFile& f) {
    const std::string arch = f.require_string("general.architecture");
    PresetModelShape m;
    const uint64_t n_layer = f.require_uint(arch + ".block_count");
    if (n_layer == 0 || n_layer > 100000) throw Error(ErrorKind::format, f.path() + ": " + arch + ".block_count " + std::to_string(n_layer) + " is not a layer count");
    m.n_layer = static_cast<int>(n_layer);
    m.has_output = f.find_tensor("output.weight") != nullptr;
    for (const auto& t : f.tensors())
        if (t.name.find("attn_v.weight") != std::string::npos || t.name.find("attn_qkv.weight") != std::string::npos) ++m.n_attention_v;
    const auto heads = head_count(f, arch + ".attention.head_count"), kv_heads = head_count(f, arch + ".attention.head_count_kv");
    if (heads && *heads > 0 && (!kv_heads || (*kv_heads > 0 && *heads % *kv_heads == 0))) m.n_gqa = kv_heads ? static_cast<int>(*heads / *kv_heads) : 1;
    m.llama_70b = arch == "llama" && m.n_layer == 80 && m.n_gqa > 1;
    return m;
}

// The tensor's rows decoded and encoded as `to`, on `threads` threads; a non-finite value is an error naming the
// tensor and its first such row.
std::vector<uint8_t> encode_tensor(const io::GgufTensorInfo& t, GgmlType to, int threads) {
    const uint64_t row = t.ne[0], rows = row ? t.n_elements() / row : 0;
    const uint64_t in_row_bytes = ggml_row_bytes(t.type, row), out_row_bytes = ggml_row_bytes(to, row);
    std::vector<uint8_t> out(rows * out_row_bytes);
    int64_t first_bad = -1;
#pragma omp parallel num_threads(threads)
    {
        std::vector<float> values(row);
#pragma omp for schedule(dynamic, 16)
        for (int64_t r = 0; r < static_cast<int64_t>(rows); ++r) {
            dequantize_row(t.type, t.data + r * in_row_bytes, values.data(), row);
            if (!std::all_of(values.begin(), values.end(), [](float v) { return std::isfinite(v); })) {
#pragma omp critical(quantize_bad_row)
                first_bad = first_bad < 0 ? r : std::min(first_bad, r);
                continue;
            }
            quantize_row_ref(to, values.data(), out.data() + r * out_row_bytes, row);
        }
    }
    if (first_bad >= 0)
        throw Error(ErrorKind::format, "tensor '" + t.name + "' holds a value that is not finite (row " + std::to_string(first_bad) + "); it cannot be quantized");
    return out;
}

// The preset's type for the tensor, or the type the options name for the output matrix or the token embedding.
std::optional<GgmlType> chosen_type(const QuantPreset& preset, const PresetTensor& t, const PresetModelShape& shape, const QuantizeOptions& o) {
    const bool output = t.name == "output.weight" || (!shape.has_output && t.name == "token_embd.weight");
    const std::optional<GgmlType> named = output ? o.output_type : t.name == "token_embd.weight" ? o.token_embedding_type : std::nullopt;
    if (!named) return preset_tensor_type(preset, t, shape, o.pure);
    const uint32_t block = ggml_type_traits(static_cast<uint32_t>(*named))->block_size;
    if (t.ne[0] % block != 0)
        throw Error(ErrorKind::invalid_argument, std::string(output ? "--output-tensor-type " : "--token-embedding-type ") + ggml_type_name(*named) +
                                                     ": the rows of '" + t.name + "' (" + std::to_string(t.ne[0]) + " wide) do not split into its " +
                                                     std::to_string(block) + "-weight blocks");
    return named;
}

} // namespace

QuantizeSummary quantize_model(const std::string& in_path, const std::string& out_path, const QuantizeOptions& options,
                               const QuantizeProgress& progress) {
    if (!options.preset) throw Error(ErrorKind::invalid_argument, "quantize: no preset given");
    if (options.threads < 0) throw Error(ErrorKind::invalid_argument, "quantize: threads must be >= 0");
    for (const auto& named : {options.output_type, options.token_embedding_type})
        if (named && !ggml_type_supported(*named))
            throw Error(ErrorKind::invalid_argument, std::string("quantize: winnow does not write ") + ggml_type_name(*named));
    const QuantPreset& preset = *options.preset;
    // shared: the writer's tensor callbacks read the map while write() runs
    std::shared_ptr<const io::GgufFile> in = io::GgufFile::open(in_path);
    const PresetModelShape shape = model_shape(*in);
    const int threads = options.threads > 0 ? options.threads : omp_get_max_threads();

    io::GgufWriter w;
    for (const auto& [key, value] : in->metadata()) w.set(key, value);
    w.set_u32("general.file_type", preset.file_type);
    w.set_u32("general.quantization_version", kQuantizationVersion);
    if (in->find("general.alignment")) w.set_u32("general.alignment", 32); // the writer's alignment

    QuantizeSummary s;
    const int count = static_cast<int>(in->tensors().size());
    for (int i = 0; i < count; ++i) {
        const io::GgufTensorInfo& t = in->tensors()[i];
        PresetTensor pt{t.name, t.n_dims, {t.ne[0], t.ne[1], t.ne[2], t.ne[3]}};
        const GgmlType to = chosen_type(preset, pt, shape, options).value_or(t.type);
        const bool encode = to != t.type;
        if (encode && is_quantized_type(t.type) && !options.allow_requantize)
            throw Error(ErrorKind::invalid_argument, in_path + ": tensor '" + t.name + "' is already " + ggml_type_name(t.type) + "; quantizing it to " +
                                                         ggml_type_name(to) + " rounds its rounded values again (--allow-requantize does it anyway)");
        if (encode && !ggml_type_supported(t.type))
            throw Error(ErrorKind::unsupported, in_path + ": tensor '" + t.name + "' is stored as " + ggml_type_name(t.type) + ", which winnow cannot decode");
        const std::vector<uint64_t> ne(t.ne, t.ne + std::max<uint32_t>(t.n_dims, 1));
        w.add_tensor(t.name, to, ne, [in, i, count, to, encode, threads, progress] {
            const io::GgufTensorInfo& t = in->tensors()[i];
            if (progress) progress(i, count, t.name, t.type, to);
            if (!encode) return std::vector<uint8_t>(t.data, t.data + t.nbytes);
            return encode_tensor(t, to, threads);
        });
        s.tensors += 1;
        s.quantized += encode;
        s.bytes_in += t.nbytes;
        s.bytes_out += t.ne[0] ? ggml_row_bytes(to, t.ne[0]) * (t.n_elements() / t.ne[0]) : 0;
        s.weights += t.n_elements();
        s.types_out[ggml_type_name(to)] += 1;
    }
    w.write(out_path);
    return s;
}

} // namespace winnow
