// winnow._winnow: the C++ API (winnow/winnow.h) for Python. Long calls release the GIL; logits come back as NumPy
// arrays that own the C++ buffer (no copy).
#include <memory>
#include <vector>

#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <winnow/winnow.h>

namespace py = pybind11;
using namespace pybind11::literals;

namespace {

// A NumPy array over a moved-in vector: the capsule frees the vector when the array dies.
py::array_t<float> to_numpy(std::vector<float>&& v, std::vector<py::ssize_t> shape) {
    auto* owned = new std::vector<float>(std::move(v));
    py::capsule free_when_done(owned, [](void* p) { delete static_cast<std::vector<float>*>(p); });
    std::vector<py::ssize_t> strides(shape.size());
    py::ssize_t s = sizeof(float);
    for (size_t i = shape.size(); i-- > 0;) {
        strides[i] = s;
        s *= shape[i];
    }
    return py::array_t<float>(shape, strides, owned->data(), free_when_done);
}

// Text from the model as a Python str: a random or broken model can emit bytes that are not UTF-8; they become U+FFFD
// instead of an exception.
py::str utf8_str(std::string_view s) {
    PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
    if (!o) throw py::error_already_set();
    return py::reinterpret_steal<py::str>(o);
}

winnow::Device parse_device(const std::string& d, int& cuda_device) {
    if (d == "cpu") return winnow::Device::cpu;
    if (d == "cuda") return winnow::Device::cuda;
    if (d.rfind("cuda:", 0) == 0) {
        cuda_device = std::stoi(d.substr(5));
        return winnow::Device::cuda;
    }
    throw winnow::Error(winnow::ErrorKind::invalid_argument, "device must be cpu, cuda or cuda:N, not '" + d + "'");
}

winnow::GenerateOptions make_options(int max_tokens, float temperature, int top_k, float top_p, float min_p, float repeat_penalty, int repeat_last_n,
                                     uint64_t seed, std::vector<std::string> stop, bool ignore_eos, const std::string& head, double delta, double epsilon) {
    winnow::GenerateOptions o;
    o.max_tokens = max_tokens;
    o.sampling.temperature = temperature;
    o.sampling.top_k = top_k;
    o.sampling.top_p = top_p;
    o.sampling.min_p = min_p;
    o.sampling.repeat_penalty = repeat_penalty;
    o.sampling.repeat_last_n = repeat_last_n;
    o.sampling.seed = seed;
    o.sampling.validate();
    o.stop = std::move(stop);
    o.ignore_eos = ignore_eos;
    if (head != "exact" && head != "adaptive") throw winnow::Error(winnow::ErrorKind::invalid_argument, "head must be exact or adaptive, not '" + head + "'");
    o.head = head == "adaptive" ? winnow::HeadMode::adaptive : winnow::HeadMode::exact;
    o.adaptive.delta = delta;
    o.adaptive.epsilon = epsilon;
    return o;
}

} // namespace

PYBIND11_MODULE(_winnow, m) {
    m.doc() = "winnow: load a GGUF / safetensors model, open sessions, generate";
    static py::exception<winnow::Error> error(m, "Error", PyExc_RuntimeError);
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const winnow::Error& e) {
            py::set_error(error, e.what());
        }
    });

    py::class_<winnow::GenerateResult>(m, "GenerateResult")
        .def_property_readonly("text", [](const winnow::GenerateResult& r) { return utf8_str(r.text); })
        .def_readonly("prompt_ids", &winnow::GenerateResult::prompt_ids)
        .def_readonly("output_ids", &winnow::GenerateResult::output_ids)
        .def_readonly("stop_reason", &winnow::GenerateResult::stop_reason)
        .def_property_readonly("stats", [](const winnow::GenerateResult& r) {
            py::dict d;
            d["prompt_seconds"] = r.prompt_seconds;
            d["gen_seconds"] = r.gen_seconds;
            d["tokens_per_second"] = r.gen_seconds > 0 ? r.output_ids.size() / r.gen_seconds : 0.0;
            d["head_adaptive_steps"] = r.head_adaptive_steps;
            d["head_exact_steps"] = r.head_exact_steps;
            d["head_fallbacks"] = r.head_fallbacks;
            d["head_factors"] = r.head_factors;
            d["head_samples"] = r.head_samples;
            d["head_mean_fraction"] = r.head_adaptive_steps ? r.head_fraction_sum / r.head_adaptive_steps : 1.0;
            d["head_seconds"] = r.head_seconds;
            return d;
        })
        .def("__repr__", [](const winnow::GenerateResult& r) {
            return "<GenerateResult " + std::to_string(r.output_ids.size()) + " tokens, stop: " + r.stop_reason + ">";
        });

    py::class_<winnow::Session>(m, "Session")
        .def(
            "generate",
            [](winnow::Session& s, py::object prompt, int max_tokens, float temperature, int top_k, float top_p, float min_p, float repeat_penalty,
               int repeat_last_n, uint64_t seed, std::vector<std::string> stop, bool ignore_eos, const std::string& head, double delta, double epsilon,
               py::object on_piece) {
                const auto opt = make_options(max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n, seed, std::move(stop),
                                              ignore_eos, head, delta, epsilon);
                winnow::TokenCallback cb;
                if (!on_piece.is_none())
                    cb = [&](std::string_view piece) {
                        py::gil_scoped_acquire gil;
                        return py::cast<bool>(on_piece(utf8_str(piece)));
                    };
                if (py::isinstance<py::str>(prompt)) {
                    const std::string text = prompt.cast<std::string>();
                    py::gil_scoped_release nogil;
                    return s.generate(text, opt, cb);
                }
                const std::vector<int32_t> ids = prompt.cast<std::vector<int32_t>>();
                py::gil_scoped_release nogil;
                return s.generate(ids, opt, cb);
            },
            "prompt"_a, "max_tokens"_a = 64, "temperature"_a = 0.0f, "top_k"_a = 0, "top_p"_a = 1.0f, "min_p"_a = 0.0f, "repeat_penalty"_a = 1.0f,
            "repeat_last_n"_a = -1, "seed"_a = 0, "stop"_a = std::vector<std::string>{}, "ignore_eos"_a = false, "head"_a = "exact", "delta"_a = 0.01,
            "epsilon"_a = 0.3, "on_piece"_a = py::none(),
            "Generates from a prompt (str) or token ids (list of int), from an empty cache. on_piece(text) -> bool receives the streamed text.")
        .def(
            "logits",
            [](winnow::Session& s, const std::vector<int32_t>& ids, bool all) {
                std::vector<float> l;
                {
                    py::gil_scoped_release nogil;
                    l = s.eval(ids, all);
                }
                const py::ssize_t rows = all ? static_cast<py::ssize_t>(ids.size()) : 1;
                const py::ssize_t n = static_cast<py::ssize_t>(l.size()) / rows;
                return all ? to_numpy(std::move(l), {rows, n}) : to_numpy(std::move(l), {n});
            },
            "ids"_a, "all"_a = false, "Appends ids to the cache; the next-token logits of the last (or every) one, as a NumPy array (no copy).")
        .def("hidden", [](const winnow::Session& s) { auto h = s.hidden(); const auto n = static_cast<py::ssize_t>(h.size()); return to_numpy(std::move(h), {n}); })
        .def("reset", &winnow::Session::reset)
        .def_property_readonly("n_past", &winnow::Session::n_past)
        .def_property_readonly("n_ctx", &winnow::Session::n_ctx);

    m.def(
        "quantize",
        [](const std::string& in, const std::string& out, const std::string& preset, bool allow_requantize, bool pure, const std::string& output_tensor_type,
           const std::string& token_embedding_type, int threads) {
            winnow::QuantizeParams p;
            p.preset = preset;
            p.allow_requantize = allow_requantize;
            p.pure = pure;
            p.output_tensor_type = output_tensor_type;
            p.token_embedding_type = token_embedding_type;
            p.threads = threads;
            winnow::QuantizeResult r;
            {
                py::gil_scoped_release nogil;
                r = winnow::quantize(in, out, p);
            }
            return py::dict("tensors"_a = r.tensors, "quantized"_a = r.quantized, "bytes_in"_a = r.bytes_in, "bytes_out"_a = r.bytes_out);
        },
        "input"_a, "output"_a, "preset"_a = "Q4_K_M", "allow_requantize"_a = false, "pure"_a = false, "output_tensor_type"_a = "",
        "token_embedding_type"_a = "", "threads"_a = 0,
        "Writes the GGUF model `input` to `output` in one of llama.cpp's presets (Q4_K_M, Q5_K_M, Q6_K, Q8_0, ...), as `winnow quantize` does.");

    py::class_<winnow::Model>(m, "Model")
        .def(py::init([](const std::string& path, const std::string& device, int threads, const std::string& dot, const std::string& adaptive_impl,
                         const std::string& head_calibration, int adaptive_exact_prefix, int adaptive_row_clusters, const std::string& adaptive_basis,
                         const py::object& chat_template_kwargs) {
                 winnow::ModelParams p;
                 p.device = parse_device(device, p.cuda_device);
                 p.threads = threads;
                 if (dot != "f32" && dot != "q8" && dot != "auto") throw winnow::Error(winnow::ErrorKind::invalid_argument, "dot must be auto, q8 or f32");
                 p.dot = dot == "q8" ? winnow::CpuDotMode::q8 : dot == "auto" ? winnow::CpuDotMode::automatic : winnow::CpuDotMode::f32;
                 p.adaptive_impl = adaptive_impl;
                 p.head_calibration = head_calibration;
                 p.adaptive_exact_prefix = adaptive_exact_prefix;
                 p.adaptive_row_clusters = adaptive_row_clusters;
                 p.adaptive_basis = adaptive_basis;
                 // a dict (or a JSON text) of more chat-template variables: {"enable_thinking": False} for Qwen3
                 if (!chat_template_kwargs.is_none())
                     p.chat_template_kwargs = py::isinstance<py::str>(chat_template_kwargs)
                                                  ? chat_template_kwargs.cast<std::string>()
                                                  : py::module_::import("json").attr("dumps")(chat_template_kwargs).cast<std::string>();
                 py::gil_scoped_release nogil;
                 return winnow::Model::load(path, p);
             }),
             "path"_a, "device"_a = "cpu", "threads"_a = 0, "dot"_a = "auto", "adaptive_impl"_a = "fast", "head_calibration"_a = "", "adaptive_exact_prefix"_a = 0,
             "adaptive_row_clusters"_a = 0, "adaptive_basis"_a = "", "chat_template_kwargs"_a = py::none())
        .def_property_readonly("info", [](const winnow::Model& mo) {
            const auto& i = mo.info();
            return py::dict("path"_a = i.path, "name"_a = i.name, "architecture"_a = i.architecture, "n_vocab"_a = i.n_vocab, "n_embd"_a = i.n_embd,
                            "n_layer"_a = i.n_layer, "n_head"_a = i.n_head, "n_head_kv"_a = i.n_head_kv, "n_ctx_train"_a = i.n_ctx_train,
                            "tokenizer"_a = i.tokenizer, "has_chat_template"_a = i.has_chat_template);
        })
        .def("tokenize", [](const winnow::Model& mo, const std::string& text, bool special) { return mo.tokenize(text, special); }, "text"_a,
             "special"_a = true)
        .def("detokenize", [](const winnow::Model& mo, const std::vector<int32_t>& ids) { return utf8_str(mo.detokenize(ids)); }, "ids"_a)
        .def(
            "apply_chat_template",
            [](const winnow::Model& mo, const py::object& conversation, const std::string& system, bool add_generation_prompt) {
                if (py::isinstance<py::str>(conversation)) return utf8_str(mo.apply_chat_template(conversation.cast<std::string>(), system));
                if (!system.empty())
                    throw winnow::Error(winnow::ErrorKind::invalid_argument,
                                        "apply_chat_template: with a list of messages, give the system prompt as its first message, not system=");
                if (!py::isinstance<py::list>(conversation) && !py::isinstance<py::tuple>(conversation))
                    throw winnow::Error(winnow::ErrorKind::invalid_argument, "apply_chat_template: expected a str (one user turn) or a list of messages");
                std::vector<winnow::ChatMessage> messages;
                for (const py::handle item : conversation) {
                    const auto field = [&](const char* key) {
                        if (!py::isinstance<py::dict>(item) || !item.cast<py::dict>().contains(key) || !py::isinstance<py::str>(item[key]))
                            throw winnow::Error(winnow::ErrorKind::invalid_argument, "apply_chat_template: message " + std::to_string(messages.size()) +
                                                                                         " must be a dict with str 'role' and 'content'");
                        return item[key].cast<std::string>();
                    };
                    messages.push_back({field("role"), field("content")});
                }
                return utf8_str(mo.apply_chat_template(messages, add_generation_prompt));
            },
            "conversation"_a, "system"_a = "", "add_generation_prompt"_a = true,
            "The model's chat template applied to one user turn (a str, after `system` if given) or to a conversation (a list "
            "of {'role': ..., 'content': ...} dicts), as HF transformers' apply_chat_template(..., tokenize=False) renders it.")
        .def(
            "session",
            [](const winnow::Model& mo, int n_ctx, const std::string& kv_type, const std::string& sparse_pattern, int sparse_dense_below,
               int sparse_select_blocks, int sparse_select_block_size) {
                winnow::SessionParams p;
                p.n_ctx = n_ctx;
                p.sparse_pattern = sparse_pattern;
                p.sparse_dense_below = sparse_dense_below;
                p.sparse_select_blocks = sparse_select_blocks;
                p.sparse_select_block_size = sparse_select_block_size;
                if (kv_type != "f32" && kv_type != "f16" && kv_type != "bf16") throw winnow::Error(winnow::ErrorKind::invalid_argument, "kv_type must be f32, f16 or bf16");
                p.kv_type = kv_type == "f16" ? winnow::KvType::f16 : kv_type == "bf16" ? winnow::KvType::bf16 : winnow::KvType::f32;
                return mo.session(p);
            },
            "n_ctx"_a = 2048, "kv_type"_a = "f32", "sparse_pattern"_a = "", "sparse_dense_below"_a = winnow::SessionParams{}.sparse_dense_below,
            "sparse_select_blocks"_a = winnow::SessionParams{}.sparse_select_blocks, "sparse_select_block_size"_a = 0,
            "A session; sparse_pattern (a file from `winnow calibrate-sparse`) turns on block-sparse attention, sparse_select_blocks its "
            "query-aware blocks per row.");
}
