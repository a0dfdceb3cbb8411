// UTF-8 units and the character classes the tokenizers need.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace mgl::unicode {

// A unit of text is either one well-formed UTF-8 code point or one byte that does not start a
// well-formed sequence. Invalid byte b is represented as the value kInvalidBase + b, above every
// code point.
constexpr uint32_t kInvalidBase = 0x110000;

// Decodes the unit at s[0..n) (n >= 1): stores its value in *unit and returns its length in bytes.
// Well-formed means Unicode table 3-7: no overlongs, no surrogates, nothing above U+10FFFF.
inline size_t decode_unit(const uint8_t *s, size_t n, uint32_t *unit) {
    const uint8_t b0 = s[0];
    if (b0 < 0x80) {
        *unit = b0;
        return 1;
    }
    auto cont = [](uint8_t b, uint8_t lo, uint8_t hi) { return b >= lo && b <= hi; };
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        if (n >= 2 && cont(s[1], 0x80, 0xBF)) {
            *unit = (uint32_t(b0 & 0x1F) << 6) | (s[1] & 0x3F);
            return 2;
        }
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        const uint8_t lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
        if (n >= 3 && cont(s[1], lo, hi) && cont(s[2], 0x80, 0xBF)) {
            *unit = (uint32_t(b0 & 0x0F) << 12) | (uint32_t(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
            return 3;
        }
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        const uint8_t lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
        if (n >= 4 && cont(s[1], lo, hi) && cont(s[2], 0x80, 0xBF) && cont(s[3], 0x80, 0xBF)) {
            *unit = (uint32_t(b0 & 0x07) << 18) | (uint32_t(s[1] & 0x3F) << 12) |
                    (uint32_t(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
            return 4;
        }
    }
    *unit = kInvalidBase + b0;
    return 1;
}

enum class CharClass : uint8_t { Other, Letter, Number, Space };

// Class of a unit: Letter = general category L*, Number = N*, Space = the White_Space property;
// invalid bytes are Other.
CharClass char_class(uint32_t unit);

// Appends the UTF-8 encoding of a code point (< 0x110000).
void append_utf8(std::string &out, uint32_t cp);

}  // namespace mgl::unicode
