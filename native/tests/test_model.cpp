// The model and the C API: loading errors, streaming equivalence (one call, token by token,
// random splits, ingest, save/load, clone), state files (sizes, mismatch, corruption, fuzzing),
// cancellation, refresh mode, sampling and generation with stop strings.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "megalodon.h"
#include "test_handles.h"
#include "test_util.h"

using namespace mgl_test;

namespace {

using Bytes = std::vector<uint8_t>;

std::string model_file(const std::string &name, const TinyConfig &cfg, uint32_t seed) {
    return write_random_model(temp_path(name + ".gguf"), cfg, seed);
}

// Status and message of a failed load.
std::pair<mgl_status, std::string> load_error(const std::string &path) {
    mgl_model *m = nullptr;
    const mgl_status s = mgl_model_load(path.c_str(), nullptr, &m);
    mgl_model_free(m);
    return {s, mgl_last_error()};
}

// Logits [n_rows][n_heads][V] of the last n_rows tokens.
std::vector<float> eval(mgl_model *m, mgl_state *s, const std::vector<int32_t> &tokens, size_t n_rows, int n_heads) {
    std::vector<float> out(std::max<size_t>(1, n_rows * size_t(n_heads) * size_t(info_of(m).n_vocab)));
    const mgl_status st = mgl_eval(m, s, tokens.data(), tokens.size(), n_rows, n_heads, out.data());
    if (st != MGL_OK) throw std::runtime_error(std::string("eval: ") + mgl_last_error());
    out.resize(n_rows * size_t(n_heads) * size_t(info_of(m).n_vocab));
    return out;
}

std::vector<float> eval_all(mgl_model *m, mgl_state *s, const std::vector<int32_t> &tokens, int n_heads) {
    return eval(m, s, tokens, tokens.size(), n_heads);
}

// Logits of every token when fed in pieces ending at the given cut points.
std::vector<float> eval_pieces(mgl_model *m, mgl_state *s, const std::vector<int32_t> &tokens,
                               const std::vector<size_t> &cuts, int n_heads) {
    std::vector<float> all;
    size_t begin = 0;
    for (size_t end : cuts) {
        std::vector<int32_t> piece(tokens.begin() + std::ptrdiff_t(begin), tokens.begin() + std::ptrdiff_t(end));
        std::vector<float> l = eval_all(m, s, piece, n_heads);
        all.insert(all.end(), l.begin(), l.end());
        begin = end;
    }
    return all;
}

void ingest(mgl_model *m, mgl_state *s, const std::vector<int32_t> &tokens) {
    if (mgl_ingest(m, s, tokens.data(), tokens.size(), nullptr, nullptr) != MGL_OK)
        throw std::runtime_error(std::string("ingest: ") + mgl_last_error());
}

std::vector<int32_t> slice(const std::vector<int32_t> &v, size_t begin, size_t end) {
    return std::vector<int32_t>(v.begin() + std::ptrdiff_t(begin), v.begin() + std::ptrdiff_t(end));
}

std::vector<int32_t> random_tokens(int32_t n_vocab, size_t count, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(count);
    for (int32_t &x : t) x = int32_t(rng() % uint32_t(n_vocab));
    return t;
}

// max |a - b| / max(1, max |a|).
double rel_diff(const std::vector<float> &a, const std::vector<float> &b) {
    if (a.size() != b.size()) return INFINITY;
    double diff = 0, scale = 1;
    for (size_t i = 0; i < a.size(); ++i) {
        diff = std::max(diff, double(std::fabs(a[i] - b[i])));
        scale = std::max(scale, double(std::fabs(a[i])));
    }
    return diff / scale;
}

std::vector<float> tail_rows(const std::vector<float> &logits, size_t row_floats, size_t first_row) {
    return std::vector<float>(logits.begin() + std::ptrdiff_t(first_row * row_floats), logits.end());
}

struct Generation {
    std::vector<int32_t> tokens;
    std::vector<std::string> texts;
    mgl_generate_result result{};
    mgl_status status = MGL_OK;
    std::string joined() const {
        std::string s;
        for (const std::string &t : texts) s += t;
        return s;
    }
};

int collect_token(int32_t token, const char *text, size_t len, void *user) {
    Generation &g = *static_cast<Generation *>(user);
    g.tokens.push_back(token);
    g.texts.emplace_back(text, len);
    return 0;
}

Generation generate(mgl_model *m, mgl_state *s, const std::vector<int32_t> &prompt, const mgl_generate_params &p) {
    Generation g;
    g.status = mgl_generate(m, s, prompt.data(), prompt.size(), &p, collect_token, &g, &g.result);
    return g;
}

mgl_generate_params greedy_params(int32_t max_tokens) {
    mgl_generate_params p = mgl_generate_default_params();
    p.max_tokens = max_tokens;
    p.sampling.temperature = 0;
    p.stop_at_eos = 0;
    return p;
}

Bytes read_bytes(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

size_t find_unique(const Bytes &b, const Bytes &pattern) {
    auto it = std::search(b.begin(), b.end(), pattern.begin(), pattern.end());
    if (it == b.end()) throw std::logic_error("pattern not found");
    if (std::search(it + 1, b.end(), pattern.begin(), pattern.end()) != b.end())
        throw std::logic_error("pattern not unique");
    return size_t(it - b.begin());
}

Bytes gguf_string(const std::string &s) {
    const uint64_t n = s.size();
    Bytes b(8 + s.size());
    std::memcpy(b.data(), &n, 8);
    std::memcpy(b.data() + 8, s.data(), s.size());
    return b;
}

// Offset of the dimension count in the tensor info of `name`.
size_t tensor_info_at(const Bytes &file, const std::string &name) {
    const Bytes key = gguf_string(name);
    return find_unique(file, key) + key.size();
}

std::string write_variant(const std::string &name, const Bytes &bytes) {
    const std::string path = temp_path(name);
    GgufWriter::write_file(path, bytes);
    return path;
}

int64_t peak_rss_kib() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
    return -1;
}

const TinyConfig &stream_config() {
    static const TinyConfig cfg = [] {
        TinyConfig c;
        c.n_layers = 3;
        c.mtp_heads = 3;
        c.chunk_size = 8;
        return c;
    }();
    return cfg;
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Loading

TEST_CASE(loads_and_reports_info) {
    TinyConfig cfg = stream_config();
    const std::string path = model_file("info", cfg, 1);
    ModelPtr m = load(path, 3);
    const mgl_model_info info = info_of(m.get());
    CHECK_EQ(info.n_layers, 3);
    CHECK_EQ(info.d_model, 32);
    CHECK_EQ(info.n_vocab, 384);
    CHECK_EQ(info.n_predict_heads, 3);
    CHECK_EQ(info.mtp_hidden_dim, 32);
    CHECK_EQ(info.n_threads, 3);
    CHECK_EQ(info.chunk_size, 8);
    CHECK_EQ(info.eos_token, 383);
    // Parameters: embedding + output + final norm + per layer + 2 extra heads.
    const int64_t D = 32, N = 4, Z = 16, E = 32, F = 64, V = 384, Fh = 32;
    const int64_t layer = 2 * D + 2 * D * N + D + 2 * D * N + D + D + (Z * D + Z) + 2 * (E * D + E) + (D * D + D) +
                          D * E + 4 * Z + 2 * D + 3 * F * D;
    CHECK_EQ(info.n_params, V * D * 2 + 2 * D + 3 * layer + 2 * (D + 3 * Fh * D));
    // A saved state at a chunk boundary: header, per layer stats + CEMA, final stats, checksum.
    CHECK_EQ(info.state_bytes, int64_t(80 + 3 * (2 * 4 * 4 + D * N * 8) + 2 * 4 * 4 + 8));
    const std::string json = mgl_model_info_json(m.get());
    char fp[48];
    std::snprintf(fp, sizeof fp, "\"fingerprint\":\"%016llx\"", static_cast<unsigned long long>(info.fingerprint));
    CHECK(contains(json, fp));
    CHECK(contains(json, "\"total\":" + std::to_string(info.n_params)));
    CHECK(contains(json, "\"kind\":\"gpt2\""));
    CHECK(contains(json, "\"f32\":"));
    CHECK(contains(std::string(mgl_version()), "megalodon 0.1.0 cpu "));
    CHECK_EQ(mgl_model_set_threads(m.get(), 1), MGL_OK);
    CHECK_EQ(info_of(m.get()).n_threads, 1);
}

TEST_CASE(load_rejects_wrong_architecture) {
    Bytes b = read_bytes(model_file("arch", TinyConfig(), 2));
    const size_t at = find_unique(b, gguf_string("megalodon"));
    std::memcpy(&b[at + 8], "llamallam", 9);
    auto [status, message] = load_error(write_variant("arch_bad.gguf", b));
    CHECK_EQ(status, MGL_ERR_UNSUPPORTED);
    CHECK(contains(message, "llamallam"));
}

TEST_CASE(load_rejects_missing_tensor) {
    Bytes b = read_bytes(model_file("missing", TinyConfig(), 3));
    const size_t at = find_unique(b, gguf_string("blk.1.attn_v.weight"));
    b[at + 8 + std::strlen("blk.1.attn_v.weight") - 1] = 'X';
    auto [status, message] = load_error(write_variant("missing_bad.gguf", b));
    CHECK_EQ(status, MGL_ERR_FORMAT);
    CHECK(contains(message, "blk.1.attn_v.weight"));
    CHECK(contains(message, "missing"));
}

TEST_CASE(load_rejects_wrong_shape) {
    Bytes b = read_bytes(model_file("shape", TinyConfig(), 4));
    // attn_z.weight is [Z=16, D=32] (ne = [32, 16]); swap to ne = [16, 32]: same size, wrong shape.
    const size_t at = tensor_info_at(b, "blk.0.attn_z.weight");
    uint64_t ne0 = 16, ne1 = 32;
    std::memcpy(&b[at + 4], &ne0, 8);
    std::memcpy(&b[at + 12], &ne1, 8);
    auto [status, message] = load_error(write_variant("shape_bad.gguf", b));
    CHECK_EQ(status, MGL_ERR_FORMAT);
    CHECK(contains(message, "blk.0.attn_z.weight"));
    CHECK(contains(message, "[32, 16]"));
    CHECK(contains(message, "expected [16, 32]"));
}

TEST_CASE(load_rejects_bad_config) {
    TinyConfig groups;
    groups.norm_groups = 5;  // 32 % 5 != 0
    auto [s1, m1] = load_error(model_file("groups", groups, 5));
    CHECK_EQ(s1, MGL_ERR_FORMAT);
    CHECK(contains(m1, "norm_groups"));

    TinyConfig odd;
    odd.z_dim = 6;  // d_z = 3
    odd.n_heads = 2;
    auto [s2, m2] = load_error(model_file("odd", odd, 6));
    CHECK_EQ(s2, MGL_ERR_FORMAT);
    CHECK(contains(m2, "odd"));

    // A huge chunk makes the KV of one state far larger than the limit: refused before any
    // allocation, naming the size.
    TinyConfig huge;
    huge.chunk_size = 1u << 24;
    huge.z_dim = 256;
    huge.value_dim = 512;
    huge.n_heads = 2;
    auto [s3, m3] = load_error(model_file("huge", huge, 7));
    CHECK_EQ(s3, MGL_ERR_UNSUPPORTED);
    CHECK(contains(m3, "GiB"));

    Bytes b = read_bytes(model_file("chunk_key", TinyConfig(), 8));
    Bytes key = gguf_string("megalodon.chunk_size");
    const size_t at = find_unique(b, key) + key.size() + 4;  // after the value type
    const uint32_t absurd = 0xffffffffu;
    std::memcpy(&b[at], &absurd, 4);
    auto [s4, m4] = load_error(write_variant("chunk_key_bad.gguf", b));
    CHECK_EQ(s4, MGL_ERR_FORMAT);
    CHECK(contains(m4, "megalodon.chunk_size"));

    auto [s5, m5] = load_error(temp_path("does_not_exist.gguf"));
    CHECK_EQ(s5, MGL_ERR_IO);
}

// ------------------------------------------------------------------------------------------
// Streaming equivalence

TEST_CASE(streaming_splits_agree) {
    const TinyConfig cfg = stream_config();
    ModelPtr m = load(model_file("stream", cfg, 11));
    const int heads = 3;
    const size_t V = 384, row = size_t(heads) * V;
    const std::vector<int32_t> tokens = random_tokens(384, 28, 12);  // 3.5 chunks
    StatePtr whole = new_state(m.get());
    const std::vector<float> expected = eval_all(m.get(), whole.get(), tokens, heads);

    StatePtr stepped = new_state(m.get());
    std::vector<size_t> every;
    for (size_t i = 1; i <= tokens.size(); ++i) every.push_back(i);
    CHECK(rel_diff(eval_pieces(m.get(), stepped.get(), tokens, every, heads), expected) <= 1e-5);

    std::mt19937 rng(13);
    for (int trial = 0; trial < 5; ++trial) {
        std::vector<size_t> cuts;
        for (size_t i = 1; i < tokens.size(); ++i)
            if (rng() % 4 == 0) cuts.push_back(i);
        cuts.push_back(tokens.size());
        StatePtr s = new_state(m.get());
        CHECK(rel_diff(eval_pieces(m.get(), s.get(), tokens, cuts, heads), expected) <= 1e-5);
    }

    for (size_t cut : {3, 8, 13, 24}) {
        StatePtr first = new_state(m.get());
        ingest(m.get(), first.get(), slice(tokens, 0, cut));
        CHECK_EQ(mgl_state_position(first.get()), int64_t(cut));
        CHECK(mgl_state_logits(first.get(), 0) == nullptr);  // ingest computes no logits
        const std::vector<float> rest = tail_rows(expected, row, cut);
        const std::string path = temp_path("stream_state_" + std::to_string(cut));
        CHECK_EQ(mgl_state_save(first.get(), path.c_str()), MGL_OK);
        CHECK_EQ(int64_t(read_bytes(path).size()), mgl_state_size(first.get()));
        mgl_state *loaded = nullptr;
        CHECK_EQ(mgl_state_load(m.get(), path.c_str(), &loaded), MGL_OK);
        StatePtr loaded_ptr(loaded);
        CHECK_EQ(mgl_state_position(loaded), int64_t(cut));
        CHECK(rel_diff(eval_all(m.get(), loaded, slice(tokens, cut, tokens.size()), heads), rest) <= 1e-5);
        CHECK(rel_diff(eval_all(m.get(), first.get(), slice(tokens, cut, tokens.size()), heads), rest) <= 1e-5);
    }

    // The state's last logits hold every head, also when fewer were asked for.
    StatePtr last = new_state(m.get());
    const std::vector<float> two = eval(m.get(), last.get(), tokens, 2, 1);
    std::vector<float> want_two;
    for (size_t r = 26; r < 28; ++r)
        want_two.insert(want_two.end(), expected.begin() + std::ptrdiff_t(r * row),
                        expected.begin() + std::ptrdiff_t(r * row + V));
    CHECK(rel_diff(two, want_two) <= 1e-5);
    for (int h = 0; h < heads; ++h) {
        const float *l = mgl_state_logits(last.get(), h);
        CHECK(l != nullptr);
        if (!l) continue;
        std::vector<float> got(l, l + V);
        std::vector<float> want(expected.end() - std::ptrdiff_t(row) + std::ptrdiff_t(size_t(h) * V),
                                expected.end() - std::ptrdiff_t(row) + std::ptrdiff_t(size_t(h + 1) * V));
        CHECK(rel_diff(got, want) <= 1e-5);
    }
    CHECK(mgl_state_logits(last.get(), heads) == nullptr);
}

TEST_CASE(last_rows_match_full_eval) {
    ModelPtr m = load(model_file("rows", stream_config(), 14));
    const std::vector<int32_t> tokens = random_tokens(384, 21, 15);
    StatePtr a = new_state(m.get());
    const std::vector<float> all = eval_all(m.get(), a.get(), tokens, 2);
    StatePtr b = new_state(m.get());
    const std::vector<float> last3 = eval(m.get(), b.get(), tokens, 3, 2);
    CHECK(rel_diff(last3, tail_rows(all, 2 * 384, 18)) <= 1e-6);
    StatePtr c = new_state(m.get());
    CHECK(eval(m.get(), c.get(), tokens, 0, 1).empty());
    CHECK(mgl_state_logits(c.get(), 2) != nullptr);
}

TEST_CASE(greedy_continuations_agree) {
    ModelPtr m = load(model_file("greedy", stream_config(), 16));
    const std::vector<int32_t> prompt = random_tokens(384, 21, 17);
    const mgl_generate_params p = greedy_params(20);
    std::vector<std::vector<int32_t>> runs;

    StatePtr s1 = new_state(m.get());
    runs.push_back(generate(m.get(), s1.get(), prompt, p).tokens);
    CHECK_EQ(mgl_state_position(s1.get()), int64_t(41));

    StatePtr s2 = new_state(m.get());
    eval_all(m.get(), s2.get(), prompt, 1);
    runs.push_back(generate(m.get(), s2.get(), {}, p).tokens);

    StatePtr s3 = new_state(m.get());
    for (int32_t t : slice(prompt, 0, 20)) eval_all(m.get(), s3.get(), {t}, 1);
    runs.push_back(generate(m.get(), s3.get(), slice(prompt, 20, 21), p).tokens);

    StatePtr s4 = new_state(m.get());
    ingest(m.get(), s4.get(), slice(prompt, 0, 16));
    const std::string path = temp_path("greedy_state");
    CHECK_EQ(mgl_state_save(s4.get(), path.c_str()), MGL_OK);
    mgl_state *loaded = nullptr;
    CHECK_EQ(mgl_state_load(m.get(), path.c_str(), &loaded), MGL_OK);
    StatePtr s5(loaded);
    runs.push_back(generate(m.get(), s5.get(), slice(prompt, 16, 21), p).tokens);

    CHECK_EQ(runs[0].size(), size_t(20));
    for (size_t i = 1; i < runs.size(); ++i) CHECK_EQ(runs[i], runs[0]);

    // Greedy picks the arg max of the state's logits each time.
    StatePtr s6 = new_state(m.get());
    const std::vector<float> l = eval(m.get(), s6.get(), prompt, 1, 1);
    CHECK_EQ(int32_t(std::max_element(l.begin(), l.end()) - l.begin()), runs[0][0]);
}

// Chunks longer than one segment (512 rows) and attention over several query tiles.
TEST_CASE(long_chunks_split_into_segments_agree) {
    TinyConfig cfg;
    cfg.chunk_size = 1024;
    cfg.n_layers = 1;
    ModelPtr m = load(model_file("long_chunk", cfg, 18), 3);
    const std::vector<int32_t> tokens = random_tokens(384, 1100, 19);
    StatePtr whole = new_state(m.get());
    const std::vector<float> expected = eval_all(m.get(), whole.get(), tokens, 1);
    StatePtr pieces = new_state(m.get());
    const std::vector<float> got =
        eval_pieces(m.get(), pieces.get(), tokens, {1, 64, 65, 130, 600, 1023, 1024, 1030, 1100}, 1);
    CHECK(rel_diff(got, expected) <= 1e-5);
    StatePtr stepped = new_state(m.get());
    ingest(m.get(), stepped.get(), slice(tokens, 0, 1000));
    std::vector<size_t> every;
    for (size_t i = 1001; i <= 1100; ++i) every.push_back(i - 1000);
    CHECK(rel_diff(eval_pieces(m.get(), stepped.get(), slice(tokens, 1000, 1100), every, 1),
                   tail_rows(expected, 384, 1000)) <= 1e-5);
    // The thread count does not change the results.
    CHECK_EQ(mgl_model_set_threads(m.get(), 1), MGL_OK);
    StatePtr single = new_state(m.get());
    CHECK(rel_diff(eval_all(m.get(), single.get(), tokens, 1), expected) <= 1e-5);
}

TEST_CASE(quantized_weights_run) {
    for (mgl::DType type : {mgl::DType::F16, mgl::DType::BF16, mgl::DType::Q8_0}) {
        TinyConfig cfg;
        cfg.weight_type = type;
        cfg.mtp_heads = 2;
        ModelPtr m = load(model_file(std::string("quant_") + mgl::dtype_name(type), cfg, 20));
        const std::vector<int32_t> tokens = random_tokens(384, 20, 21);
        StatePtr a = new_state(m.get());
        const std::vector<float> all = eval_all(m.get(), a.get(), tokens, 2);
        StatePtr b = new_state(m.get());
        std::vector<size_t> every;
        for (size_t i = 1; i <= tokens.size(); ++i) every.push_back(i);
        CHECK(rel_diff(eval_pieces(m.get(), b.get(), tokens, every, 2), all) <= (type == mgl::DType::Q8_0 ? 3e-2 : 1e-5));
        bool finite = true;
        for (float x : all) finite = finite && std::isfinite(x);
        CHECK(finite);
    }
}

TEST_CASE(concurrent_calls_on_one_model_agree_with_serial_ones) {
    TinyConfig cfg = stream_config();
    cfg.chunk_size = 16;
    ModelPtr m = load(model_file("threads", cfg, 53), 2);
    std::vector<std::vector<int32_t>> inputs;
    std::vector<std::vector<float>> serial;
    for (uint32_t i = 0; i < 4; ++i) {
        inputs.push_back(random_tokens(384, 90, 60 + i));
        StatePtr s = new_state(m.get());
        serial.push_back(eval_all(m.get(), s.get(), inputs.back(), 2));
    }
    std::vector<std::vector<float>> parallel(4);
    std::vector<std::thread> workers;
    for (size_t i = 0; i < 4; ++i)
        workers.emplace_back([&, i] {
            StatePtr s = new_state(m.get());
            // Mixed call sizes so that segments of different calls interleave.
            std::vector<float> all;
            size_t begin = 0;
            for (size_t end : {7, 8, 40, 41, 90}) {
                std::vector<float> l = eval_all(m.get(), s.get(), slice(inputs[i], begin, end), 2);
                all.insert(all.end(), l.begin(), l.end());
                begin = end;
            }
            parallel[i] = std::move(all);
        });
    for (std::thread &t : workers) t.join();
    for (size_t i = 0; i < 4; ++i) CHECK(rel_diff(parallel[i], serial[i]) <= 1e-5);
}

// ------------------------------------------------------------------------------------------
// States

TEST_CASE(clone_is_independent_and_reset_blanks) {
    ModelPtr m = load(model_file("clone", stream_config(), 22));
    const std::vector<int32_t> tokens = random_tokens(384, 20, 23);
    StatePtr fresh = new_state(m.get());
    const std::vector<float> expected = eval_all(m.get(), fresh.get(), tokens, 1);

    StatePtr original = new_state(m.get());
    eval_all(m.get(), original.get(), slice(tokens, 0, 11), 1);
    mgl_state *copy = nullptr;
    CHECK_EQ(mgl_state_clone(original.get(), &copy), MGL_OK);
    StatePtr clone(copy);
    CHECK_EQ(mgl_state_position(copy), int64_t(11));
    CHECK(mgl_state_logits(copy, 0) != nullptr);
    // Advancing the clone with other tokens leaves the original untouched.
    eval_all(m.get(), copy, random_tokens(384, 9, 24), 1);
    CHECK(rel_diff(eval_all(m.get(), original.get(), slice(tokens, 11, 20), 1), tail_rows(expected, 384, 11)) <= 1e-6);

    mgl_state_reset(copy);
    CHECK_EQ(mgl_state_position(copy), int64_t(0));
    CHECK(mgl_state_logits(copy, 0) == nullptr);
    CHECK(rel_diff(eval_all(m.get(), copy, tokens, 1), expected) <= 1e-6);
}

TEST_CASE(state_size_is_constant_at_chunk_boundaries) {
    ModelPtr m = load(model_file("size", TinyConfig(), 25));
    const mgl_model_info info = info_of(m.get());
    StatePtr s = new_state(m.get());
    CHECK_EQ(mgl_state_size(s.get()), info.state_bytes);
    ingest(m.get(), s.get(), random_tokens(384, 8, 26));
    const int64_t one_chunk = mgl_state_size(s.get());
    ingest(m.get(), s.get(), random_tokens(384, 3, 27));
    // Inside a chunk the keys and values of the chunk's rows are part of the state.
    CHECK_EQ(mgl_state_size(s.get()), one_chunk + 3 * 2 * (16 + 32) * 4);
    ingest(m.get(), s.get(), random_tokens(384, 29, 28));
    CHECK_EQ(mgl_state_position(s.get()), int64_t(40));
    CHECK_EQ(mgl_state_size(s.get()), one_chunk);
    CHECK_EQ(one_chunk, info.state_bytes);
}

TEST_CASE(state_of_another_model_is_a_mismatch) {
    ModelPtr a = load(model_file("owner_a", TinyConfig(), 29));
    ModelPtr b = load(model_file("owner_b", TinyConfig(), 30));
    StatePtr s = new_state(a.get());
    ingest(a.get(), s.get(), random_tokens(384, 5, 31));
    const std::string path = temp_path("owner_state");
    CHECK_EQ(mgl_state_save(s.get(), path.c_str()), MGL_OK);
    mgl_state *out = nullptr;
    CHECK_EQ(mgl_state_load(b.get(), path.c_str(), &out), MGL_ERR_MISMATCH);
    const std::string message = mgl_last_error();  // valid until the next call on this thread
    CHECK(out == nullptr);
    char fa[24], fb[24];
    std::snprintf(fa, sizeof fa, "%016llx", static_cast<unsigned long long>(info_of(a.get()).fingerprint));
    std::snprintf(fb, sizeof fb, "%016llx", static_cast<unsigned long long>(info_of(b.get()).fingerprint));
    CHECK(contains(message, fa));
    CHECK(contains(message, fb));
    // A state of one model cannot run on another.
    const int32_t token = 1;
    CHECK_EQ(mgl_ingest(b.get(), s.get(), &token, 1, nullptr, nullptr), MGL_ERR_INVALID_ARG);
}

TEST_CASE(corrupt_state_files_are_rejected) {
    ModelPtr m = load(model_file("corrupt", TinyConfig(), 32));
    StatePtr s = new_state(m.get());
    ingest(m.get(), s.get(), random_tokens(384, 13, 33));
    const std::string path = temp_path("corrupt_state");
    CHECK_EQ(mgl_state_save(s.get(), path.c_str()), MGL_OK);
    const Bytes good = read_bytes(path);
    auto load_bytes = [&](const Bytes &bytes) {
        const std::string p = write_variant("corrupt_variant", bytes);
        mgl_state *out = nullptr;
        const mgl_status st = mgl_state_load(m.get(), p.c_str(), &out);
        StatePtr holder(out);
        return st;
    };
    CHECK_EQ(load_bytes(good), MGL_OK);
    CHECK_EQ(load_bytes(Bytes(good.begin(), good.begin() + 50)), MGL_ERR_FORMAT);
    CHECK_EQ(load_bytes(Bytes(good.begin(), good.end() - 1)), MGL_ERR_FORMAT);
    Bytes longer = good;
    longer.push_back(0);
    CHECK_EQ(load_bytes(longer), MGL_ERR_FORMAT);
    Bytes flipped = good;
    flipped[good.size() / 2] ^= 0x40;
    CHECK_EQ(load_bytes(flipped), MGL_ERR_FORMAT);
    CHECK(contains(mgl_last_error(), "checksum"));
    Bytes magic = good;
    magic[0] = 'X';
    CHECK_EQ(load_bytes(magic), MGL_ERR_FORMAT);
    CHECK_EQ(load_bytes(Bytes()), MGL_ERR_FORMAT);
    mgl_state *out = nullptr;
    CHECK_EQ(mgl_state_load(m.get(), temp_path("no_such_state").c_str(), &out), MGL_ERR_IO);
}

TEST_CASE(fuzzed_state_files_fail_cleanly) {
    ModelPtr m = load(model_file("fuzz", TinyConfig(), 34));
    StatePtr s = new_state(m.get(), MGL_STATE_TSN_REFRESH);
    ingest(m.get(), s.get(), random_tokens(384, 21, 35));
    const std::string path = temp_path("fuzz_state");
    CHECK_EQ(mgl_state_save(s.get(), path.c_str()), MGL_OK);
    const Bytes good = read_bytes(path);
    std::mt19937 rng(36);
    int ok = 0, rejected = 0;
    for (int i = 0; i < 500; ++i) {
        Bytes b = good;
        switch (rng() % 4) {
            case 0:  // flip bytes
                for (int k = 0, n = 1 + int(rng() % 4); k < n; ++k) b[rng() % b.size()] ^= uint8_t(1 + rng() % 255);
                break;
            case 1:  // truncate
                b.resize(rng() % b.size());
                break;
            case 2:  // garbage appended
                for (int k = 0, n = 1 + int(rng() % 64); k < n; ++k) b.push_back(uint8_t(rng()));
                break;
            default:  // header field overwritten with a random 32-bit value
                if (b.size() >= 80) {
                    const uint32_t v = uint32_t(rng());
                    std::memcpy(&b[(rng() % 19) * 4 + 4], &v, 4);
                }
                break;
        }
        const std::string p = write_variant("fuzz_variant", b);
        mgl_state *out = nullptr;
        const mgl_status st = mgl_state_load(m.get(), p.c_str(), &out);
        StatePtr holder(out);
        if (st == MGL_OK) {
            ++ok;
            CHECK(out != nullptr);
            const int32_t token = 5;
            CHECK_EQ(mgl_eval(m.get(), out, &token, 1, 0, 1, nullptr), MGL_OK);
        } else {
            ++rejected;
            CHECK(out == nullptr);
            CHECK(st == MGL_ERR_FORMAT || st == MGL_ERR_UNSUPPORTED || st == MGL_ERR_MISMATCH);
            CHECK(std::strlen(mgl_last_error()) > 0);
        }
    }
    CHECK(rejected > 450);
}

TEST_CASE(save_is_atomic_and_leaves_no_temporary_files) {
    ModelPtr m = load(model_file("atomic", TinyConfig(), 37));
    StatePtr s = new_state(m.get());
    ingest(m.get(), s.get(), random_tokens(384, 6, 38));
    const std::string path = temp_path("atomic_state");
    CHECK_EQ(mgl_state_save(s.get(), path.c_str()), MGL_OK);
    CHECK_EQ(mgl_state_save(s.get(), path.c_str()), MGL_OK);  // replaces the existing file
    CHECK_EQ(int64_t(read_bytes(path).size()), mgl_state_size(s.get()));
    // A folder that does not exist: an I/O error, nothing left behind.
    const std::string bad = temp_path("no_such_dir") + "/state";
    CHECK_EQ(mgl_state_save(s.get(), bad.c_str()), MGL_ERR_IO);
}

// ------------------------------------------------------------------------------------------
// Arguments, cancellation

TEST_CASE(invalid_arguments_are_reported) {
    ModelPtr m = load(model_file("args", stream_config(), 39));
    StatePtr s = new_state(m.get());
    std::vector<int32_t> tokens(20, 1);
    tokens[12] = 40000;
    std::vector<float> out(20 * 384);
    CHECK_EQ(mgl_eval(m.get(), s.get(), tokens.data(), tokens.size(), 1, 1, out.data()), MGL_ERR_INVALID_ARG);
    CHECK(contains(mgl_last_error(), "token 40000 at index 12 is out of range [0, 384)"));
    CHECK_EQ(mgl_state_position(s.get()), int64_t(0));  // nothing consumed
    tokens[12] = -1;
    CHECK_EQ(mgl_ingest(m.get(), s.get(), tokens.data(), tokens.size(), nullptr, nullptr), MGL_ERR_INVALID_ARG);
    tokens[12] = 1;
    CHECK_EQ(mgl_eval(m.get(), s.get(), tokens.data(), 2, 3, 1, out.data()), MGL_ERR_INVALID_ARG);  // n_rows > n
    CHECK_EQ(mgl_eval(m.get(), s.get(), tokens.data(), 2, 1, 0, out.data()), MGL_ERR_INVALID_ARG);
    CHECK_EQ(mgl_eval(m.get(), s.get(), tokens.data(), 2, 1, 4, out.data()), MGL_ERR_INVALID_ARG);
    CHECK_EQ(mgl_eval(m.get(), s.get(), tokens.data(), 2, 1, 1, nullptr), MGL_ERR_INVALID_ARG);
    CHECK_EQ(mgl_eval(m.get(), nullptr, tokens.data(), 2, 1, 1, out.data()), MGL_ERR_INVALID_ARG);
    CHECK_EQ(mgl_eval(m.get(), s.get(), nullptr, 2, 0, 1, nullptr), MGL_ERR_INVALID_ARG);
    CHECK_EQ(mgl_ingest(m.get(), s.get(), nullptr, 0, nullptr, nullptr), MGL_OK);  // empty input
    CHECK_EQ(mgl_state_position(s.get()), int64_t(0));
    mgl_state *bad = nullptr;
    CHECK_EQ(mgl_state_create(m.get(), 8, &bad), MGL_ERR_INVALID_ARG);
    CHECK_EQ(mgl_model_load(nullptr, nullptr, nullptr), MGL_ERR_INVALID_ARG);
    double nll = 0;
    int64_t scored = 0;
    CHECK_EQ(mgl_score(m.get(), s.get(), tokens.data(), 3, nullptr, &scored, nullptr, nullptr), MGL_ERR_INVALID_ARG);
    CHECK_EQ(mgl_score(m.get(), s.get(), tokens.data(), 1, &nll, &scored, nullptr, nullptr), MGL_OK);
    CHECK_EQ(scored, int64_t(0));
    // Generation needs a prompt or logits in the state.
    StatePtr blank = new_state(m.get());
    mgl_generate_params p = greedy_params(3);
    CHECK_EQ(mgl_generate(m.get(), blank.get(), nullptr, 0, &p, nullptr, nullptr, nullptr), MGL_ERR_INVALID_ARG);
    CHECK(mgl_token_piece(m.get(), 384) == nullptr);
    CHECK(std::string(mgl_token_piece(m.get(), 383)) == "<|endoftext|>");
    CHECK(std::string(mgl_status_name(MGL_ERR_MISMATCH)) == "MGL_ERR_MISMATCH");
    // Tokenizer wrappers follow the two-call convention.
    const char *text = "hello there";
    size_t n = 0;
    CHECK_EQ(mgl_tokenize(m.get(), text, std::strlen(text), 0, nullptr, 0, &n), MGL_OK);
    CHECK(n > 0);
    std::vector<int32_t> ids(n);
    size_t n2 = 0;
    if (n > 1) {
        ids.assign(n, -7);
        CHECK_EQ(mgl_tokenize(m.get(), text, std::strlen(text), 0, ids.data(), n - 1, &n2), MGL_OK);
        CHECK_EQ(n2, n);
        CHECK_EQ(ids[0], -7);  // too small: nothing written
    }
    CHECK_EQ(mgl_tokenize(m.get(), text, std::strlen(text), 0, ids.data(), n, &n2), MGL_OK);
    size_t bytes = 0;
    CHECK_EQ(mgl_detokenize(m.get(), ids.data(), n, 0, nullptr, 0, &bytes), MGL_OK);
    std::string back(bytes, '\0');
    CHECK_EQ(mgl_detokenize(m.get(), ids.data(), n, 0, &back[0], bytes, &bytes), MGL_OK);
    CHECK_EQ(back, std::string(text));
}

namespace {
struct CancelAt {
    int64_t threshold;
    std::vector<std::pair<int64_t, int64_t>> calls;
};
int cancel_progress(int64_t done, int64_t total, void *user) {
    CancelAt &c = *static_cast<CancelAt *>(user);
    c.calls.push_back({done, total});
    return done >= c.threshold ? 1 : 0;
}
}  // namespace

TEST_CASE(cancel_during_ingest_keeps_a_consistent_state) {
    ModelPtr m = load(model_file("cancel", TinyConfig(), 40));
    const std::vector<int32_t> tokens = random_tokens(384, 50, 41);
    StatePtr plain = new_state(m.get());
    const std::vector<float> expected = eval_all(m.get(), plain.get(), tokens, 1);

    StatePtr s = new_state(m.get());
    eval_all(m.get(), s.get(), slice(tokens, 0, 3), 1);
    CancelAt cancel{13, {}};
    const std::vector<int32_t> rest = slice(tokens, 3, 49);
    CHECK_EQ(mgl_ingest(m.get(), s.get(), rest.data(), rest.size(), cancel_progress, &cancel), MGL_ERR_CANCELLED);
    // Progress after each chunk: 5 tokens reach position 8, then 8 more reach 16 (cancelled).
    CHECK_EQ(cancel.calls.size(), size_t(2));
    CHECK(cancel.calls.size() == 2 && cancel.calls[0] == std::make_pair(int64_t(5), int64_t(46)));
    CHECK_EQ(mgl_state_position(s.get()), int64_t(16));
    ingest(m.get(), s.get(), slice(tokens, 16, 49));
    CHECK(rel_diff(eval_all(m.get(), s.get(), slice(tokens, 49, 50), 1), tail_rows(expected, 384, 49)) <= 1e-5);

    // Uncancelled: the last call reports the total.
    CancelAt never{1 << 30, {}};
    StatePtr t = new_state(m.get());
    CHECK_EQ(mgl_ingest(m.get(), t.get(), tokens.data(), tokens.size(), cancel_progress, &never), MGL_OK);
    CHECK(!never.calls.empty() && never.calls.back() == std::make_pair(int64_t(50), int64_t(50)));
    CHECK_EQ(never.calls.size(), size_t(7));  // 6 full chunks, then the last 2 tokens
}

TEST_CASE(score_sums_next_token_nll) {
    ModelPtr m = load(model_file("score", TinyConfig(), 42));
    const std::vector<int32_t> tokens = random_tokens(384, 150, 43);  // > 2 score blocks
    StatePtr a = new_state(m.get());
    const std::vector<float> logits = eval_all(m.get(), a.get(), tokens, 1);
    double expected = 0;
    for (size_t i = 0; i + 1 < tokens.size(); ++i) {
        const float *l = logits.data() + i * 384;
        const double mx = *std::max_element(l, l + 384);
        double sum = 0;
        for (int k = 0; k < 384; ++k) sum += std::exp(double(l[k]) - mx);
        expected += std::log(sum) + mx - double(l[tokens[i + 1]]);
    }
    StatePtr b = new_state(m.get());
    double nll = 0;
    int64_t scored = 0;
    CHECK_EQ(mgl_score(m.get(), b.get(), tokens.data(), tokens.size(), &nll, &scored, nullptr, nullptr), MGL_OK);
    CHECK_EQ(scored, int64_t(149));
    CHECK_NEAR(nll, expected, 1e-5 * expected);
    CHECK_EQ(mgl_state_position(b.get()), int64_t(150));
    // The last position's head-1 logits are kept, so generation can continue from them.
    const float *last = mgl_state_logits(b.get(), 0);
    CHECK(last != nullptr);
    if (last) CHECK(rel_diff(std::vector<float>(last, last + 384), tail_rows(logits, 384, 149)) <= 1e-5);
}

// ------------------------------------------------------------------------------------------
// Refresh mode

TEST_CASE(refresh_mode_matches_streaming_until_8_chunks_then_differs) {
    TinyConfig cfg;
    cfg.chunk_size = 4;
    ModelPtr m = load(model_file("refresh", cfg, 44));
    const std::vector<int32_t> tokens = random_tokens(384, 60, 45);
    StatePtr plain = new_state(m.get());
    const std::vector<float> streamed = eval_all(m.get(), plain.get(), tokens, 1);
    StatePtr refresh = new_state(m.get(), MGL_STATE_TSN_REFRESH);
    CHECK_EQ(mgl_state_flags(refresh.get()), MGL_STATE_TSN_REFRESH);
    const std::vector<float> refreshed = eval_all(m.get(), refresh.get(), tokens, 1);
    const size_t V = 384, boundary = 32;  // first refresh after token 8C
    CHECK(rel_diff(std::vector<float>(refreshed.begin(), refreshed.begin() + std::ptrdiff_t(boundary * V)),
                   std::vector<float>(streamed.begin(), streamed.begin() + std::ptrdiff_t(boundary * V))) == 0.0);
    CHECK(rel_diff(tail_rows(refreshed, V, boundary), tail_rows(streamed, V, boundary)) > 1e-3);

    // Refreshing does not depend on how the input is split, nor on save/load in between.
    StatePtr stepped = new_state(m.get(), MGL_STATE_TSN_REFRESH);
    CHECK(rel_diff(eval_pieces(m.get(), stepped.get(), tokens, {7, 31, 32, 33, 41, 45, 60}, 1), refreshed) <= 1e-5);
    StatePtr part = new_state(m.get(), MGL_STATE_TSN_REFRESH);
    ingest(m.get(), part.get(), slice(tokens, 0, 37));
    const std::string path = temp_path("refresh_state");
    CHECK_EQ(mgl_state_save(part.get(), path.c_str()), MGL_OK);
    // tsn_count restarts at 6C at every refresh (position 36 -> refresh at 32: 24 + 5).
    const Bytes saved = read_bytes(path);
    int64_t tsn_count = 0;
    std::memcpy(&tsn_count, &saved[64], 8);
    CHECK_EQ(tsn_count, int64_t(24 + 5));
    uint32_t history_len = 0;
    std::memcpy(&history_len, &saved[76], 4);
    CHECK_EQ(history_len, uint32_t(24));
    mgl_state *loaded = nullptr;
    CHECK_EQ(mgl_state_load(m.get(), path.c_str(), &loaded), MGL_OK);
    StatePtr loaded_ptr(loaded);
    CHECK_EQ(mgl_state_flags(loaded), MGL_STATE_TSN_REFRESH);
    CHECK(rel_diff(eval_all(m.get(), loaded, slice(tokens, 37, 60), 1), tail_rows(refreshed, V, 37)) <= 1e-5);
}

// ------------------------------------------------------------------------------------------
// Sampling and generation

TEST_CASE(sampler_is_deterministic_and_follows_its_filters) {
    std::vector<float> logits(50);
    std::mt19937 rng(46);
    for (float &l : logits) l = float(int(rng() % 1000)) / 250.0f;
    mgl_sampling_params p = mgl_sampling_default_params();
    p.temperature = 1.0f;
    p.seed = 1234;
    auto draw = [&](const mgl_sampling_params &params, int count) {
        mgl_sampler *s = nullptr;
        mgl_sampler_create(&params, &s);
        std::vector<int32_t> out;
        for (int i = 0; i < count; ++i) out.push_back(mgl_sampler_sample(s, logits.data(), 50, out.data(), out.size()));
        mgl_sampler_free(s);
        return out;
    };
    const std::vector<int32_t> a = draw(p, 200), b = draw(p, 200);
    CHECK_EQ(a, b);
    mgl_sampling_params other = p;
    other.seed = 1235;
    CHECK(draw(other, 200) != a);
    CHECK(std::set<int32_t>(a.begin(), a.end()).size() > 1);

    // Frequencies follow softmax(logits) with every filter off.
    std::vector<float> three = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
    mgl_sampling_params plain = p;
    plain.top_k = 0;
    plain.top_p = 1.0f;
    plain.min_p = 0.0f;
    auto frequencies = [&](const mgl_sampling_params &params) {
        mgl_sampler *s = nullptr;
        mgl_sampler_create(&params, &s);
        std::vector<double> f(3);
        for (int i = 0; i < 20000; ++i) f[size_t(mgl_sampler_sample(s, three.data(), 3, nullptr, 0))] += 1.0 / 20000;
        mgl_sampler_free(s);
        return f;
    };
    std::vector<double> f = frequencies(plain);
    CHECK_NEAR(f[0], 0.5, 0.02);
    CHECK_NEAR(f[1], 0.3, 0.02);
    CHECK_NEAR(f[2], 0.2, 0.02);
    mgl_sampling_params topk = plain;
    topk.top_k = 2;
    f = frequencies(topk);
    CHECK_EQ(f[2], 0.0);
    CHECK_NEAR(f[0], 0.625, 0.02);
    mgl_sampling_params topp = plain;
    topp.top_p = 0.6f;  // 0.5 < 0.6 <= 0.8: two tokens
    CHECK_EQ(frequencies(topp)[2], 0.0);
    mgl_sampling_params minp = plain;
    minp.min_p = 0.5f;  // threshold 0.25: token 2 (0.2) out
    CHECK_EQ(frequencies(minp)[2], 0.0);
    mgl_sampling_params cold = plain;
    cold.temperature = 0.05f;
    CHECK_NEAR(frequencies(cold)[0], 1.0, 1e-3);

    // Greedy with a repetition penalty: token 0 (2.0) was seen, 2.0 / 1.5 < 1.9.
    std::vector<float> close = {2.0f, 1.9f, -1.0f};
    mgl_sampling_params greedy = mgl_sampling_default_params();
    greedy.temperature = 0;
    mgl_sampler *s = nullptr;
    CHECK_EQ(mgl_sampler_create(&greedy, &s), MGL_OK);
    CHECK_EQ(mgl_sampler_sample(s, close.data(), 3, nullptr, 0), 0);
    // Greedy picks the first largest logit; NaN never wins; nothing above -inf gives token 0.
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> ties = {NAN, 1.0f, 3.0f, -inf, 3.0f, NAN};
    CHECK_EQ(mgl_sampler_sample(s, ties.data(), 6, nullptr, 0), 2);
    std::vector<float> nothing = {NAN, -inf, NAN};
    CHECK_EQ(mgl_sampler_sample(s, nothing.data(), 3, nullptr, 0), 0);
    std::vector<float> last(4099, -5.0f);
    last[4098] = -4.0f;
    CHECK_EQ(mgl_sampler_sample(s, last.data(), 4099, nullptr, 0), 4098);
    mgl_sampler_free(s);
    greedy.repeat_penalty = 1.5f;
    CHECK_EQ(mgl_sampler_create(&greedy, &s), MGL_OK);
    const int32_t seen = 0;
    CHECK_EQ(mgl_sampler_sample(s, close.data(), 3, &seen, 1), 1);
    CHECK_EQ(mgl_sampler_sample(s, close.data(), 0, &seen, 1), -1);
    mgl_sampler_free(s);
    mgl_sampling_params bad = plain;
    bad.temperature = NAN;
    CHECK_EQ(mgl_sampler_create(&bad, &s), MGL_ERR_INVALID_ARG);
}

TEST_CASE(generation_with_a_seed_is_reproducible) {
    ModelPtr m = load(model_file("seeded", TinyConfig(), 47));
    const std::vector<int32_t> prompt = random_tokens(384, 10, 48);
    mgl_generate_params p = mgl_generate_default_params();
    p.max_tokens = 30;
    p.stop_at_eos = 0;
    p.sampling.temperature = 1.5f;
    p.sampling.top_k = 0;
    p.sampling.seed = 99;
    StatePtr a = new_state(m.get()), b = new_state(m.get());
    const Generation ga = generate(m.get(), a.get(), prompt, p), gb = generate(m.get(), b.get(), prompt, p);
    CHECK_EQ(ga.status, MGL_OK);
    CHECK_EQ(ga.tokens, gb.tokens);
    CHECK_EQ(ga.result.n_tokens, 30);
    CHECK_EQ(ga.result.stop_reason, MGL_STOP_MAX_TOKENS);
    CHECK(ga.result.prompt_seconds >= 0 && ga.result.generate_seconds > 0);
    CHECK_EQ(mgl_state_position(a.get()), int64_t(40));
}

TEST_CASE(generation_stops_at_eos_and_at_the_callback) {
    TinyConfig cfg;
    ModelPtr m = load(model_file("eos", cfg, 49));
    const int32_t eos = info_of(m.get()).eos_token;
    // Find a seed whose sampled continuation reaches EOS within the budget.
    mgl_generate_params p = mgl_generate_default_params();
    p.max_tokens = 200;
    p.sampling.temperature = 3.0f;
    p.sampling.top_k = 0;
    p.sampling.top_p = 1.0f;
    p.sampling.min_p = 0.0f;
    bool found = false;
    for (uint64_t seed = 0; seed < 20 && !found; ++seed) {
        p.sampling.seed = seed;
        StatePtr s = new_state(m.get());
        const Generation g = generate(m.get(), s.get(), {1, 2, 3}, p);
        if (g.result.stop_reason != MGL_STOP_EOS) continue;
        found = true;
        CHECK_EQ(g.tokens.back(), eos);
        CHECK(g.texts.back().find("<|endoftext|>") == std::string::npos);
        CHECK_EQ(mgl_state_position(s.get()), int64_t(3 + g.tokens.size()));
        CHECK_EQ(int(std::count(g.tokens.begin(), g.tokens.end(), eos)), 1);
    }
    CHECK(found);

    struct StopAfter {
        int left;
    } stop{4};
    auto cb = [](int32_t, const char *, size_t, void *user) -> int { return --static_cast<StopAfter *>(user)->left == 0; };
    StatePtr s = new_state(m.get());
    mgl_generate_result r;
    const std::vector<int32_t> prompt = {5, 6};
    mgl_generate_params g = greedy_params(50);
    CHECK_EQ(mgl_generate(m.get(), s.get(), prompt.data(), 2, &g, cb, &stop, &r), MGL_OK);
    CHECK_EQ(r.stop_reason, MGL_STOP_CALLBACK);
    CHECK_EQ(r.n_tokens, 4);
    CHECK_EQ(mgl_state_position(s.get()), int64_t(6));
}

// True when some chunk boundary of the emitted text falls inside a UTF-8 sequence.
static bool splits_utf8(const std::vector<std::string> &texts) {
    std::string all;
    std::vector<size_t> cuts;
    for (const std::string &t : texts) {
        all += t;
        cuts.push_back(all.size());
    }
    cuts.pop_back();
    for (size_t cut : cuts) {
        if (cut == 0 || cut >= all.size() || (static_cast<unsigned char>(all[cut]) & 0xc0) != 0x80) continue;
        size_t lead = cut;
        while (lead > 0 && cut - lead < 3 && (static_cast<unsigned char>(all[lead - 1]) & 0xc0) == 0x80) --lead;
        if (lead == 0) continue;
        const unsigned char b = static_cast<unsigned char>(all[lead - 1]);
        const size_t need = b >= 0xf0 && b <= 0xf4 ? 4 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xc2 && b < 0xe0 ? 2 : 1;
        size_t have = 1;
        while (lead - 1 + have < all.size() && have < need && (static_cast<unsigned char>(all[lead - 1 + have]) & 0xc0) == 0x80)
            ++have;
        if (need > 1 && have == need && lead - 1 + need > cut) return true;
    }
    return false;
}

TEST_CASE(stop_strings_across_token_boundaries) {
    ModelPtr m = load(model_file("stops", TinyConfig(), 50));
    const std::vector<int32_t> prompt = {72, 101, 108};
    mgl_generate_params p = greedy_params(40);
    StatePtr base = new_state(m.get());
    const Generation full = generate(m.get(), base.get(), prompt, p);
    const std::string text = full.joined();
    // The emitted text is the concatenation of the tokens' bytes.
    std::vector<size_t> ends;
    std::string bytes;
    for (int32_t t : full.tokens) {
        size_t n = 0;
        mgl_detokenize(m.get(), &t, 1, 0, nullptr, 0, &n);
        std::string piece(n, '\0');
        mgl_detokenize(m.get(), &t, 1, 0, n ? &piece[0] : nullptr, n, &n);
        bytes += piece;
        ends.push_back(bytes.size());
    }
    CHECK_EQ(text, bytes);
    // A stop string made of the end of one token and the start of the next.
    size_t boundary = 0;
    for (size_t i = 0; i + 1 < ends.size(); ++i)
        if (ends[i] >= 2 && ends[i + 1] >= ends[i] + 2 && (i == 0 || ends[i] - ends[i - 1] >= 2)) {
            boundary = ends[i];
            break;
        }
    CHECK(boundary > 0);
    if (boundary == 0) return;
    const std::string stop = text.substr(boundary - 2, 4);
    const size_t at = text.find(stop);
    const char *stops[] = {"zzzzzzzzzzzzzzzzzzzzzzzz", stop.c_str()};
    p.stop = stops;
    p.n_stop = 2;
    StatePtr s = new_state(m.get());
    const Generation g = generate(m.get(), s.get(), prompt, p);
    CHECK_EQ(g.status, MGL_OK);
    CHECK_EQ(g.result.stop_reason, MGL_STOP_STRING);
    CHECK_EQ(g.joined(), text.substr(0, at));
    for (const std::string &t : g.texts) CHECK(t.find(stop) == std::string::npos);
    // The token that completed the stop string is the last one generated (and consumed).
    size_t completing = 0;
    while (ends[completing] < at + stop.size()) ++completing;
    CHECK_EQ(g.tokens.size(), completing + 1);
    CHECK_EQ(mgl_state_position(s.get()), int64_t(prompt.size() + completing + 1));
}

TEST_CASE(streamed_text_never_splits_utf8_characters) {
    ModelPtr m = load(model_file("utf8", TinyConfig(), 51));
    mgl_generate_params p = mgl_generate_default_params();
    p.max_tokens = 300;
    p.stop_at_eos = 0;
    p.sampling.temperature = 5.0f;  // close to uniform: many raw byte tokens
    p.sampling.top_k = 0;
    p.sampling.top_p = 1.0f;
    p.sampling.min_p = 0.0f;
    int multibyte_spanning_tokens = 0;
    for (uint64_t seed = 0; seed < 8; ++seed) {
        p.sampling.seed = seed;
        StatePtr s = new_state(m.get());
        const Generation g = generate(m.get(), s.get(), {1}, p);
        CHECK_EQ(g.status, MGL_OK);
        CHECK(!splits_utf8(g.texts));
        // Per-token bytes do split characters, so the stream really held text back.
        std::vector<std::string> raw;
        for (int32_t t : g.tokens) {
            size_t n = 0;
            mgl_detokenize(m.get(), &t, 1, 0, nullptr, 0, &n);
            std::string piece(n, '\0');
            mgl_detokenize(m.get(), &t, 1, 0, n ? &piece[0] : nullptr, n, &n);
            raw.push_back(piece);
        }
        if (splits_utf8(raw)) ++multibyte_spanning_tokens;
        std::string joined;
        for (const std::string &r : raw) joined += r;
        CHECK_EQ(g.joined(), joined);  // max_tokens flushes everything held back
    }
    CHECK(multibyte_spanning_tokens > 0);
}

// ------------------------------------------------------------------------------------------
// Memory

TEST_CASE(memory_does_not_grow_with_the_number_of_tokens) {
    TinyConfig cfg;
    cfg.n_layers = 1;
    cfg.chunk_size = 64;
    cfg.d_model = 32;
    ModelPtr m = load(model_file("memory", cfg, 52), 1);
    StatePtr s = new_state(m.get());
    const std::vector<int32_t> block = random_tokens(384, 10000, 53);
    ingest(m.get(), s.get(), block);
    const int64_t after_10k = peak_rss_kib();
    const auto start = std::chrono::steady_clock::now();
    for (int i = 1; i < 100; ++i) ingest(m.get(), s.get(), block);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const int64_t after_1m = peak_rss_kib();
    std::printf("  1M tokens ingested in %.2f s, peak RSS %lld KiB -> %lld KiB\n", seconds,
                static_cast<long long>(after_10k), static_cast<long long>(after_1m));
    CHECK_EQ(mgl_state_position(s.get()), int64_t(1000000));
    CHECK(after_10k > 0);
    CHECK(after_1m <= after_10k + after_10k / 10);
}

TEST_MAIN("test_model")
