// Header-only helpers for the C++ tests: a tiny test framework, a GGUF v3 writer and a generator
// of complete random MEGALODON models laid out exactly as native/FORMAT.md describes.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <cstdlib>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#ifdef _WIN32
#include <process.h>
#define MGL_TEST_GETPID _getpid
#else
#include <unistd.h>
#define MGL_TEST_GETPID getpid
#endif

#include "common.h"
#include "gguf.h"

namespace mgl_test {

// ------------------------------------------------------------------------------------------
// Test framework

struct TestCase {
    const char *name;
    void (*fn)();
};

inline std::vector<TestCase> &registry() {
    static std::vector<TestCase> cases;
    return cases;
}

struct Registrar {
    Registrar(const char *name, void (*fn)()) { registry().push_back({name, fn}); }
};

inline int &failed_checks() {
    static int n = 0;
    return n;
}

inline void report_failure(const char *file, int line, const std::string &what) {
    ++failed_checks();
    std::fprintf(stderr, "  FAIL %s:%d: %s\n", file, line, what.c_str());
}

// Printable form of a value in a failure message; strings are escaped, vectors listed.
inline std::string show(const std::string &s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') { out += '\\'; out += static_cast<char>(c); }
        else if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
        else { char buf[8]; std::snprintf(buf, sizeof buf, "\\x%02x", c); out += buf; }
    }
    return out + "\"";
}
inline std::string show(const char *s) { return show(std::string(s)); }

// The bit pattern of a float and back.
inline uint32_t bits_of(float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    return b;
}
inline float float_of(uint32_t b) {
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}
template <class T> std::string show(const T &v);
template <class T> std::string show(const std::vector<T> &v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + show(v[i]);
    return out + "]";
}
template <class T> std::string show(const T &v) {
    std::ostringstream os;
    if constexpr (std::is_enum_v<T>) os << static_cast<long long>(v);
    else os << v;
    return os.str();
}

inline std::set<std::string> &temp_files();

// Runs every registered test, prints "N passed, N failed" and returns the process exit code.
inline int run_all(const char *suite) {
    int passed = 0, failed = 0;
    for (const TestCase &tc : registry()) {
        int before = failed_checks();
        bool threw = false;
        try {
            tc.fn();
        } catch (const std::exception &e) {
            threw = true;
            std::fprintf(stderr, "  FAIL %s: unexpected exception: %s\n", tc.name, e.what());
        }
        bool ok = !threw && failed_checks() == before;
        std::printf("[%s] %s\n", ok ? "ok  " : "FAIL", tc.name);
        std::fflush(stdout);
        (ok ? passed : failed)++;
    }
    for (const std::string &path : temp_files()) std::remove(path.c_str());
    std::printf("%s: %d passed, %d failed\n", suite, passed, failed);
    return failed == 0 ? 0 : 1;
}

}  // namespace mgl_test

#define TEST_CASE(name)                                                           \
    static void name();                                                           \
    static const ::mgl_test::Registrar name##_registrar(#name, &name);            \
    static void name()

#define CHECK(cond)                                                               \
    do {                                                                          \
        if (!(cond)) ::mgl_test::report_failure(__FILE__, __LINE__, #cond);       \
    } while (0)

#define CHECK_EQ(a, b)                                                            \
    do {                                                                          \
        const auto check_a_ = (a); /* copies: `a` may refer into a temporary */   \
        const auto check_b_ = (b);                                                \
        if (!(check_a_ == check_b_))                                              \
            ::mgl_test::report_failure(__FILE__, __LINE__,                        \
                std::string(#a " == " #b ": ") + ::mgl_test::show(check_a_) +     \
                " vs " + ::mgl_test::show(check_b_));                             \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                     \
    do {                                                                          \
        const double check_a_ = (a), check_b_ = (b);                              \
        if (!(std::fabs(check_a_ - check_b_) <= (tol)))                           \
            ::mgl_test::report_failure(__FILE__, __LINE__,                        \
                std::string(#a " ~= " #b ": ") + ::mgl_test::show(check_a_) +     \
                " vs " + ::mgl_test::show(check_b_));                             \
    } while (0)

// Checks that `expr` throws mgl::Error with the given status (error_message() below gives the
// message for further checks).
#define CHECK_THROWS_STATUS(expr, status_value)                                   \
    do {                                                                          \
        bool check_threw_ = false;                                                \
        try {                                                                     \
            (void)(expr);                                                         \
        } catch (const ::mgl::Error &check_e_) {                                  \
            check_threw_ = true;                                                  \
            if (check_e_.status != (status_value))                                \
                ::mgl_test::report_failure(__FILE__, __LINE__,                    \
                    std::string(#expr ": status ") +                              \
                    ::mgl_test::show(check_e_.status) + ", message: " +           \
                    check_e_.what());                                             \
        }                                                                         \
        if (!check_threw_)                                                        \
            ::mgl_test::report_failure(__FILE__, __LINE__,                        \
                std::string(#expr " did not throw"));                             \
    } while (0)

#define TEST_MAIN(suite) \
    int main() { return ::mgl_test::run_all(suite); }

namespace mgl_test {

// Message of the mgl::Error thrown by fn ("" when it does not throw).
inline std::string error_message(const std::function<void()> &fn) {
    try {
        fn();
    } catch (const mgl::Error &e) {
        return e.what();
    }
    return "";
}

inline bool contains(const std::string &haystack, const std::string &needle) {
    return haystack.find(needle) != std::string::npos;
}

inline std::set<std::string> &temp_files() {
    static std::set<std::string> files;
    return files;
}

// Path of a scratch file in the system temp folder, unique to this process; run_all() deletes
// it at the end.
inline std::string temp_path(const std::string &name) {
    const char *dir = std::getenv("TMPDIR");
    std::string base = dir && *dir ? dir : "/tmp";
    std::string path = base + "/mgl_test_" + std::to_string(static_cast<long long>(MGL_TEST_GETPID())) + "_" + name;
    temp_files().insert(path);
    return path;
}

// ------------------------------------------------------------------------------------------
// Number conversions used when writing tensors (independent of the runtime's own kernels).

inline uint16_t f32_to_f16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t mag = x & 0x7fffffffu;
    if (mag >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (mag > 0x7f800000u ? 0x200u : 0));
    if (mag >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to infinity
    if (mag < 0x38800000u) {  // subnormal half (or zero): round at 2^-24 granularity
        float a;
        std::memcpy(&a, &mag, 4);
        return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(a * 16777216.0f)));
    }
    uint32_t exp = ((mag >> 23) - 112) << 10;
    uint32_t mant = (mag >> 13) & 0x3ffu;
    uint32_t rest = mag & 0x1fffu;
    uint32_t h = exp | mant;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // nearest, ties to even
    return static_cast<uint16_t>(sign | h);
}

inline float f16_to_f32(uint16_t h) {
    uint32_t sign = (h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    float v;
    if (exp == 0) v = std::ldexp(static_cast<float>(mant), -24);
    else if (exp == 31) v = mant ? NAN : INFINITY;
    else v = std::ldexp(static_cast<float>(mant | 0x400u), static_cast<int>(exp) - 25);
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    bits |= sign;
    std::memcpy(&v, &bits, 4);
    return v;
}

inline uint16_t f32_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // NaN
    x += 0x7fffu + ((x >> 16) & 1u);
    return static_cast<uint16_t>(x >> 16);
}

// ------------------------------------------------------------------------------------------
// GGUF v3 writer

struct ByteBuffer {
    std::vector<uint8_t> bytes;
    void put(const void *p, size_t n) {
        const uint8_t *b = static_cast<const uint8_t *>(p);
        bytes.insert(bytes.end(), b, b + n);
    }
    template <class T> void put_pod(T v) { put(&v, sizeof v); }
    void put_u8(uint8_t v) { put_pod(v); }
    void put_u32(uint32_t v) { put_pod(v); }
    void put_i32(int32_t v) { put_pod(v); }
    void put_u64(uint64_t v) { put_pod(v); }
    void put_f32(float v) { put_pod(v); }
    void put_string(const std::string &s) { put_u64(s.size()); put(s.data(), s.size()); }
    void pad_to(size_t alignment) {
        while (bytes.size() % alignment) bytes.push_back(0);
    }
};

using VT = mgl::GgufValueType;

class GgufWriter {
public:
    explicit GgufWriter(uint32_t alignment = 32) : alignment_(alignment) {}

    // Value payload (type id + encoded value) written verbatim; the typed adders use it.
    void add_raw_kv(const std::string &key, VT type, const ByteBuffer &payload) {
        kvs_.push_back({key, type, payload.bytes});
    }
    void add_u8(const std::string &k, uint8_t v) { scalar(k, VT::U8, v); }
    void add_i8(const std::string &k, int8_t v) { scalar(k, VT::I8, v); }
    void add_u16(const std::string &k, uint16_t v) { scalar(k, VT::U16, v); }
    void add_i16(const std::string &k, int16_t v) { scalar(k, VT::I16, v); }
    void add_u32(const std::string &k, uint32_t v) { scalar(k, VT::U32, v); }
    void add_i32(const std::string &k, int32_t v) { scalar(k, VT::I32, v); }
    void add_u64(const std::string &k, uint64_t v) { scalar(k, VT::U64, v); }
    void add_i64(const std::string &k, int64_t v) { scalar(k, VT::I64, v); }
    void add_f32(const std::string &k, float v) { scalar(k, VT::F32, v); }
    void add_f64(const std::string &k, double v) { scalar(k, VT::F64, v); }
    void add_bool(const std::string &k, bool v) { scalar(k, VT::BOOL, static_cast<uint8_t>(v ? 1 : 0)); }
    void add_string(const std::string &k, const std::string &v) {
        ByteBuffer b;
        b.put_string(v);
        add_raw_kv(k, VT::STRING, b);
    }
    void add_string_array(const std::string &k, const std::vector<std::string> &v) {
        ByteBuffer b;
        b.put_u32(static_cast<uint32_t>(VT::STRING));
        b.put_u64(v.size());
        for (const std::string &s : v) b.put_string(s);
        add_raw_kv(k, VT::ARRAY, b);
    }
    void add_f32_array(const std::string &k, const std::vector<float> &v) { array(k, VT::F32, v); }
    void add_i32_array(const std::string &k, const std::vector<int32_t> &v) { array(k, VT::I32, v); }
    void add_u32_array(const std::string &k, const std::vector<uint32_t> &v) { array(k, VT::U32, v); }

    // Tensor with dimensions ne (ne[0] contiguous) from f32 values, converted to `type`.
    void add_tensor(const std::string &name, mgl::DType type, const std::vector<int64_t> &ne,
                    const std::vector<float> &values) {
        int64_t n = 1;
        for (int64_t d : ne) n *= d;
        if (static_cast<int64_t>(values.size()) != n)
            throw std::invalid_argument("tensor " + name + ": value count does not match its shape");
        ByteBuffer b;
        switch (type) {
            case mgl::DType::F32:
                for (float v : values) b.put_f32(v);
                break;
            case mgl::DType::F16:
                for (float v : values) b.put_pod(f32_to_f16(v));
                break;
            case mgl::DType::BF16:
                for (float v : values) b.put_pod(f32_to_bf16(v));
                break;
            case mgl::DType::Q8_0: {
                if (ne[0] % 32 != 0)
                    throw std::invalid_argument("tensor " + name + ": q8_0 needs ne[0] % 32 == 0");
                for (int64_t blk = 0; blk < n; blk += 32) {
                    float amax = 0;
                    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(values[blk + j]));
                    float d = amax / 127.0f;
                    float inv = d > 0 ? 1.0f / d : 0.0f;
                    b.put_pod(f32_to_f16(d));
                    for (int j = 0; j < 32; ++j)
                        b.put_pod(static_cast<int8_t>(std::lround(values[blk + j] * inv)));
                }
                break;
            }
        }
        add_raw_tensor(name, static_cast<uint32_t>(type), ne, b.bytes);
    }

    // Tensor with an arbitrary type id and the given data bytes (for malformed files).
    void add_raw_tensor(const std::string &name, uint32_t type_id, const std::vector<int64_t> &ne,
                        const std::vector<uint8_t> &data) {
        tensors_.push_back({name, type_id, ne, data});
    }

    std::vector<uint8_t> bytes(uint32_t version = 3) const {
        ByteBuffer out;
        out.put("GGUF", 4);
        out.put_u32(version);
        out.put_u64(tensors_.size());
        out.put_u64(kvs_.size());
        for (const Kv &kv : kvs_) {
            out.put_string(kv.key);
            out.put_u32(static_cast<uint32_t>(kv.type));
            out.put(kv.payload.data(), kv.payload.size());
        }
        uint64_t offset = 0;
        for (const Tensor &t : tensors_) {
            out.put_string(t.name);
            out.put_u32(static_cast<uint32_t>(t.ne.size()));
            for (int64_t d : t.ne) out.put_u64(static_cast<uint64_t>(d));
            out.put_u32(t.type_id);
            out.put_u64(offset);
            offset += round_up(t.data.size());
        }
        out.pad_to(alignment_);
        for (const Tensor &t : tensors_) {
            out.put(t.data.data(), t.data.size());
            out.pad_to(alignment_);
        }
        return out.bytes;
    }

    void write(const std::string &path, uint32_t version = 3) const { write_file(path, bytes(version)); }

    static void write_file(const std::string &path, const std::vector<uint8_t> &data) {
        std::ofstream f(path, std::ios::binary | std::ios::trunc);
        f.write(reinterpret_cast<const char *>(data.data()), static_cast<std::streamsize>(data.size()));
        if (!f) throw std::runtime_error("cannot write " + path);
    }

private:
    struct Kv {
        std::string key;
        VT type;
        std::vector<uint8_t> payload;
    };
    struct Tensor {
        std::string name;
        uint32_t type_id;
        std::vector<int64_t> ne;
        std::vector<uint8_t> data;
    };
    template <class T> void scalar(const std::string &k, VT type, T v) {
        ByteBuffer b;
        b.put_pod(v);
        add_raw_kv(k, type, b);
    }
    template <class T> void array(const std::string &k, VT elem, const std::vector<T> &v) {
        ByteBuffer b;
        b.put_u32(static_cast<uint32_t>(elem));
        b.put_u64(v.size());
        for (T x : v) b.put_pod(x);
        add_raw_kv(k, VT::ARRAY, b);
    }
    uint64_t round_up(uint64_t n) const { return (n + alignment_ - 1) / alignment_ * alignment_; }

    uint32_t alignment_;
    std::vector<Kv> kvs_;
    std::vector<Tensor> tensors_;
};

// ------------------------------------------------------------------------------------------
// Vocabularies

// UTF-8 encoding of one code point.
inline std::string utf8(uint32_t cp) {
    std::string s;
    if (cp < 0x80) s += static_cast<char>(cp);
    else if (cp < 0x800) { s += static_cast<char>(0xc0 | (cp >> 6)); s += static_cast<char>(0x80 | (cp & 0x3f)); }
    else if (cp < 0x10000) {
        s += static_cast<char>(0xe0 | (cp >> 12));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        s += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
        s += static_cast<char>(0xf0 | (cp >> 18));
        s += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        s += static_cast<char>(0x80 | (cp & 0x3f));
    }
    return s;
}

// The GPT-2 byte-to-symbol table: printable Latin-1 bytes map to themselves, the other 68 bytes
// to U+0100 upwards in byte order.
inline std::string gpt2_byte_symbol(uint8_t b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return utf8(b);
    uint32_t k = 0;
    for (int c = 0; c < b; ++c)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174)) ++k;
    return utf8(256 + k);
}

struct Vocab {
    std::string model;  // "gpt2" or "llama"
    std::string pre;    // gpt2 pre-tokenizer name, written when not empty
    std::vector<std::string> tokens;
    std::vector<int32_t> types;
    std::vector<float> scores;        // llama
    std::vector<std::string> merges;  // gpt2
    int32_t bos = -1, eos = -1, unk = -1;
    bool add_bos = false;

    void write_to(GgufWriter &w) const {
        w.add_string("tokenizer.ggml.model", model);
        if (!pre.empty()) w.add_string("tokenizer.ggml.pre", pre);
        w.add_string_array("tokenizer.ggml.tokens", tokens);
        w.add_i32_array("tokenizer.ggml.token_type", types);
        if (!scores.empty()) w.add_f32_array("tokenizer.ggml.scores", scores);
        if (model == "gpt2") w.add_string_array("tokenizer.ggml.merges", merges);
        if (bos >= 0) w.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(bos));
        if (eos >= 0) w.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(eos));
        if (unk >= 0) w.add_u32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(unk));
        w.add_bool("tokenizer.ggml.add_bos_token", add_bos);
    }
};

// Byte-level BPE vocabulary of n_vocab tokens: the 256 byte symbols (id = byte value), random
// merges that build multi-letter symbols from letters, digits and 'Ġ' (so English-like text
// exercises them), and "<|endoftext|>" (control, BOS and EOS) as the last id.
inline Vocab random_gpt2_vocab(uint32_t n_vocab, std::mt19937 &rng) {
    if (n_vocab < 257) throw std::invalid_argument("gpt2 vocabulary needs at least 257 tokens");
    Vocab v;
    v.model = "gpt2";
    v.pre = "gpt2";
    std::set<std::string> known;
    for (int b = 0; b < 256; ++b) {
        v.tokens.push_back(gpt2_byte_symbol(static_cast<uint8_t>(b)));
        v.types.push_back(1);
        known.insert(v.tokens.back());
    }
    std::vector<std::string> pool;
    for (char c = 'a'; c <= 'z'; ++c) pool.push_back(std::string(1, c));
    for (const char *s : {"e", "t", "a", "o", "n", "s", "h", "r", "T", "I", "0", "1", ",", "."}) pool.push_back(s);
    pool.push_back(gpt2_byte_symbol(' '));
    pool.push_back(gpt2_byte_symbol(' '));
    pool.push_back(gpt2_byte_symbol('\n'));
    while (v.tokens.size() + 1 < n_vocab) {
        const std::string &left = pool[rng() % pool.size()];
        const std::string &right = pool[rng() % pool.size()];
        std::string merged = left + right;
        if (merged.size() > 12 || known.count(merged)) continue;
        known.insert(merged);
        v.merges.push_back(left + " " + right);
        v.tokens.push_back(merged);
        v.types.push_back(1);
        pool.push_back(merged);
    }
    v.tokens.push_back("<|endoftext|>");
    v.types.push_back(3);
    v.bos = v.eos = static_cast<int32_t>(v.tokens.size() - 1);
    return v;
}

// SentencePiece vocabulary of n_vocab tokens: <unk>, <s>, </s>, the 256 byte tokens <0xXX>,
// single-character pieces ('▁', letters, digits, punctuation, a few non-ASCII characters) and
// random multi-character pieces with random scores.
inline Vocab random_llama_vocab(uint32_t n_vocab, std::mt19937 &rng) {
    Vocab v;
    v.model = "llama";
    auto add = [&](const std::string &piece, int32_t type, float score) {
        v.tokens.push_back(piece);
        v.types.push_back(type);
        v.scores.push_back(score);
    };
    add("<unk>", 2, 0);
    add("<s>", 3, 0);
    add("</s>", 3, 0);
    for (int b = 0; b < 256; ++b) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        add(buf, 6, 0);
    }
    std::vector<std::string> singles = {"\xe2\x96\x81"};  // '▁'
    for (char c = 'a'; c <= 'z'; ++c) singles.push_back(std::string(1, c));
    for (char c = 'A'; c <= 'Z'; ++c) singles.push_back(std::string(1, c));
    for (char c = '0'; c <= '9'; ++c) singles.push_back(std::string(1, c));
    for (const char *s : {".", ",", "!", "?", "'", "-", "\n"}) singles.push_back(s);
    for (uint32_t cp : {0xe9u, 0x4e2du, 0x1f642u}) singles.push_back(utf8(cp));  // é 中 🙂
    if (n_vocab < v.tokens.size() + singles.size())
        throw std::invalid_argument("llama vocabulary needs at least " +
                                    std::to_string(v.tokens.size() + singles.size()) + " tokens");
    std::uniform_real_distribution<float> low(-20.0f, -10.0f), high(-10.0f, 0.0f);
    std::set<std::string> known;
    for (const std::string &s : singles) {
        add(s, 1, low(rng));
        known.insert(s);
    }
    std::vector<std::string> pool;
    for (size_t i = 0; i < 27; ++i) pool.push_back(singles[i]);  // '▁' and a-z
    for (int i = 0; i < 8; ++i) pool.push_back(singles[0]);
    while (v.tokens.size() < n_vocab) {
        std::string merged = pool[rng() % pool.size()] + pool[rng() % pool.size()];
        if (merged.size() > 16 || known.count(merged)) continue;
        known.insert(merged);
        add(merged, 1, high(rng));
        pool.push_back(merged);
    }
    v.unk = 0;
    v.bos = 1;
    v.eos = 2;
    v.add_bos = true;
    return v;
}

// ------------------------------------------------------------------------------------------
// Random MEGALODON model

struct TinyConfig {
    uint32_t n_layers = 2;
    uint32_t d_model = 32;     // D
    uint32_t cema_ndim = 4;    // N
    uint32_t n_heads = 2;      // H
    uint32_t z_dim = 16;       // Z
    uint32_t value_dim = 32;   // E
    uint32_t ffn_dim = 64;     // F
    uint32_t chunk_size = 8;   // C
    uint32_t norm_groups = 4;  // G
    uint32_t n_vocab = 384;
    bool swiglu = true;
    bool tied_embedding = false;
    bool scale_embedding = false;
    bool rope_bf16_freqs = true;
    float norm_eps = 1e-5f;
    float rope_base = 10000.0f;
    uint32_t mtp_heads = 1;    // n, head 1 included
    uint32_t mtp_hidden = 32;  // Fh (heads 2..n)
    std::string mtp_source = "trunk";
    // Final norm: weight ~ N(mean, std²), bias ~ N(0, std²). A small weight and a large bias
    // make every position's logits close to one fixed, peaked distribution.
    float output_norm_weight_mean = 1.0f, output_norm_weight_std = 0.1f, output_norm_bias_std = 0.1f;
    // Scale of the heads' down projections: 0 with mtp_source "final" makes every extra head
    // repeat head 1's logits.
    float mtp_down_scale = 1.0f;
    std::string tokenizer = "gpt2";  // or "llama"
    mgl::DType weight_type = mgl::DType::F32;  // type of the "any" tensors
};

// Writes a complete random model for cfg to path (FORMAT.md 1.1/1.2) and returns path.
// The same (cfg, seed) always gives the same file.
inline std::string write_random_model(const std::string &path, const TinyConfig &cfg, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const uint32_t D = cfg.d_model, N = cfg.cema_ndim, Z = cfg.z_dim, E = cfg.value_dim;
    const uint32_t F = cfg.ffn_dim, V = cfg.n_vocab, Fh = cfg.mtp_hidden;
    const mgl::DType any = cfg.weight_type, f32 = mgl::DType::F32;

    Vocab vocab = cfg.tokenizer == "llama" ? random_llama_vocab(V, rng) : random_gpt2_vocab(V, rng);

    GgufWriter w;
    w.add_string("general.architecture", "megalodon");
    w.add_string("general.name", "tiny-random");
    w.add_u32("general.alignment", 32);
    w.add_u32("megalodon.block_count", cfg.n_layers);
    w.add_u32("megalodon.embedding_length", D);
    w.add_u32("megalodon.cema_ndim", N);
    w.add_u32("megalodon.attention.head_count", cfg.n_heads);
    w.add_u32("megalodon.attention.z_dim", Z);
    w.add_u32("megalodon.attention.value_dim", E);
    w.add_u32("megalodon.feed_forward_length", F);
    w.add_u32("megalodon.chunk_size", cfg.chunk_size);
    w.add_u32("megalodon.norm_groups", cfg.norm_groups);
    w.add_f32("megalodon.norm_eps", cfg.norm_eps);
    w.add_f32("megalodon.rope.freq_base", cfg.rope_base);
    w.add_bool("megalodon.rope.bf16_freqs", cfg.rope_bf16_freqs);
    w.add_bool("megalodon.swiglu", cfg.swiglu);
    w.add_bool("megalodon.scale_embedding", cfg.scale_embedding);
    w.add_bool("megalodon.tied_embedding", cfg.tied_embedding);
    w.add_u32("megalodon.mtp.head_count", cfg.mtp_heads);
    if (cfg.mtp_heads > 1) w.add_u32("megalodon.mtp.hidden_dim", Fh);
    w.add_string("megalodon.mtp.source", cfg.mtp_source);
    vocab.write_to(w);

    auto fill = [&](size_t n, auto gen) {
        std::vector<float> v(n);
        for (float &x : v) x = gen();
        return v;
    };
    auto gaussian = [&](size_t n, float mean, float std) {
        return fill(n, [&] { return mean + std * normal(rng); });
    };
    // [out, in] matrix (ne = [in, out]) with entries N(0, 1/in).
    auto matrix = [&](const std::string &name, uint32_t out, uint32_t in) {
        w.add_tensor(name, any, {in, out}, gaussian(size_t(out) * in, 0.0f, 1.0f / std::sqrt(float(in))));
    };
    auto f32_vector = [&](const std::string &name, uint32_t n, float mean, float std) {
        w.add_tensor(name, f32, {n}, gaussian(n, mean, std));
    };

    matrix("token_embd.weight", V, D);
    for (uint32_t i = 0; i < cfg.n_layers; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        f32_vector(p + "tsn.weight", D, 1.0f, 0.1f);
        f32_vector(p + "tsn.bias", D, 0.0f, 0.1f);
        // CEMA logits as initialised in megalodon.md 2.1: alpha, delta ~ N(0, 0.2^2); theta the
        // logit of f_k = exp(-k ln D / D) under a random permutation; omega ~ truncN(0, 0.25^2).
        w.add_tensor(p + "cema.alpha", f32, {N, D}, gaussian(size_t(D) * N, 0.0f, 0.2f));
        w.add_tensor(p + "cema.delta", f32, {N, D}, gaussian(size_t(D) * N, 0.0f, 0.2f));
        std::vector<uint32_t> perm(D);
        for (uint32_t k = 0; k < D; ++k) perm[k] = k + 1;
        std::shuffle(perm.begin(), perm.end(), rng);
        std::vector<float> theta(D);
        for (uint32_t d = 0; d < D; ++d) {
            double f = std::exp(-double(perm[d]) * std::log(double(D)) / D);
            f = std::min(std::max(f, 1e-6), 1.0 - 1e-6);
            theta[d] = static_cast<float>(std::log(f / (1.0 - f)));
        }
        w.add_tensor(p + "cema.theta", f32, {D}, theta);
        // gamma: the imaginary part is drawn too (the released init sets it to 0) so that the
        // complex part of η is exercised.
        w.add_tensor(p + "cema.gamma", f32, {2, N, D}, gaussian(size_t(D) * N * 2, 0.0f, 1.0f));
        w.add_tensor(p + "cema.omega", f32, {D}, fill(D, [&] {
            float x;
            do x = 0.25f * normal(rng); while (std::fabs(x) > 1.0f);
            return x;
        }));
        f32_vector(p + "rms.weight", D, 1.0f, 0.1f);
        matrix(p + "attn_z.weight", Z, D);
        f32_vector(p + "attn_z.bias", Z, 0.0f, 0.1f);
        matrix(p + "attn_v.weight", E, D);
        f32_vector(p + "attn_v.bias", E, 0.0f, 0.1f);
        matrix(p + "attn_r.weight", E, D);
        f32_vector(p + "attn_r.bias", E, 0.0f, 0.1f);
        matrix(p + "attn_h1.weight", D, D);
        f32_vector(p + "attn_h1.bias", D, 0.0f, 0.1f);
        matrix(p + "attn_h2.weight", D, E);
        // κ+1 around 2 so that attention is clearly not uniform.
        w.add_tensor(p + "attn_qk.scale", f32, {Z, 2}, gaussian(size_t(Z) * 2, 2.0f, 0.3f));
        w.add_tensor(p + "attn_qk.bias", f32, {Z, 2}, gaussian(size_t(Z) * 2, 0.0f, 0.1f));
        f32_vector(p + "ffn_norm.weight", D, 1.0f, 0.1f);
        f32_vector(p + "ffn_norm.bias", D, 0.0f, 0.1f);
        matrix(p + "ffn_gate.weight", F, D);
        if (cfg.swiglu) matrix(p + "ffn_up.weight", F, D);
        matrix(p + "ffn_down.weight", D, F);
    }
    f32_vector("output_norm.weight", D, cfg.output_norm_weight_mean, cfg.output_norm_weight_std);
    f32_vector("output_norm.bias", D, 0.0f, cfg.output_norm_bias_std);
    if (!cfg.tied_embedding) matrix("output.weight", V, D);
    for (uint32_t j = 2; j <= cfg.mtp_heads; ++j) {
        const std::string p = "mtp." + std::to_string(j) + ".";
        f32_vector(p + "norm.weight", D, 1.0f, 0.1f);
        matrix(p + "gate.weight", Fh, D);
        matrix(p + "up.weight", Fh, D);
        w.add_tensor(p + "down.weight", any, {Fh, D},
                     gaussian(size_t(D) * Fh, 0.0f, cfg.mtp_down_scale / std::sqrt(float(Fh))));
    }
    w.write(path);
    return path;
}

}  // namespace mgl_test
