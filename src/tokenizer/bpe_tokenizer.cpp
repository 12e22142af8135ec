#include "tokenizer/bpe_tokenizer.h"

#include <algorithm>
#include <climits>

#include "tokenizer/byte_unicode.h"
#include "winnow/error.h"

namespace winnow::tok {

BpeTokenizer::BpeTokenizer(BpeVocab vocab) : v_(std::move(vocab)), pre_(v_.pre) {
    add_bos_ = v_.add_bos.value_or(pre_.spec().add_bos);
    ignore_merges_ = v_.ignore_merges.value_or(pre_.spec().ignore_merges);
    nfc_ = v_.nfc.value_or(pre_.spec().nfc);
    const auto n = static_cast<int32_t>(v_.tokens.size());
    if (n == 0) throw Error(ErrorKind::format, "BPE vocabulary is empty");
    if (v_.types.empty()) v_.types.assign(n, TokenType::normal);
    if (static_cast<int32_t>(v_.types.size()) != n)
        throw Error(ErrorKind::format, "BPE vocabulary: " + std::to_string(v_.types.size()) + " token types for " + std::to_string(n) + " tokens");
    for (int32_t id : {v_.bos, v_.eos, v_.eot, v_.unk})
        if (id >= n) throw Error(ErrorKind::format, "BPE vocabulary: special token id " + std::to_string(id) + " >= vocabulary size " + std::to_string(n));
    token_ids_.reserve(n);
    for (int32_t i = 0; i < n; ++i) token_ids_.emplace(v_.tokens[i], i); // first id wins for duplicate texts
    merge_rank_.reserve(v_.merges.size());
    for (size_t r = 0; r < v_.merges.size(); ++r) merge_rank_.emplace(v_.merges[r], static_cast<int32_t>(r));

    eog_.assign(n, false);
    for (int32_t i = 0; i < n; ++i) {
        const TokenType t = v_.types[i];
        if ((t == TokenType::control || t == TokenType::user_defined) && !v_.tokens[i].empty()) specials_.push_back(i);
        if (ends_turn_by_name(t, v_.tokens[i])) eog_[i] = true;
    }
    for (int32_t id : {v_.eos, v_.eot})
        if (id >= 0) eog_[id] = true;
    std::stable_sort(specials_.begin(), specials_.end(), [&](int32_t a, int32_t b) { return v_.tokens[a].size() > v_.tokens[b].size(); });
}

bool BpeTokenizer::is_eog(int32_t id) const { return id >= 0 && id < n_vocab() && eog_[id]; }

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
    // one symbol per byte, in the byte->character alphabet of the vocabulary
    const auto& b2u = byte_to_unicode();
    std::vector<std::string> sym;
    sym.reserve(piece.size());
    for (unsigned char c : piece) sym.push_back(b2u[c]);
    if (ignore_merges_ && sym.size() > 1) { // the whole pre-token is a token: no merges (HF BPE's ignore_merges)
        std::string whole;
        for (const std::string& s : sym) whole += s;
        if (auto it = token_ids_.find(whole); it != token_ids_.end()) {
            out.push_back(it->second);
            return;
        }
    }
    // repeatedly merge the adjacent pair with the lowest rank (ties: leftmost)
    while (sym.size() > 1) {
        int best = INT_MAX;
        size_t at = 0;
        for (size_t i = 0; i + 1 < sym.size(); ++i) {
            auto it = merge_rank_.find(sym[i] + " " + sym[i + 1]);
            if (it != merge_rank_.end() && it->second < best) {
                best = it->second;
                at = i;
            }
        }
        if (best == INT_MAX) break;
        sym[at] += sym[at + 1];
        sym.erase(sym.begin() + static_cast<std::ptrdiff_t>(at) + 1);
    }
    for (const std::string& s : sym) {
        auto it = token_ids_.find(s);
        if (it != token_ids_.end()) {
            out.push_back(it->second);
            continue;
        }
        // not in the vocabulary: fall back to its single-byte symbols, then to UNK
        size_t i = 0;
        while (i < s.size()) {
            const int len = utf8_len(static_cast<uint8_t>(s[i]));
            auto bt = token_ids_.find(s.substr(i, len));
            if (bt != token_ids_.end()) out.push_back(bt->second);
            else if (v_.unk >= 0) out.push_back(v_.unk);
            else throw Error(ErrorKind::format, "BPE vocabulary has no token for a byte symbol and no unknown token");
            i += len;
        }
    }
}

void BpeTokenizer::encode_text(std::string_view text, std::vector<int32_t>& out) const {
    const std::string normalized = nfc_ ? nfc_normalize(text) : std::string();
    for (std::string_view piece : pre_.split(nfc_ ? std::string_view(normalized) : text)) encode_piece(piece, out);
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
    require_utf8(text);
    std::vector<int32_t> out;
    if (add_bos && v_.bos >= 0) out.push_back(v_.bos);
    // special tokens first: control tokens only when parse_special, user-defined ones always
    std::vector<SpecialToken> specials;
    for (int32_t id : specials_)
        if (parse_special || v_.types[id] != TokenType::control) specials.push_back({id, v_.tokens[id]});
    split_on_specials(
        text, specials, [&](std::string_view plain) { encode_text(plain, out); }, [&](int32_t id) { out.push_back(id); });
    return out;
}

std::string BpeTokenizer::token_to_piece(int32_t id, bool render_special) const {
    if (id < 0 || id >= n_vocab()) throw Error(ErrorKind::invalid_argument, "token id " + std::to_string(id) + " is outside the vocabulary");
    const std::string& s = v_.tokens[id];
    const TokenType t = v_.types[id];
    if (t == TokenType::control || t == TokenType::unknown || t == TokenType::unused) return render_special ? s : std::string();
    if (t == TokenType::user_defined) return s;
    // map each character back to its byte
    const auto& u2b = unicode_to_byte();
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
        const int len = utf8_len(static_cast<uint8_t>(s[i]));
        auto it = u2b.find(s.substr(i, len));
        if (it != u2b.end()) out += static_cast<char>(it->second);
        else out += s.substr(i, len); // not a byte symbol: keep the text
        i += len;
    }
    return out;
}

} // namespace winnow::tok
