// Byte-level BPE ("gpt2") and SentencePiece BPE with byte fallback ("llama") tokenizers.
//
// Both encoders cut the text into independent words (the gpt2 pre-tokenizer regex, or for llama
// the places where no vocabulary piece can join two neighbouring characters), run BPE on each
// distinct word once per encode() call with a heap of candidate pairs over a linked list of
// symbols, and reuse the result for repeated words.

#include "tokenizer.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "unicode.h"

namespace mgl {

namespace {

enum TokenType : int32_t {
    kTypeUndefined = 0,
    kTypeNormal = 1,
    kTypeUnknown = 2,
    kTypeControl = 3,
    kTypeUserDefined = 4,
    kTypeUnused = 5,
    kTypeByte = 6,
};

constexpr size_t kMaxCachedWords = size_t(1) << 20;
constexpr size_t kMaxCachedWordBytes = 256;  // longer words rarely repeat
const char kSpaceMark[] = "\xE2\x96\x81";  // U+2581 '▁', SentencePiece's visible space
constexpr uint32_t kSpaceMarkCp = 0x2581;

std::string quoted(std::string_view s) {
    std::string out = "'";
    for (unsigned char c : s) {
        if (c >= 0x20 && c != 0x7F) {
            out += char(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", c);
            out += buf;
        }
    }
    return out + "'";
}

// Token ids of the words already encoded during one encode() call. Keys view text that stays
// valid and unchanged while they are cached.
class WordCache {
public:
    bool append_to(std::string_view word, std::vector<int32_t> &out) const {
        auto it = map_.find(word);
        if (it == map_.end()) return false;
        out.insert(out.end(), ids_.begin() + it->second.first,
                   ids_.begin() + it->second.first + it->second.second);
        return true;
    }
    void add(std::string_view word, const int32_t *ids, size_t n) {
        if (map_.size() >= kMaxCachedWords || word.size() > kMaxCachedWordBytes) return;
        map_.emplace(word, std::make_pair(ids_.size(), n));
        ids_.insert(ids_.end(), ids, ids + n);
    }
    void clear() {
        map_.clear();
        ids_.clear();
    }

private:
    std::unordered_map<std::string_view, std::pair<size_t, size_t>> map_;
    std::vector<int32_t> ids_;
};

struct EncodeScratch {
    WordCache cache;
    std::string normalized;  // llama: the normalised text that cache keys point into
};

// Control and user-defined tokens, recognised in the text only when parse_special is set.
class SpecialTokens {
public:
    void build(const std::vector<std::string> &pieces, const std::vector<int32_t> &types) {
        pieces_ = &pieces;
        for (size_t id = 0; id < pieces.size(); ++id)
            if ((types[id] == kTypeControl || types[id] == kTypeUserDefined) && !pieces[id].empty())
                by_first_byte_[uint8_t(pieces[id][0])].push_back(int32_t(id));
        for (auto &bucket : by_first_byte_)  // longest first; the lower id among equal pieces
            std::stable_sort(bucket.begin(), bucket.end(), [&](int32_t a, int32_t b) {
                return pieces[size_t(a)].size() > pieces[size_t(b)].size();
            });
    }

    // Calls on_text(offset, segment) for the text between special tokens and on_special(id) for
    // each occurrence, scanning left to right and taking the longest match at each position.
    template <class OnText, class OnSpecial>
    void split(std::string_view text, OnText on_text, OnSpecial on_special) const {
        size_t segment_start = 0, pos = 0;
        while (pos < text.size()) {
            int32_t match = -1;
            for (int32_t id : by_first_byte_[uint8_t(text[pos])]) {
                const std::string &p = (*pieces_)[size_t(id)];
                if (text.compare(pos, p.size(), p) == 0) {
                    match = id;
                    break;
                }
            }
            if (match < 0) {
                ++pos;
                continue;
            }
            if (pos > segment_start) on_text(segment_start, text.substr(segment_start, pos - segment_start));
            on_special(match);
            pos += (*pieces_)[size_t(match)].size();
            segment_start = pos;
        }
        if (pos > segment_start) on_text(segment_start, text.substr(segment_start, pos - segment_start));
    }

private:
    const std::vector<std::string> *pieces_ = nullptr;
    std::array<std::vector<int32_t>, 256> by_first_byte_;
};

// What the two tokenizers share: vocabulary metadata, special tokens, decoding.
class VocabTokenizer : public Tokenizer {
public:
    std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const override {
        std::vector<int32_t> out;
        out.reserve(text.size() / 3 + 2);
        if (add_bos && bos_ >= 0) out.push_back(bos_);
        EncodeScratch scratch;
        if (!parse_special) {
            if (!text.empty()) encode_text(text, true, out, scratch);
        } else {
            specials_.split(
                text,
                [&](size_t offset, std::string_view segment) { encode_text(segment, offset == 0, out, scratch); },
                [&](int32_t id) { out.push_back(id); });
        }
        return out;
    }

    std::string decode(const int32_t *tokens, size_t n, bool render_special) const override {
        std::string out;
        for (size_t i = 0; i < n; ++i) {
            check_token(tokens[i]);
            const size_t t = size_t(tokens[i]);
            if (types_[t] == kTypeControl) {
                if (render_special) out += pieces_[t];
            } else {
                out += rendered_[t];
            }
        }
        finish_decode(out);
        return out;
    }

    std::string token_bytes(int32_t token, bool render_special) const override {
        check_token(token);
        const size_t t = size_t(token);
        if (types_[t] == kTypeControl) return render_special ? pieces_[t] : std::string();
        return rendered_[t];
    }

protected:
    // Encodes text without special tokens; at_start is true when it begins the whole input.
    virtual void encode_text(std::string_view text, bool at_start, std::vector<int32_t> &out,
                             EncodeScratch &scratch) const = 0;
    virtual void finish_decode(std::string &) const {}

    [[noreturn]] void bad(const std::string &what) const { fail(MGL_ERR_FORMAT, path_ + ": " + what); }

    void check_token(int32_t token) const {
        if (token < 0 || token >= n_vocab())
            fail(MGL_ERR_INVALID_ARG, "token id " + std::to_string(token) + " is outside the vocabulary (" +
                                          std::to_string(n_vocab()) + " tokens)");
    }

    void load_common(const GgufFile &file, const std::string &kind, bool default_add_bos) {
        path_ = file.path();
        kind_ = kind;
        const std::vector<std::string> *tokens = file.get_string_array("tokenizer.ggml.tokens");
        if (!tokens) bad("tokenizer.ggml.tokens is missing");
        if (tokens->empty()) bad("tokenizer.ggml.tokens is empty");
        if (tokens->size() > size_t(std::numeric_limits<int32_t>::max()))
            bad("tokenizer.ggml.tokens has too many entries");
        pieces_ = *tokens;
        const size_t n = pieces_.size();

        types_.assign(n, kTypeNormal);
        if (const std::vector<double> *types = file.get_number_array("tokenizer.ggml.token_type")) {
            if (types->size() != n)
                bad("tokenizer.ggml.token_type has " + std::to_string(types->size()) + " entries for " +
                    std::to_string(n) + " tokens");
            for (size_t i = 0; i < n; ++i) {
                double t = (*types)[i];
                if (!(t >= kTypeUndefined && t <= kTypeByte) || t != std::floor(t))
                    bad("tokenizer.ggml.token_type[" + std::to_string(i) + "] = " + std::to_string(t) +
                        " is not a token type (0..6)");
                types_[i] = int32_t(t);
            }
        }

        auto token_id = [&](const char *key) -> int32_t {
            std::optional<uint64_t> v = file.get_uint(key);
            if (!v) return -1;
            if (*v >= n)
                bad(std::string(key) + " = " + std::to_string(*v) + " is outside the vocabulary (" +
                    std::to_string(n) + " tokens)");
            return int32_t(*v);
        };
        bos_ = token_id("tokenizer.ggml.bos_token_id");
        eos_ = token_id("tokenizer.ggml.eos_token_id");
        unk_ = token_id("tokenizer.ggml.unknown_token_id");
        token_id("tokenizer.ggml.padding_token_id");
        add_bos_ = file.get_bool("tokenizer.ggml.add_bos_token").value_or(default_add_bos);

        specials_.build(pieces_, types_);
    }

    std::string path_;
    SpecialTokens specials_;
    std::vector<std::string> rendered_;  // bytes each non-control token stands for
};

// ------------------------------------------------------------------------------------------
// "gpt2": byte-level BPE

// GPT-2's reversible byte <-> code point table: printable Latin-1 bytes map to themselves, the
// other 68 bytes to U+0100.. in byte order.
std::array<uint32_t, 256> gpt2_byte_to_cp() {
    std::array<uint32_t, 256> table{};
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
        bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        table[b] = printable ? b : next++;
    }
    return table;
}

// End of the pre-token starting at pos: the first alternative of
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// that matches there (leftmost-first regex semantics, on units).
size_t gpt2_pretoken_end(const uint8_t *s, size_t n, size_t pos) {
    using unicode::CharClass;
    struct Unit {
        uint32_t value;
        size_t len;
        CharClass cls;
    };
    auto unit_at = [&](size_t p) {
        Unit u;
        u.len = unicode::decode_unit(s + p, n - p, &u.value);
        u.cls = unicode::char_class(u.value);
        return u;
    };

    const Unit first = unit_at(pos);
    if (first.value == '\'' && pos + 1 < n) {
        const uint8_t c1 = s[pos + 1];
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return pos + 2;
        if (pos + 2 < n) {
            const uint8_t c2 = s[pos + 2];
            if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return pos + 3;
        }
    }

    // " ?X+" for the letter, number and other classes: an optional leading space, then a run.
    size_t run_start = pos;
    CharClass cls = first.cls;
    if (first.value == ' ' && pos + 1 < n) {
        const Unit next = unit_at(pos + 1);
        if (next.cls != CharClass::Space) {
            run_start = pos + 1;
            cls = next.cls;
        }
    }
    if (cls != CharClass::Space) {
        size_t p = run_start;
        while (p < n) {
            const Unit u = unit_at(p);
            if (u.cls != cls) break;
            p += u.len;
        }
        return p;
    }

    // Whitespace: "\s+(?!\S)" keeps the run up to the end of the text, or all but its last unit
    // when something follows; a single unit before non-space falls through to "\s+".
    size_t p = pos, last = pos, count = 0;
    while (p < n) {
        const Unit u = unit_at(p);
        if (u.cls != CharClass::Space) break;
        last = p;
        p += u.len;
        ++count;
    }
    if (p == n || count == 1) return p;
    return last;
}

class Gpt2Tokenizer final : public VocabTokenizer {
public:
    explicit Gpt2Tokenizer(const GgufFile &file) {
        load_common(file, "gpt2", false);
        if (std::optional<std::string> pre = file.get_string("tokenizer.ggml.pre"))
            if (*pre != "gpt2" && *pre != "gpt-2")
                fail(MGL_ERR_UNSUPPORTED, path_ + ": tokenizer.ggml.pre " + quoted(*pre) +
                                              " is not supported (only the gpt2 pre-tokenizer)");

        const std::array<uint32_t, 256> byte_to_cp = gpt2_byte_to_cp();
        std::unordered_map<uint32_t, uint8_t> cp_to_byte;
        for (uint32_t b = 0; b < 256; ++b) cp_to_byte[byte_to_cp[b]] = uint8_t(b);

        // Symbols: every string that is a token or appears in a merge gets an id.
        std::unordered_map<std::string, int32_t> symbol_ids;
        auto intern = [&](const std::string &s) {
            auto it = symbol_ids.emplace(s, int32_t(symbol_token_.size()));
            if (it.second) symbol_token_.push_back(-1);
            return it.first->second;
        };
        for (size_t id = 0; id < pieces_.size(); ++id) {
            int32_t sym = intern(pieces_[id]);
            if (symbol_token_[size_t(sym)] < 0) symbol_token_[size_t(sym)] = int32_t(id);
        }
        for (uint32_t b = 0; b < 256; ++b) {
            std::string s;
            unicode::append_utf8(s, byte_to_cp[b]);
            byte_symbol_[b] = intern(s);
            byte_token_[b] = symbol_token_[size_t(byte_symbol_[b])];
            if (byte_token_[b] < 0) {
                char hex[8];
                std::snprintf(hex, sizeof hex, "0x%02X", b);
                bad(std::string("the gpt2 vocabulary lacks the symbol ") + quoted(s) + " of byte " + hex);
            }
        }

        const std::vector<std::string> *merges = file.get_string_array("tokenizer.ggml.merges");
        if (!merges) bad("tokenizer.ggml.merges is missing");
        if (merges->size() > size_t(std::numeric_limits<int32_t>::max())) bad("tokenizer.ggml.merges is too long");
        merges_.reserve(merges->size());
        for (size_t rank = 0; rank < merges->size(); ++rank) {
            const std::string &m = (*merges)[rank];
            const size_t space = m.find(' ', 1);
            if (space == std::string::npos || space + 1 >= m.size())
                bad("tokenizer.ggml.merges[" + std::to_string(rank) + "] " + quoted(m) +
                    " is not of the form \"left right\"");
            const std::string left = m.substr(0, space), right = m.substr(space + 1);
            const int32_t l = intern(left), r = intern(right);
            const int32_t result = intern(left + right);
            merges_.emplace(pair_key(l, r), Merge{int32_t(rank), result});  // the first rank wins
        }

        // Decoded bytes of each token: symbol code points back to bytes; code points outside the
        // table (possible in user-defined pieces) and stray bytes are kept as they are.
        rendered_.resize(pieces_.size());
        for (size_t id = 0; id < pieces_.size(); ++id) {
            const std::string &p = pieces_[id];
            const uint8_t *s = reinterpret_cast<const uint8_t *>(p.data());
            std::string &out = rendered_[id];
            for (size_t i = 0; i < p.size();) {
                uint32_t unit;
                const size_t len = unicode::decode_unit(s + i, p.size() - i, &unit);
                auto it = cp_to_byte.find(unit);
                if (it != cp_to_byte.end()) out += char(it->second);
                else out.append(p, i, len);
                i += len;
            }
        }
    }

private:
    struct Merge {
        int32_t rank;
        int32_t result;
    };
    struct Symbol {
        int32_t id;  // -1 once merged into its left neighbour
        int32_t prev, next;
        uint32_t start, len;  // bytes of the word it covers
    };
    struct Candidate {
        int32_t rank;
        int32_t left;  // index of the left symbol (its position in the word)
        int32_t left_id, right_id;
        int32_t result;
    };

    static uint64_t pair_key(int32_t l, int32_t r) { return (uint64_t(uint32_t(l)) << 32) | uint32_t(r); }

    void encode_text(std::string_view text, bool, std::vector<int32_t> &out, EncodeScratch &scratch) const override {
        const uint8_t *s = reinterpret_cast<const uint8_t *>(text.data());
        size_t pos = 0;
        while (pos < text.size()) {
            const size_t end = gpt2_pretoken_end(s, text.size(), pos);
            const std::string_view word = text.substr(pos, end - pos);
            if (!scratch.cache.append_to(word, out)) {
                const size_t before = out.size();
                encode_word(word, out);
                scratch.cache.add(word, out.data() + before, out.size() - before);
            }
            pos = end;
        }
    }

    // BPE over the byte symbols of one pre-token: lowest rank first, leftmost among equals.
    void encode_word(std::string_view word, std::vector<int32_t> &out) const {
        const uint8_t *s = reinterpret_cast<const uint8_t *>(word.data());
        const int32_t n = int32_t(word.size());
        if (n == 1) {
            out.push_back(byte_token_[s[0]]);
            return;
        }
        std::vector<Symbol> sym(static_cast<size_t>(n));
        for (int32_t i = 0; i < n; ++i) sym[size_t(i)] = {byte_symbol_[s[i]], i - 1, i + 1 < n ? i + 1 : -1, uint32_t(i), 1};

        auto later = [](const Candidate &a, const Candidate &b) {
            return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
        };
        std::vector<Candidate> heap;
        auto consider = [&](int32_t left) {
            if (left < 0) return;
            const int32_t right = sym[size_t(left)].next;
            if (right < 0) return;
            auto it = merges_.find(pair_key(sym[size_t(left)].id, sym[size_t(right)].id));
            if (it == merges_.end()) return;
            heap.push_back({it->second.rank, left, sym[size_t(left)].id, sym[size_t(right)].id, it->second.result});
            std::push_heap(heap.begin(), heap.end(), later);
        };
        for (int32_t i = 0; i + 1 < n; ++i) consider(i);

        while (!heap.empty()) {
            std::pop_heap(heap.begin(), heap.end(), later);
            const Candidate c = heap.back();
            heap.pop_back();
            Symbol &l = sym[size_t(c.left)];
            // Skip candidates whose symbols changed since they were queued.
            if (l.id != c.left_id || l.next < 0 || sym[size_t(l.next)].id != c.right_id) continue;
            Symbol &r = sym[size_t(l.next)];
            l.id = c.result;
            l.len += r.len;
            l.next = r.next;
            if (r.next >= 0) sym[size_t(r.next)].prev = c.left;
            r.id = -1;
            consider(l.prev);
            consider(c.left);
        }

        for (int32_t i = 0; i >= 0; i = sym[size_t(i)].next) {
            const Symbol &x = sym[size_t(i)];
            const int32_t token = symbol_token_[size_t(x.id)];
            if (token >= 0) {
                out.push_back(token);
            } else {  // a merge result missing from the vocabulary: its bytes one by one
                for (uint32_t k = x.start; k < x.start + x.len; ++k) out.push_back(byte_token_[s[k]]);
            }
        }
    }

    std::array<int32_t, 256> byte_symbol_{};
    std::array<int32_t, 256> byte_token_{};
    std::vector<int32_t> symbol_token_;  // symbol id -> token id, -1 if not in the vocabulary
    std::unordered_map<uint64_t, Merge> merges_;
};

// ------------------------------------------------------------------------------------------
// "llama": SentencePiece BPE with byte fallback

class LlamaTokenizer final : public VocabTokenizer {
public:
    explicit LlamaTokenizer(const GgufFile &file) {
        load_common(file, "llama", true);
        const size_t n = pieces_.size();
        const std::vector<double> *scores = file.get_number_array("tokenizer.ggml.scores");
        if (!scores) bad("tokenizer.ggml.scores is missing (required by the llama tokenizer)");
        if (scores->size() != n)
            bad("tokenizer.ggml.scores has " + std::to_string(scores->size()) + " entries for " +
                std::to_string(n) + " tokens");
        add_space_prefix_ = file.get_bool("tokenizer.ggml.add_space_prefix").value_or(true);

        byte_token_.fill(-1);
        rendered_.resize(n);
        for (size_t id = 0; id < n; ++id) {
            const std::string &p = pieces_[id];
            const float score = float((*scores)[id]);
            if (std::isnan(score)) bad("tokenizer.ggml.scores[" + std::to_string(id) + "] is NaN");
            piece_id_.emplace(p, int32_t(id));
            if (types_[id] == kTypeNormal || types_[id] == kTypeUserDefined) {
                if (mergeable_.emplace(p, score).second) add_joinable_pairs(p);
            }
            if (types_[id] == kTypeByte) {
                const int value = parse_byte_piece(p);
                if (value < 0)
                    bad("token " + std::to_string(id) + " " + quoted(p) + " has the byte type but is not <0xXX>");
                rendered_[id] = std::string(1, char(value));
                char upper[8];
                std::snprintf(upper, sizeof upper, "<0x%02X>", value);
                if (p == upper && byte_token_[size_t(value)] < 0) byte_token_[size_t(value)] = int32_t(id);
            } else {
                std::string &out = rendered_[id];
                for (size_t i = 0; i < p.size();) {
                    if (p.compare(i, 3, kSpaceMark) == 0) {
                        out += ' ';
                        i += 3;
                    } else {
                        out += p[i++];
                    }
                }
            }
        }
        for (int b = 0; b < 256; ++b) {
            if (byte_token_[size_t(b)] >= 0) continue;
            if (unk_ < 0) {
                char piece[8];
                std::snprintf(piece, sizeof piece, "<0x%02X>", b);
                bad(std::string("the llama vocabulary has no byte token ") + piece +
                    " and no tokenizer.ggml.unknown_token_id");
            }
            byte_token_[size_t(b)] = unk_;
        }
    }

private:
    struct Symbol {
        int32_t prev, next;
        uint32_t start, len;  // bytes of the word; len 0 once merged into its left neighbour
    };
    struct Candidate {
        float score;
        int32_t left, right;  // symbol indices (positions in the word)
        uint32_t len;         // bytes of the merged piece, to detect stale candidates
    };

    static int parse_byte_piece(const std::string &p) {
        if (p.size() != 6 || p.compare(0, 3, "<0x") != 0 || p[5] != '>') return -1;
        auto hex = [](char c) {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            return -1;
        };
        const int hi = hex(p[3]), lo = hex(p[4]);
        return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
    }

    // Index of a unit in the dense pair table (ASCII and '▁'), or -1.
    static int dense_index(uint32_t unit) {
        if (unit < 128) return int(unit);
        return unit == kSpaceMarkCp ? 128 : -1;
    }
    static constexpr int kDense = 129;

    // Records every pair of neighbouring units inside a mergeable piece: only there can a merge
    // ever join two units, so the text can be cut between any other two.
    void add_joinable_pairs(const std::string &piece) {
        const uint8_t *s = reinterpret_cast<const uint8_t *>(piece.data());
        uint32_t prev = 0;
        for (size_t i = 0; i < piece.size();) {
            uint32_t unit;
            const size_t len = unicode::decode_unit(s + i, piece.size() - i, &unit);
            if (i > 0) {
                const int a = dense_index(prev), b = dense_index(unit);
                if (a >= 0 && b >= 0) dense_pairs_[size_t(a * kDense + b)] = true;
                else joinable_.insert((uint64_t(prev) << 32) | unit);
            }
            prev = unit;
            i += len;
        }
    }

    bool joinable(uint32_t a, uint32_t b) const {
        const int ia = dense_index(a), ib = dense_index(b);
        if (ia >= 0 && ib >= 0) return dense_pairs_[size_t(ia * kDense + ib)];
        return joinable_.count((uint64_t(a) << 32) | b) != 0;
    }

    void encode_text(std::string_view text, bool at_start, std::vector<int32_t> &out,
                     EncodeScratch &scratch) const override {
        // Normalise into the scratch buffer; growing it would move the text that cached words
        // point into, so the cache is dropped first.
        std::string &buf = scratch.normalized;
        const size_t need = 3 * text.size() + 3;
        if (buf.capacity() - buf.size() < need) {
            scratch.cache.clear();
            buf.clear();
            buf.reserve(std::max(need, 2 * buf.capacity()));
        }
        const size_t base = buf.size();
        if (add_space_prefix_ && at_start && !text.empty()) buf += kSpaceMark;
        for (char c : text) {
            if (c == ' ') buf += kSpaceMark;
            else buf += c;
        }
        const std::string_view norm = std::string_view(buf).substr(base);

        const uint8_t *s = reinterpret_cast<const uint8_t *>(norm.data());
        size_t word_start = 0, pos = 0;
        uint32_t prev = 0;
        while (pos < norm.size()) {
            uint32_t unit;
            const size_t len = unicode::decode_unit(s + pos, norm.size() - pos, &unit);
            if (pos > 0 && !joinable(prev, unit)) {
                encode_word_cached(norm.substr(word_start, pos - word_start), out, scratch);
                word_start = pos;
            }
            prev = unit;
            pos += len;
        }
        if (pos > word_start) encode_word_cached(norm.substr(word_start, pos - word_start), out, scratch);
    }

    void encode_word_cached(std::string_view word, std::vector<int32_t> &out, EncodeScratch &scratch) const {
        if (scratch.cache.append_to(word, out)) return;
        const size_t before = out.size();
        encode_word(word, out);
        scratch.cache.add(word, out.data() + before, out.size() - before);
    }

    // BPE over the units of one word: the mergeable pair with the highest score first, the
    // leftmost among equals.
    void encode_word(std::string_view word, std::vector<int32_t> &out) const {
        const uint8_t *s = reinterpret_cast<const uint8_t *>(word.data());
        std::vector<Symbol> sym;
        for (size_t i = 0; i < word.size();) {
            uint32_t unit;
            const size_t len = unicode::decode_unit(s + i, word.size() - i, &unit);
            const int32_t k = int32_t(sym.size());
            sym.push_back({k - 1, -1, uint32_t(i), uint32_t(len)});
            if (k > 0) sym[size_t(k - 1)].next = k;
            i += len;
        }

        auto later = [](const Candidate &a, const Candidate &b) {
            return a.score != b.score ? a.score < b.score : a.left > b.left;
        };
        std::vector<Candidate> heap;
        auto consider = [&](int32_t left) {
            if (left < 0) return;
            const int32_t right = sym[size_t(left)].next;
            if (right < 0) return;
            const uint32_t len = sym[size_t(left)].len + sym[size_t(right)].len;
            auto it = mergeable_.find(word.substr(sym[size_t(left)].start, len));
            if (it == mergeable_.end()) return;
            heap.push_back({it->second, left, right, len});
            std::push_heap(heap.begin(), heap.end(), later);
        };
        for (int32_t i = 0; i + 1 < int32_t(sym.size()); ++i) consider(i);

        while (!heap.empty()) {
            std::pop_heap(heap.begin(), heap.end(), later);
            const Candidate c = heap.back();
            heap.pop_back();
            Symbol &l = sym[size_t(c.left)];
            Symbol &r = sym[size_t(c.right)];
            if (l.len == 0 || r.len == 0 || l.next != c.right || l.len + r.len != c.len) continue;
            l.len += r.len;
            l.next = r.next;
            if (r.next >= 0) sym[size_t(r.next)].prev = c.left;
            r.len = 0;
            consider(l.prev);
            consider(c.left);
        }

        for (int32_t i = sym.empty() ? -1 : 0; i >= 0; i = sym[size_t(i)].next) {
            const Symbol &x = sym[size_t(i)];
            auto it = piece_id_.find(word.substr(x.start, x.len));
            if (it != piece_id_.end()) {
                out.push_back(it->second);
            } else {
                for (uint32_t k = x.start; k < x.start + x.len; ++k) out.push_back(byte_token_[s[k]]);
            }
        }
    }

    void finish_decode(std::string &out) const override {
        // The space the encoder put in front of the text.
        if (add_space_prefix_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
    }

    bool add_space_prefix_ = true;
    // Views into pieces_, which is never modified after construction. First id wins.
    std::unordered_map<std::string_view, int32_t> piece_id_;
    std::unordered_map<std::string_view, float> mergeable_;  // normal and user-defined pieces
    std::array<int32_t, 256> byte_token_{};
    std::vector<bool> dense_pairs_ = std::vector<bool>(size_t(kDense * kDense), false);
    std::unordered_set<uint64_t> joinable_;
};

}  // namespace

bool Tokenizer::is_control(int32_t token) const {
    if (token < 0 || token >= n_vocab()) return false;
    return types_[size_t(token)] == kTypeControl || token == bos_ || token == eos_;
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile &file) {
    std::optional<std::string> model = file.get_string("tokenizer.ggml.model");
    if (!model) fail(MGL_ERR_FORMAT, file.path() + ": tokenizer.ggml.model is missing");
    if (*model == "gpt2") return std::make_unique<Gpt2Tokenizer>(file);
    if (*model == "llama") return std::make_unique<LlamaTokenizer>(file);
    fail(MGL_ERR_UNSUPPORTED, file.path() + ": tokenizer.ggml.model '" + *model +
                                  "' is not supported (gpt2 or llama)");
}

}  // namespace mgl
