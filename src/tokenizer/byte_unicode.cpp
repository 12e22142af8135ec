#include "tokenizer/byte_unicode.h"

namespace winnow::tok {

namespace {

std::string utf8(uint32_t cp) {
    std::string s;
    if (cp < 0x80) s += static_cast<char>(cp);
    else if (cp < 0x800) { s += static_cast<char>(0xc0 | (cp >> 6)); s += static_cast<char>(0x80 | (cp & 0x3f)); }
    else { s += static_cast<char>(0xe0 | (cp >> 12)); s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f)); s += static_cast<char>(0x80 | (cp & 0x3f)); }
    return s;
}

std::array<std::string, 256> build() {
    // printable bytes map to themselves; the rest to 256, 257, ... in byte order
    std::array<std::string, 256> map;
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
        const bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
        map[b] = utf8(printable ? b : next++);
    }
    return map;
}

} // namespace

const std::array<std::string, 256>& byte_to_unicode() {
    static const std::array<std::string, 256> map = build();
    return map;
}

const std::unordered_map<std::string, uint8_t>& unicode_to_byte() {
    static const std::unordered_map<std::string, uint8_t> inv = [] {
        std::unordered_map<std::string, uint8_t> m;
        for (int b = 0; b < 256; ++b) m[byte_to_unicode()[b]] = static_cast<uint8_t>(b);
        return m;
    }();
    return inv;
}

} // namespace winnow::tok
