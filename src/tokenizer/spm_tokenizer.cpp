#include "tokenizer/spm_tokenizer.h"

#include <algorithm>
#include <cstring>
#include <sentencepiece_processor.h>

#include "tokenizer/pre_tokenizer.h"
#include "winnow/error.h"

namespace winnow::tok {

namespace {

// Minimal protobuf wire-format writer: just what a ModelProto needs.
struct Proto {
    std::string buf;
    void varint(uint64_t v) {
        while (v >= 0x80) { buf += static_cast<char>((v & 0x7f) | 0x80); v >>= 7; }
        buf += static_cast<char>(v);
    }
    void tag(int field, int wire) { varint(static_cast<uint64_t>(field) << 3 | wire); }
    void bytes(int field, std::string_view s) { tag(field, 2); varint(s.size()); buf += s; }
    void u64(int field, uint64_t v) { tag(field, 0); varint(v); }
    void i32(int field, int32_t v) { tag(field, 0); varint(static_cast<uint64_t>(static_cast<int64_t>(v))); }
    void f32(int field, float v) { tag(field, 5); char b[4]; std::memcpy(b, &v, 4); buf.append(b, 4); }
};

// Minimal protobuf wire-format reader: the varint or length-delimited value of one field, skipping the others.
struct ProtoReader {
    std::string_view buf;
    size_t at = 0;
    bool varint(uint64_t& v) {
        v = 0;
        for (int shift = 0; at < buf.size() && shift < 64; shift += 7) {
            const auto b = static_cast<uint8_t>(buf[at++]);
            v |= static_cast<uint64_t>(b & 0x7f) << shift;
            if (!(b & 0x80)) return true;
        }
        return false;
    }
    // Calls on(field, wire, value-or-length, bytes) for every field; false on a malformed message.
    template <class F>
    bool each(F&& on) {
        while (at < buf.size()) {
            uint64_t key = 0, v = 0;
            if (!varint(key)) return false;
            const int field = static_cast<int>(key >> 3), wire = static_cast<int>(key & 7);
            std::string_view bytes;
            if (wire == 0) {
                if (!varint(v)) return false;
            } else if (wire == 2) {
                if (!varint(v) || v > buf.size() - at) return false;
                bytes = buf.substr(at, v);
                at += v;
            } else if (wire == 5 || wire == 1) {
                const size_t n = wire == 5 ? 4 : 8;
                if (buf.size() - at < n) return false;
                at += n;
            } else {
                return false;
            }
            on(field, wire, v, bytes);
        }
        return true;
    }
};

// ModelProto.normalizer_spec (field 3).add_dummy_prefix (field 3; true when absent, as in SentencePiece).
bool add_dummy_prefix_of(std::string_view model_proto) {
    bool add = true;
    ProtoReader model{model_proto};
    model.each([&](int field, int wire, uint64_t, std::string_view bytes) {
        if (field != 3 || wire != 2) return;
        ProtoReader norm{bytes};
        norm.each([&](int f, int w, uint64_t v, std::string_view) {
            if (f == 3 && w == 0) add = v != 0;
        });
    });
    return add;
}

// Whether ModelProto piece i (field 1, its type field 3) is USER_DEFINED (4), for each piece; empty when the message
// does not parse. libsentencepiece has no IsUserDefined().
std::vector<bool> user_defined_pieces(std::string_view model_proto) {
    std::vector<bool> out;
    ProtoReader model{model_proto};
    const bool ok = model.each([&](int field, int wire, uint64_t, std::string_view bytes) {
        if (field != 1 || wire != 2) return;
        bool user = false;
        ProtoReader piece{bytes};
        piece.each([&](int f, int w, uint64_t v, std::string_view) {
            if (f == 3 && w == 0) user = v == 4;
        });
        out.push_back(user);
    });
    return ok ? out : std::vector<bool>();
}

int spm_piece_type(TokenType t) {
    switch (t) { // sentencepiece::ModelProto::SentencePiece::Type
    case TokenType::unknown: return 2;
    case TokenType::control: return 3;
    case TokenType::user_defined: return 4;
    case TokenType::unused: return 5;
    case TokenType::byte: return 6;
    default: return 1;
    }
}

} // namespace

std::string spm_model_proto(const SpmVocab& v) {
    Proto model;
    for (size_t i = 0; i < v.tokens.size(); ++i) {
        Proto piece;
        piece.bytes(1, v.tokens[i]);
        piece.f32(2, i < v.scores.size() ? v.scores[i] : 0.0f);
        // libsentencepiece wants exactly one UNKNOWN piece, the unk id. Some converters type the unk token CONTROL and
        // padding slots UNKNOWN (Phi-3's GGUF: <unk> control, [PAD32011..] unknown): where the file names an unk id,
        // that piece is made UNKNOWN and other "unknown" slots UNUSED, which no text encodes to, as in the reference
        // tokenizer; without one the file's types stand.
        TokenType t = i < v.types.size() ? v.types[i] : TokenType::normal;
        if (v.unk >= 0) t = static_cast<int64_t>(i) == v.unk ? TokenType::unknown : t == TokenType::unknown ? TokenType::unused : t;
        piece.u64(3, spm_piece_type(t));
        model.bytes(1, piece.buf);
    }
    Proto trainer; // TrainerSpec: BPE with byte fallback, LLaMA's special ids
    trainer.u64(3, 2);                                       // model_type = BPE
    trainer.i32(4, static_cast<int32_t>(v.tokens.size()));   // vocab_size
    trainer.u64(35, 1);                                      // byte_fallback
    trainer.i32(40, v.unk);
    trainer.i32(41, v.bos);
    trainer.i32(42, v.eos);
    trainer.i32(43, -1);                                     // pad_id
    model.bytes(2, trainer.buf);
    Proto norm; // NormalizerSpec: identity, dummy "▁" prefix (where the vocabulary has one), whitespace kept and escaped as ▁
    norm.bytes(1, "identity");
    norm.u64(3, v.add_space_prefix ? 1 : 0); // add_dummy_prefix
    norm.u64(4, 0); // remove_extra_whitespaces
    norm.u64(5, 1); // escape_whitespaces
    model.bytes(3, norm.buf);
    return model.buf;
}

SpmTokenizer::SpmTokenizer(const SpmVocab& v) : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
    if (v.tokens.empty()) throw Error(ErrorKind::format, "SentencePiece vocabulary is empty");
    if (!v.scores.empty() && v.scores.size() != v.tokens.size()) throw Error(ErrorKind::format, "SentencePiece vocabulary: scores and tokens differ in count");
    if (!v.types.empty() && v.types.size() != v.tokens.size()) throw Error(ErrorKind::format, "SentencePiece vocabulary: token types and tokens differ in count");
    for (int32_t id : {v.bos, v.eos, v.eot, v.unk})
        if (id >= static_cast<int64_t>(v.tokens.size()))
            throw Error(ErrorKind::format, "SentencePiece vocabulary: special token id " + std::to_string(id) + " >= vocabulary size " + std::to_string(v.tokens.size()));
    const auto status = sp_->LoadFromSerializedProto(spm_model_proto(v));
    if (!status.ok()) throw Error(ErrorKind::format, "SentencePiece vocabulary rejected by libsentencepiece: " + status.ToString());
    pieces_ = v.tokens;
    types_ = v.types.empty() ? std::vector<TokenType>(v.tokens.size(), TokenType::normal) : v.types;
    bos_ = v.bos;
    eos_ = v.eos;
    eot_ = v.eot;
    add_bos_ = v.add_bos;
    space_prefix_ = v.add_space_prefix;
    for (int32_t i = 0; i < n_vocab(); ++i)
        if (types_[i] == TokenType::control && !pieces_[i].empty()) specials_.push_back(i);
    std::stable_sort(specials_.begin(), specials_.end(), [&](int32_t a, int32_t b) { return pieces_[a].size() > pieces_[b].size(); });
    mark_end_of_generation();
}

void SpmTokenizer::mark_end_of_generation() {
    eog_.assign(pieces_.size(), false);
    for (size_t i = 0; i < pieces_.size(); ++i)
        if (ends_turn_by_name(types_[i], pieces_[i])) eog_[i] = true;
    for (int32_t id : {eos_, eot_})
        if (id >= 0 && id < n_vocab()) eog_[id] = true;
}

SpmTokenizer::SpmTokenizer(const std::string& model_path) : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
    const auto status = sp_->Load(model_path);
    if (!status.ok()) throw Error(ErrorKind::format, "cannot load SentencePiece model '" + model_path + "': " + status.ToString());
    const std::string proto = sp_->serialized_model_proto();
    std::vector<bool> user_defined = user_defined_pieces(proto);
    user_defined.resize(sp_->GetPieceSize(), false);
    for (int i = 0; i < sp_->GetPieceSize(); ++i) {
        pieces_.push_back(sp_->IdToPiece(i));
        types_.push_back(sp_->IsControl(i)   ? TokenType::control
                         : sp_->IsUnknown(i) ? TokenType::unknown
                         : sp_->IsByte(i)    ? TokenType::byte
                         : user_defined[i]   ? TokenType::user_defined
                                             : TokenType::normal);
        if (sp_->IsControl(i) && !pieces_.back().empty()) specials_.push_back(i);
    }
    bos_ = sp_->bos_id();
    eos_ = sp_->eos_id();
    std::stable_sort(specials_.begin(), specials_.end(), [&](int32_t a, int32_t b) { return pieces_[a].size() > pieces_[b].size(); });
    space_prefix_ = add_dummy_prefix_of(proto); // the model's own normalizer says it (Gemma's tokenizer.model: no prefix)
    mark_end_of_generation();
}

SpmTokenizer::~SpmTokenizer() = default;

void SpmTokenizer::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
    for (int id : sp_->EncodeAsIds(text)) out.push_back(id);
}

std::vector<int32_t> SpmTokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
    require_utf8(text);
    std::vector<int32_t> out;
    if (add_bos && bos_ >= 0) out.push_back(bos_);
    std::vector<SpecialToken> specials;
    if (parse_special)
        for (int32_t id : specials_) specials.push_back({id, pieces_[id]});
    split_on_specials(
        text, specials, [&](std::string_view plain) { encode_plain(plain, out); }, [&](int32_t id) { out.push_back(id); });
    return out;
}

std::string SpmTokenizer::token_to_piece(int32_t id, bool render_special) const {
    if (id < 0 || id >= n_vocab()) throw Error(ErrorKind::invalid_argument, "token id " + std::to_string(id) + " is outside the vocabulary");
    const std::string& p = pieces_[id];
    switch (types_[id]) {
    case TokenType::control:
    case TokenType::unknown:
    case TokenType::unused:
        return render_special ? p : std::string();
    case TokenType::byte: { // "<0xAB>"
        if (p.size() == 6 && p.compare(0, 3, "<0x") == 0) return std::string(1, static_cast<char>(std::stoi(p.substr(3, 2), nullptr, 16)));
        return p;
    }
    default: {
        std::string out;
        for (size_t i = 0; i < p.size();) { // "▁" (U+2581) stands for a space
            if (p.compare(i, 3, "\xe2\x96\x81") == 0) { out += ' '; i += 3; }
            else out += p[i++];
        }
        return out;
    }
    }
}

std::string SpmTokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
    std::string out = Tokenizer::decode(ids, render_special);
    if (!space_prefix_) return out; // no dummy prefix: a leading space is the text's own
    // skip the leading control tokens (their text is present only when rendered), then drop the dummy-prefix space
    size_t first_text = 0, at = 0;
    for (; first_text < ids.size() && types_[ids[first_text]] == TokenType::control; ++first_text)
        at += token_to_piece(ids[first_text], render_special).size();
    if (first_text < ids.size() && at < out.size() && out[at] == ' ') out.erase(at, 1);
    return out;
}

} // namespace winnow::tok
