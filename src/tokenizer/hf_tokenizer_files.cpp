// Tokenizers from Hugging Face checkpoint files: tokenizer.json (byte-level BPE), vocab.json + merges.txt
// (GPT-2 style), or tokenizer.model (SentencePiece).
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/json_file.h"

#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "winnow/error.h"

namespace winnow {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {


// ByteLevel without a prefix space (HF would prepend one; winnow never does): with its own GPT-2 regex, or without.
bool is_byte_level(const json& p, bool with_regex) {
    return p.is_object() && p.value("type", "") == "ByteLevel" && p.value("use_regex", true) == with_regex && !p.value("add_prefix_space", false);
}

// Llama 3's and Qwen2's pipeline: Split(Regex, Isolated), then ByteLevel without its own regex. The regex, or "".
std::string isolated_split_regex(const json& seq) {
    if (seq.size() != 2 || !is_byte_level(seq[1], false)) return "";
    const json& split = seq[0];
    if (!split.is_object() || split.value("type", "") != "Split" || split.value("behavior", "") != "Isolated" || split.value("invert", false)) return "";
    const json& pattern = split.contains("pattern") ? split["pattern"] : json();
    return pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string() ? pattern["Regex"].get<std::string>() : "";
}

// Which winnow pre-tokenizer an HF pre_tokenizer block is; an unknown pipeline is an error, never a guess.
std::string pre_tokenizer_name(const json& pre, const std::string& where) {
    if (is_byte_level(pre, true)) return "gpt-2";
    if (pre.is_object() && pre.value("type", "") == "Sequence" && pre.contains("pretokenizers") && pre["pretokenizers"].is_array()) {
        const auto& seq = pre["pretokenizers"];
        if (seq.size() == 2 && seq[0].value("type", "") == "Digits" && seq[0].value("individual_digits", false) && is_byte_level(seq[1], true))
            return "smollm";
        if (seq.size() == 1 && is_byte_level(seq[0], true)) return "gpt-2";
        if (const std::string name = tok::pre_tokenizer_for_hf_split(isolated_split_regex(seq)); !name.empty()) return name;
    }
    throw Error(ErrorKind::unsupported, where + ": pre_tokenizer " + pre.dump().substr(0, 160) + " is not one winnow implements (gpt-2, smollm, llama3, qwen2)");
}

// Whether an HF normalizer block asks for Unicode NFC (Qwen2's); none is false; any other normalization is refused,
// as its ids would differ from the reference tokenizer's.
bool normalizer_is_nfc(const json& n, const std::string& where) {
    auto nfc = [](const json& x) { return x.is_object() && x.value("type", "") == "NFC"; };
    if (n.is_null()) return false;
    if (nfc(n)) return true;
    if (n.is_object() && n.value("type", "") == "Sequence" && n.contains("normalizers") && n["normalizers"].is_array()) {
        const json& seq = n["normalizers"];
        if (seq.empty()) return false;
        if (seq.size() == 1 && nfc(seq[0])) return true;
    }
    throw Error(ErrorKind::unsupported, where + ": normalizer " + n.dump().substr(0, 160) + " is not one winnow implements (none, NFC)");
}

// Whether an HF post_processor puts a special token before a single sequence (Llama 3's TemplateProcessing adds
// <|begin_of_text|>): HF's add-BOS behaviour where tokenizer_config.json does not say. One level of Sequence is read.
bool post_processor_adds_bos(const json& pp) {
    auto template_adds = [](const json& p) {
        if (!p.is_object() || p.value("type", "") != "TemplateProcessing" || !p.contains("single") || !p["single"].is_array() || p["single"].empty())
            return false;
        return p["single"][0].is_object() && p["single"][0].contains("SpecialToken");
    };
    if (template_adds(pp)) return true;
    if (pp.is_object() && pp.value("type", "") == "Sequence" && pp.contains("processors") && pp["processors"].is_array())
        for (const json& p : pp["processors"])
            if (template_adds(p)) return true;
    return false;
}

// merges.txt and tokenizer.model are read whole: a hostile size is refused before any allocation grows with it (a
// failed allocation inside std::getline only sets badbit, which would leave a silently truncated merge list).
void check_file_size(const fs::path& p) {
    std::error_code ec;
    const auto size = fs::file_size(p, ec);
    if (!ec && size > io::kMaxJsonFileBytes)
        throw Error(ErrorKind::format, "'" + p.string() + "': " + std::to_string(size) + " bytes, larger than winnow's limit of " +
                                           std::to_string(io::kMaxJsonFileBytes >> 20) + " MiB for a tokenizer file");
}

// The most token slots a vocabulary of `entries` ids (vocabulary and added tokens) may span.
size_t max_token_slots(size_t entries) { return 2 * entries + 256; }

void fill_from_vocab(tok::BpeVocab& v, const json& vocab, const std::string& where) {
    if (!vocab.is_object()) throw Error(ErrorKind::format, where + ": vocab is not an object");
    size_t n = 0;
    for (auto& [tok, id] : vocab.items()) {
        if (!id.is_number_unsigned() || id.get<uint64_t>() >= (1u << 24))
            throw Error(ErrorKind::format, where + ": vocabulary id " + id.dump() + " is not an id in [0, 2^24)");
        n = std::max<size_t>(n, id.get<size_t>() + 1);
    }
    // the token table is sized by the largest id: ids must be nearly dense, or one entry could allocate 2^24 slots
    if (n > max_token_slots(vocab.size()))
        throw Error(ErrorKind::format, where + ": vocabulary id " + std::to_string(n - 1) + " is far past the " + std::to_string(vocab.size()) +
                                           " entries of the vocabulary (ids must be nearly dense)");
    v.tokens.assign(n, "");
    v.types.assign(n, TokenType::unused);
    for (auto& [tok, id] : vocab.items()) {
        v.tokens[id.get<size_t>()] = tok;
        v.types[id.get<size_t>()] = TokenType::normal;
    }
}

std::string merge_string(const json& m) {
    if (m.is_string()) return m.get<std::string>();
    if (m.is_array() && m.size() == 2) return m[0].get<std::string>() + " " + m[1].get<std::string>();
    throw Error(ErrorKind::format, "tokenizer.json: a merge is neither \"a b\" nor [\"a\", \"b\"]");
}

} // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_hf_dir(const std::string& dir_path) try {
    const fs::path dir(dir_path);
    const fs::path tj = dir / "tokenizer.json";
    const json j = fs::exists(tj) ? io::read_json_file(tj) : json();
    // A SentencePiece model converted to tokenizer.json (BPE with byte fallback: Llama 2, Mistral, Gemma) next to its
    // tokenizer.model: the original, through libsentencepiece, which is that tokenizer's reference implementation
    const bool sentencepiece_json = j.is_object() && j.contains("model") && j["model"].is_object() && j["model"].value("byte_fallback", false);
    if (!j.is_null() && !(sentencepiece_json && fs::exists(dir / "tokenizer.model"))) {
        const std::string where = "'" + tj.string() + "'";
        const json& model = j.at("model");
        if (model.value("type", "") != "BPE") throw Error(ErrorKind::unsupported, where + ": model type '" + model.value("type", "") + "' is not supported (BPE is)");
        tok::BpeVocab v;
        fill_from_vocab(v, model.at("vocab"), where);
        for (const auto& m : model.at("merges")) v.merges.push_back(merge_string(m));
        // HF's defaults where the file is silent: no merges skipped, no normalization, BOS only from a template
        v.ignore_merges = model.value("ignore_merges", false);
        v.nfc = normalizer_is_nfc(j.value("normalizer", json()), where);
        v.add_bos = post_processor_adds_bos(j.value("post_processor", json()));
        v.pre = pre_tokenizer_name(j.value("pre_tokenizer", json()), where);
        if (j.contains("added_tokens"))
            for (const auto& t : j["added_tokens"]) {
                if (!t.at("id").is_number_unsigned() || t["id"].get<uint64_t>() >= (1u << 24))
                    throw Error(ErrorKind::format, where + ": added token id " + t["id"].dump() + " is not an id in [0, 2^24)");
                const size_t id = t.at("id").get<size_t>();
                const size_t entries = model.at("vocab").size() + j["added_tokens"].size();
                if (id >= max_token_slots(entries))
                    throw Error(ErrorKind::format, where + ": added token id " + std::to_string(id) + " is far past the " + std::to_string(entries) +
                                                       " entries of the vocabulary and added tokens (ids must be nearly dense)");
                if (id >= v.tokens.size()) { v.tokens.resize(id + 1); v.types.resize(id + 1, TokenType::unused); }
                v.tokens[id] = t.at("content").get<std::string>();
                v.types[id] = t.value("special", false) ? TokenType::control : TokenType::user_defined;
            }
        // special ids come from the checkpoint's config files
        for (const char* cfg : {"tokenizer_config.json", "config.json"}) {
            if (!fs::exists(dir / cfg)) continue;
            const json c = io::read_json_file(dir / cfg);
            auto lookup = [&](const char* key) -> int32_t {
                if (!c.contains(key) || c[key].is_null()) return -1;
                if (c[key].is_number_integer()) return c[key].get<int32_t>();
                const std::string s = c[key].is_string() ? c[key].get<std::string>() : c[key].value("content", "");
                for (size_t i = 0; i < v.tokens.size(); ++i) if (v.tokens[i] == s) return static_cast<int32_t>(i);
                return -1;
            };
            if (v.bos < 0) v.bos = std::max(lookup("bos_token_id"), lookup("bos_token"));
            if (v.eos < 0) v.eos = std::max(lookup("eos_token_id"), lookup("eos_token"));
            if (c.contains("add_bos_token") && c["add_bos_token"].is_boolean()) v.add_bos = c["add_bos_token"].get<bool>();
        }
        return std::make_unique<tok::BpeTokenizer>(std::move(v));
    }
    if (fs::exists(dir / "tokenizer.model")) {
        check_file_size(dir / "tokenizer.model");
        return std::make_unique<tok::SpmTokenizer>((dir / "tokenizer.model").string());
    }
    if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) {
        tok::BpeVocab v;
        fill_from_vocab(v, io::read_json_file(dir / "vocab.json"), "'" + (dir / "vocab.json").string() + "'");
        check_file_size(dir / "merges.txt");
        std::ifstream in(dir / "merges.txt");
        if (!in) throw Error(ErrorKind::io, "cannot open '" + (dir / "merges.txt").string() + "'");
        for (std::string line; std::getline(in, line);) {
            if (line.empty() || line.starts_with("#version")) continue;
            v.merges.push_back(line);
        }
        if (in.bad()) throw Error(ErrorKind::io, "cannot read '" + (dir / "merges.txt").string() + "'");
        v.pre = "gpt-2";
        for (size_t i = 0; i < v.tokens.size(); ++i)
            if (v.tokens[i] == "<|endoftext|>") { v.types[i] = TokenType::control; v.bos = v.eos = static_cast<int32_t>(i); }
        return std::make_unique<tok::BpeTokenizer>(std::move(v));
    }
    throw Error(ErrorKind::io, "'" + dir_path + "' holds no tokenizer.json, tokenizer.model or vocab.json + merges.txt");
} catch (const json::exception& e) {
    // a field of the right name but the wrong type, or a missing one: the same one-line refusal as any other format error
    throw Error(ErrorKind::format, "tokenizer files in '" + dir_path + "': missing or mistyped field (" + e.what() + ")");
}

} // namespace winnow
