#pragma once
// GPT-2's reversible map between bytes and printable Unicode characters, used by byte-level BPE vocabularies.
#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace winnow::tok {

// UTF-8 of the character that stands for each byte.
const std::array<std::string, 256>& byte_to_unicode();
// The inverse: character (as UTF-8) -> byte.
const std::unordered_map<std::string, uint8_t>& unicode_to_byte();

// Length in bytes of the UTF-8 sequence starting with lead byte c (1 for invalid leads).
inline int utf8_len(uint8_t c) { return c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 1; }

} // namespace winnow::tok
