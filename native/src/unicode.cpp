#include "unicode.h"

#include <algorithm>
#include <iterator>
#include <vector>

#include "unicode_tables.h"

namespace mgl::unicode {

namespace {

using unicode_tables::CodepointRange;

template <size_t N> bool in_ranges(const CodepointRange (&table)[N], uint32_t cp) {
    auto it = std::upper_bound(std::begin(table), std::end(table), cp,
                               [](uint32_t c, const CodepointRange &r) { return c < r.first; });
    return it != std::begin(table) && cp <= std::prev(it)->last;
}

bool is_white_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

CharClass classify(uint32_t cp) {
    if (is_white_space(cp)) return CharClass::Space;
    if (in_ranges(unicode_tables::kLetterRanges, cp)) return CharClass::Letter;
    if (in_ranges(unicode_tables::kNumberRanges, cp)) return CharClass::Number;
    return CharClass::Other;
}

// Classes of the Basic Multilingual Plane, looked up directly (64 KiB, built once).
const std::vector<CharClass> &bmp_classes() {
    static const std::vector<CharClass> table = [] {
        std::vector<CharClass> t(0x10000);
        for (uint32_t cp = 0; cp < 0x10000; ++cp) t[cp] = classify(cp);
        return t;
    }();
    return table;
}

}  // namespace

CharClass char_class(uint32_t unit) {
    if (unit < 0x10000) return bmp_classes()[unit];
    if (unit >= kInvalidBase) return CharClass::Other;
    return classify(unit);
}

void append_utf8(std::string &out, uint32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xC0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += char(0xE0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    } else {
        out += char(0xF0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3F));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    }
}

}  // namespace mgl::unicode
