// GGUF reader: valid files, every class of corruption, and a mutation fuzz loop.

#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <filesystem>

#include "gguf.h"
#include "test_util.h"
#include "tokenizer.h"

using mgl::DType;
using mgl::GgufFile;
using namespace mgl_test;

namespace {

using Bytes = std::vector<uint8_t>;

const std::vector<float> kAlphaValues = {1.5f, -2.0f, 0.25f, 3.0f, -0.125f, 7.0f, 8.5f, -9.75f};

// A small valid file: a few keys of several types and two tensors whose data sizes are
// multiples of 32, so the file ends exactly at the end of the last tensor.
GgufWriter small_writer() {
    GgufWriter w;
    w.add_string("general.architecture", "megalodon");
    w.add_string("general.name", "small");
    w.add_u32("megalodon.block_count", 3);
    w.add_i32("megalodon.signed_key", -5);
    w.add_f32("megalodon.norm_eps", 1e-5f);
    w.add_bool("megalodon.swiglu", true);
    w.add_u8("megalodon.small_uint", 200);
    w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "cd"});
    w.add_f32_array("tokenizer.ggml.scores", {0.5f, -1.0f, 2.0f});
    w.add_tensor("tensor_alpha", DType::F32, {4, 2}, kAlphaValues);
    std::vector<float> beta(16);
    for (int i = 0; i < 16; ++i) beta[size_t(i)] = 0.5f * float(i) - 3.0f;
    w.add_tensor("tensor_beta", DType::F16, {16}, beta);
    return w;
}

std::unique_ptr<GgufFile> open_bytes(const Bytes &bytes, bool use_mmap = true, const std::string &name = "case.gguf") {
    const std::string path = temp_path(name);
    GgufWriter::write_file(path, bytes);
    return GgufFile::open(path, use_mmap);
}

size_t find_bytes(const Bytes &b, const std::string &s) {
    auto it = std::search(b.begin(), b.end(), s.begin(), s.end());
    if (it == b.end()) throw std::logic_error("test file lacks " + s);
    return size_t(it - b.begin());
}

template <class T> void put_at(Bytes &b, size_t off, T v) { std::memcpy(&b[off], &v, sizeof v); }

// Offset of the first byte after the name of tensor `name` in its tensor info (n_dims field).
size_t tensor_info_at(const Bytes &b, const std::string &name) {
    // The name also appears nowhere else in the small file.
    return find_bytes(b, name) + name.size();
}

// Offset of the value type field of key `key`.
size_t key_type_at(const Bytes &b, const std::string &key) { return find_bytes(b, key) + key.size(); }

std::string expect_error(const Bytes &bytes, mgl_status status) {
    std::string msg;
    try {
        open_bytes(bytes);
        report_failure(__FILE__, __LINE__, "corrupt file opened without error");
    } catch (const mgl::Error &e) {
        msg = e.what();
        if (e.status != status)
            report_failure(__FILE__, __LINE__, "status " + show(e.status) + " instead of " + show(status) + ": " + msg);
    }
    return msg;
}

}  // namespace

TEST_CASE(valid_small_file_reads_back) {
    for (bool use_mmap : {true, false}) {
        auto f = open_bytes(small_writer().bytes(), use_mmap);
        CHECK_EQ(f->version(), 3u);
        CHECK_EQ(*f->get_string("general.architecture"), std::string("megalodon"));
        CHECK_EQ(*f->get_uint("megalodon.block_count"), 3u);
        CHECK_EQ(*f->get_uint("megalodon.small_uint"), 200u);
        CHECK_NEAR(*f->get_float("megalodon.norm_eps"), 1e-5, 1e-12);
        CHECK_NEAR(*f->get_float("megalodon.block_count"), 3.0, 0);
        CHECK_EQ(*f->get_bool("megalodon.swiglu"), true);
        CHECK(!f->get_uint("megalodon.absent").has_value());
        CHECK(f->get_string_array("megalodon.absent") == nullptr);
        CHECK_EQ(*f->get_string_array("tokenizer.ggml.tokens"), (std::vector<std::string>{"a", "b", "cd"}));
        CHECK_EQ(*f->get_number_array("tokenizer.ggml.scores"), (std::vector<double>{0.5, -1.0, 2.0}));
        CHECK_EQ(f->find("tokenizer.ggml.tokens")->count, size_t(3));

        const mgl::GgufTensor *a = f->tensor("tensor_alpha");
        CHECK(a != nullptr);
        CHECK_EQ(a->n_dims, 2);
        CHECK_EQ(a->ne[0], 4);
        CHECK_EQ(a->ne[1], 2);
        CHECK_EQ(a->n_elements(), 8);
        CHECK_EQ(a->nbytes, size_t(32));
        CHECK(a->type == DType::F32);
        std::vector<float> values(8);
        std::memcpy(values.data(), a->data, 32);
        CHECK_EQ(values, kAlphaValues);

        const mgl::GgufTensor *b = f->tensor("tensor_beta");
        CHECK(b != nullptr && b->type == DType::F16 && b->nbytes == 32);
        CHECK_EQ(b->offset % 32, 0u);
        for (int i = 0; i < 16; ++i) {
            uint16_t h;
            std::memcpy(&h, b->data + 2 * i, 2);
            CHECK_EQ(f16_to_f32(h), 0.5f * float(i) - 3.0f);
        }
        CHECK(f->tensor("missing") == nullptr);
        CHECK_EQ(f->tensors().size(), size_t(2));
    }
}

TEST_CASE(typed_getters_reject_wrong_types) {
    auto f = open_bytes(small_writer().bytes());
    CHECK_THROWS_STATUS(f->get_uint("general.architecture"), MGL_ERR_FORMAT);
    CHECK_THROWS_STATUS(f->get_uint("megalodon.signed_key"), MGL_ERR_FORMAT);  // negative
    CHECK_THROWS_STATUS(f->get_uint("megalodon.norm_eps"), MGL_ERR_FORMAT);
    CHECK_THROWS_STATUS(f->get_bool("megalodon.block_count"), MGL_ERR_FORMAT);
    CHECK_THROWS_STATUS(f->get_string("megalodon.block_count"), MGL_ERR_FORMAT);
    CHECK_THROWS_STATUS(f->get_float("general.architecture"), MGL_ERR_FORMAT);
    CHECK_THROWS_STATUS(f->get_string_array("tokenizer.ggml.scores"), MGL_ERR_FORMAT);
    CHECK_THROWS_STATUS(f->get_number_array("tokenizer.ggml.tokens"), MGL_ERR_FORMAT);
    std::string msg = error_message([&] { f->get_uint("general.architecture"); });
    CHECK(contains(msg, "general.architecture") && contains(msg, "string"));
}

TEST_CASE(random_models_open_with_all_tensors) {
    for (const char *kind : {"gpt2", "llama"}) {
        TinyConfig cfg;
        cfg.tokenizer = kind;
        cfg.mtp_heads = 3;
        cfg.weight_type = DType::Q8_0;
        const std::string path = write_random_model(temp_path(std::string("model_") + kind + ".gguf"), cfg, 7);
        auto f = GgufFile::open(path, true);
        auto g = GgufFile::open(path, false);
        CHECK_EQ(f->fingerprint(), g->fingerprint());
        CHECK_EQ(*f->get_string("tokenizer.ggml.model"), std::string(kind));
        CHECK_EQ(f->get_string_array("tokenizer.ggml.tokens")->size(), size_t(cfg.n_vocab));
        // 1 embedding + 24 per layer (SwiGLU) + final norm (2) + output + 4 per extra head.
        CHECK_EQ(f->tensors().size(), size_t(1 + 24 * cfg.n_layers + 2 + 1 + 4 * 2));
        const mgl::GgufTensor *emb = f->tensor("token_embd.weight");
        CHECK(emb && emb->type == DType::Q8_0 && emb->ne[0] == 32 && emb->ne[1] == 384);
        CHECK_EQ(emb->nbytes, size_t(384 * 34));
        const mgl::GgufTensor *gamma = f->tensor("blk.1.cema.gamma");
        CHECK(gamma && gamma->type == DType::F32 && gamma->ne[0] == 2 && gamma->ne[1] == 4 && gamma->ne[2] == 32);
        CHECK(f->tensor("mtp.3.down.weight") != nullptr);
        for (size_t i = 0; i < f->tensors().size(); ++i)
            CHECK_EQ(std::memcmp(f->tensors()[i].data, g->tensors()[i].data, f->tensors()[i].nbytes), 0);
    }
}

TEST_CASE(version_2_is_accepted) {
    auto f = open_bytes(small_writer().bytes(2));
    CHECK_EQ(f->version(), 2u);
    CHECK(f->tensor("tensor_alpha") != nullptr);
}

TEST_CASE(other_alignment_and_nested_arrays) {
    GgufWriter w(64);
    w.add_u32("general.alignment", 64);
    ByteBuffer nested;  // array of 2 arrays of u32: [[1, 2], [3]]
    nested.put_u32(uint32_t(VT::ARRAY));
    nested.put_u64(2);
    nested.put_u32(uint32_t(VT::U32));
    nested.put_u64(2);
    nested.put_u32(1);
    nested.put_u32(2);
    nested.put_u32(uint32_t(VT::U32));
    nested.put_u64(1);
    nested.put_u32(3);
    w.add_raw_kv("extra.nested", VT::ARRAY, nested);
    w.add_u32("extra.after", 9);
    w.add_tensor("t0", DType::F32, {3}, {1, 2, 3});
    w.add_tensor("t1", DType::BF16, {5}, {1, 2, 3, 4, 5});
    auto f = open_bytes(w.bytes());
    CHECK_EQ(f->find("extra.nested")->count, size_t(2));
    CHECK_EQ(*f->get_uint("extra.after"), 9u);
    CHECK_EQ(f->tensor("t1")->offset, 64u);
    uint16_t h;
    std::memcpy(&h, f->tensor("t1")->data + 8, 2);
    CHECK_EQ(h, f32_to_bf16(5.0f));
}

TEST_CASE(fingerprint_identifies_model_content) {
    auto fp = [](const GgufWriter &w) { return open_bytes(w.bytes())->fingerprint(); };
    const uint64_t base = fp(small_writer());
    CHECK_EQ(fp(small_writer()), base);

    GgufWriter renamed;  // same identity, other display name and key order
    renamed.add_string_array("tokenizer.ggml.tokens", {"a", "b", "cd"});
    renamed.add_u8("megalodon.small_uint", 200);
    renamed.add_bool("megalodon.swiglu", true);
    renamed.add_f32("megalodon.norm_eps", 1e-5f);
    renamed.add_i32("megalodon.signed_key", -5);
    renamed.add_u32("megalodon.block_count", 3);
    renamed.add_string("general.name", "another name");
    renamed.add_string("general.architecture", "megalodon");
    renamed.add_f32_array("tokenizer.ggml.scores", {0.5f, -1.0f, 2.0f});
    std::vector<float> beta(16);
    for (int i = 0; i < 16; ++i) beta[size_t(i)] = 0.5f * float(i) - 3.0f;
    renamed.add_tensor("tensor_beta", DType::F16, {16}, beta);
    renamed.add_tensor("tensor_alpha", DType::F32, {4, 2}, kAlphaValues);
    CHECK_EQ(fp(renamed), base);

    Bytes b = small_writer().bytes();
    put_at<uint32_t>(b, key_type_at(b, "megalodon.block_count") + 4, 4);
    CHECK(open_bytes(b)->fingerprint() != base);

    b = small_writer().bytes();
    b[find_bytes(b, "cd")] = 'x';  // a tokenizer piece
    CHECK(open_bytes(b)->fingerprint() != base);

    b = small_writer().bytes();
    b[b.size() - 40] ^= 1;  // one weight of tensor_alpha (data ends 32 bytes before the file end)
    CHECK(open_bytes(b)->fingerprint() != base);

    // Large tensors are sampled at the start, middle and end only.
    auto big = [](size_t flip) {
        GgufWriter w;
        std::vector<float> v(4096, 1.0f);
        if (flip != size_t(-1)) v[flip] = 2.0f;
        w.add_tensor("big", DType::F32, {4096}, v);
        return open_bytes(w.bytes())->fingerprint();
    };
    const uint64_t big_base = big(size_t(-1));
    CHECK(big(0) != big_base);
    CHECK(big(2048) != big_base);
    CHECK(big(4095) != big_base);
    CHECK_EQ(big(1000), big_base);
}

TEST_CASE(io_errors) {
    CHECK_THROWS_STATUS(GgufFile::open(temp_path("does_not_exist.gguf"), true), MGL_ERR_IO);
    const std::string dir = temp_path("a_directory");
    std::filesystem::create_directories(dir);
    CHECK_THROWS_STATUS(GgufFile::open(dir, true), MGL_ERR_IO);
    CHECK_THROWS_STATUS(GgufFile::open(dir, false), MGL_ERR_IO);
    std::string msg = error_message([] { GgufFile::open(temp_path("does_not_exist.gguf"), true); });
    CHECK(contains(msg, "does_not_exist.gguf"));
}

TEST_CASE(truncated_at_every_byte) {
    const Bytes full = small_writer().bytes();
    for (bool use_mmap : {true, false}) {
        for (size_t len = 0; len < full.size(); ++len) {
            Bytes cut(full.begin(), full.begin() + long(len));
            try {
                open_bytes(cut, use_mmap);
                report_failure(__FILE__, __LINE__, "prefix of " + std::to_string(len) + " bytes opened");
            } catch (const mgl::Error &e) {
                if (e.status != MGL_ERR_FORMAT)
                    report_failure(__FILE__, __LINE__, "prefix " + std::to_string(len) + ": " + e.what());
            }
        }
    }
    // In the data section, the message names the tensor and the file size.
    Bytes cut(full.begin(), full.end() - 1);
    std::string msg = expect_error(cut, MGL_ERR_FORMAT);
    CHECK(contains(msg, "tensor 'tensor_beta' data [") &&
          contains(msg, "lies outside the file (size " + std::to_string(cut.size()) + ")"));
    CHECK(contains(msg, temp_path("case.gguf")));
}

TEST_CASE(truncated_model_file) {
    TinyConfig cfg;
    const std::string path = write_random_model(temp_path("trunc_model.gguf"), cfg, 3);
    auto f = GgufFile::open(path, true);
    Bytes full(f->file_size());
    {
        FILE *fp = std::fopen(path.c_str(), "rb");
        CHECK(std::fread(full.data(), 1, full.size(), fp) == full.size());
        std::fclose(fp);
    }
    // The last tensor's data ends within the final alignment padding.
    const mgl::GgufTensor &last = f->tensors().back();
    const size_t data_end = full.size() - ((32 - last.nbytes % 32) % 32);
    for (int k = 0; k < 300; ++k) {
        size_t len = size_t(double(data_end) * k / 300.0);
        CHECK_THROWS_STATUS(open_bytes(Bytes(full.begin(), full.begin() + long(len))), MGL_ERR_FORMAT);
    }
    CHECK(open_bytes(Bytes(full.begin(), full.begin() + long(data_end))) != nullptr);
}

TEST_CASE(bad_magic_and_version) {
    Bytes b = small_writer().bytes();
    b[0] = 'X';
    CHECK(contains(expect_error(b, MGL_ERR_FORMAT), "not a GGUF file"));
    CHECK(contains(expect_error(Bytes{}, MGL_ERR_FORMAT), "not a GGUF file"));
    for (uint32_t version : {0u, 1u, 4u, 0xFFFFFFFFu}) {
        b = small_writer().bytes();
        put_at<uint32_t>(b, 4, version);
        CHECK(contains(expect_error(b, MGL_ERR_UNSUPPORTED), "version " + std::to_string(version)));
    }
    b = small_writer().bytes();
    put_at<uint32_t>(b, 4, 0x03000000u);
    CHECK(contains(expect_error(b, MGL_ERR_UNSUPPORTED), "big-endian"));
}

TEST_CASE(huge_counts_in_header) {
    for (uint64_t v : {uint64_t(1) << 62, uint64_t(100000), ~uint64_t(0)}) {
        Bytes b = small_writer().bytes();
        put_at<uint64_t>(b, 8, v);  // tensor count
        CHECK(contains(expect_error(b, MGL_ERR_FORMAT), "tensor count"));
        b = small_writer().bytes();
        put_at<uint64_t>(b, 16, v);  // key/value count
        CHECK(contains(expect_error(b, MGL_ERR_FORMAT), "key/value count"));
    }
}

TEST_CASE(huge_string_lengths) {
    for (uint64_t len : {uint64_t(1) << 63, uint64_t(1) << 40, uint64_t(5000)}) {
        Bytes b = small_writer().bytes();
        put_at<uint64_t>(b, find_bytes(b, "megalodon.block_count") - 8, len);  // key length
        expect_error(b, MGL_ERR_FORMAT);
        b = small_writer().bytes();
        put_at<uint64_t>(b, key_type_at(b, "general.name") + 4, len);  // string value length
        CHECK(contains(expect_error(b, MGL_ERR_FORMAT), "general.name"));
        b = small_writer().bytes();
        put_at<uint64_t>(b, find_bytes(b, "tensor_beta") - 8, len);  // tensor name length
        expect_error(b, MGL_ERR_FORMAT);
        b = small_writer().bytes();
        put_at<uint64_t>(b, find_bytes(b, "cd") - 8, len);  // string inside an array
        CHECK(contains(expect_error(b, MGL_ERR_FORMAT), "key 'tokenizer.ggml.tokens' element 2 needs"));
    }
}

TEST_CASE(huge_array_counts) {
    for (uint64_t n : {uint64_t(1) << 62, uint64_t(100000001), uint64_t(1000), uint64_t(4)}) {
        Bytes b = small_writer().bytes();
        put_at<uint64_t>(b, key_type_at(b, "tokenizer.ggml.scores") + 8, n);
        std::string msg = expect_error(b, MGL_ERR_FORMAT);
        if (n != 4) CHECK(contains(msg, "tokenizer.ggml.scores"));  // 4 reads one float too many, then fails later
        b = small_writer().bytes();
        put_at<uint64_t>(b, key_type_at(b, "tokenizer.ggml.tokens") + 8, n);
        expect_error(b, MGL_ERR_FORMAT);
    }
}

TEST_CASE(bad_value_types) {
    Bytes b = small_writer().bytes();
    put_at<uint32_t>(b, key_type_at(b, "megalodon.block_count"), 13);
    CHECK(contains(expect_error(b, MGL_ERR_FORMAT), "unknown value type 13"));
    b = small_writer().bytes();
    put_at<uint32_t>(b, key_type_at(b, "tokenizer.ggml.scores") + 4, 99);  // array element type
    expect_error(b, MGL_ERR_FORMAT);
    b = small_writer().bytes();
    b[key_type_at(b, "megalodon.swiglu") + 4] = 2;  // bool must be 0 or 1
    CHECK(contains(expect_error(b, MGL_ERR_FORMAT), "megalodon.swiglu"));
    GgufWriter deep;
    ByteBuffer nest;
    for (int i = 0; i < 6; ++i) {
        nest.put_u32(uint32_t(VT::ARRAY));
        nest.put_u64(1);
    }
    nest.put_u32(uint32_t(VT::U8));
    nest.put_u64(0);
    deep.add_raw_kv("extra.deep", VT::ARRAY, nest);
    CHECK(contains(expect_error(deep.bytes(), MGL_ERR_FORMAT), "nested too deeply"));
}

TEST_CASE(duplicates) {
    GgufWriter w = small_writer();
    w.add_u32("megalodon.block_count", 4);
    CHECK(contains(expect_error(w.bytes(), MGL_ERR_FORMAT), "duplicate key 'megalodon.block_count'"));
    GgufWriter t = small_writer();
    t.add_tensor("tensor_alpha", DType::F32, {8}, kAlphaValues);
    CHECK(contains(expect_error(t.bytes(), MGL_ERR_FORMAT), "duplicate tensor 'tensor_alpha'"));
}

TEST_CASE(bad_tensor_shapes) {
    for (uint32_t n_dims : {0u, 5u, 0x80000000u}) {
        Bytes b = small_writer().bytes();
        put_at<uint32_t>(b, tensor_info_at(b, "tensor_alpha"), n_dims);
        CHECK(contains(expect_error(b, MGL_ERR_FORMAT), "dimensions"));
    }
    Bytes b = small_writer().bytes();
    put_at<uint64_t>(b, tensor_info_at(b, "tensor_alpha") + 4, 0);  // ne[0] = 0
    CHECK(contains(expect_error(b, MGL_ERR_FORMAT), "tensor 'tensor_alpha' has an invalid shape"));
    b = small_writer().bytes();
    put_at<uint64_t>(b, tensor_info_at(b, "tensor_alpha") + 4, uint64_t(1) << 40);
    put_at<uint64_t>(b, tensor_info_at(b, "tensor_alpha") + 12, uint64_t(1) << 40);  // product overflows
    CHECK(contains(expect_error(b, MGL_ERR_FORMAT), "invalid shape"));
    for (uint64_t ne : {~uint64_t(0), uint64_t(1) << 63, uint64_t(1) << 55}) {
        b = small_writer().bytes();
        put_at<uint64_t>(b, tensor_info_at(b, "tensor_beta") + 4, ne);
        expect_error(b, MGL_ERR_FORMAT);
    }
    GgufWriter q;
    ByteBuffer block;  // one q8_0 block for a row of 16: row length must be a multiple of 32
    block.put(std::vector<uint8_t>(34, 0).data(), 34);
    q.add_raw_tensor("q", uint32_t(DType::Q8_0), {16}, block.bytes);
    CHECK(contains(expect_error(q.bytes(), MGL_ERR_FORMAT), "multiple of 32"));
}

TEST_CASE(unknown_tensor_type) {
    for (uint32_t type : {2u, 12u, 29u, 31u, 0xFFFFFFFFu}) {
        Bytes b = small_writer().bytes();
        put_at<uint32_t>(b, tensor_info_at(b, "tensor_beta") + 4 + 8, type);
        std::string msg = expect_error(b, MGL_ERR_UNSUPPORTED);
        CHECK(contains(msg, "tensor 'tensor_beta'") && contains(msg, std::to_string(type)));
    }
}

TEST_CASE(tensor_data_outside_file) {
    for (uint64_t offset : {uint64_t(64), uint64_t(96), uint64_t(1) << 40, ~uint64_t(0) - 31}) {
        Bytes b = small_writer().bytes();
        put_at<uint64_t>(b, tensor_info_at(b, "tensor_beta") + 4 + 8 + 4, offset);
        std::string msg = expect_error(b, MGL_ERR_FORMAT);
        CHECK(contains(msg, "tensor 'tensor_beta' data") &&
              contains(msg, "lies outside the file (size " + std::to_string(b.size()) + ")"));
    }
    Bytes b = small_writer().bytes();
    put_at<uint64_t>(b, tensor_info_at(b, "tensor_beta") + 4 + 8 + 4, 40);
    CHECK(contains(expect_error(b, MGL_ERR_FORMAT), "not a multiple of the alignment 32"));
}

TEST_CASE(bad_alignment) {
    for (uint32_t a : {0u, 3u, 48u, 0x80000000u}) {
        GgufWriter w = small_writer();
        w.add_u32("general.alignment", a);
        CHECK(contains(expect_error(w.bytes(), MGL_ERR_FORMAT), "general.alignment"));
    }
    GgufWriter w = small_writer();
    w.add_string("general.alignment", "32");
    CHECK(contains(expect_error(w.bytes(), MGL_ERR_FORMAT), "general.alignment"));
}

TEST_CASE(dtype_helpers) {
    CHECK_EQ(std::string(mgl::dtype_name(DType::F32)), std::string("f32"));
    CHECK_EQ(std::string(mgl::dtype_name(DType::F16)), std::string("f16"));
    CHECK_EQ(std::string(mgl::dtype_name(DType::BF16)), std::string("bf16"));
    CHECK_EQ(std::string(mgl::dtype_name(DType::Q8_0)), std::string("q8_0"));
    CHECK_EQ(mgl::dtype_row_bytes(DType::F32, 10), size_t(40));
    CHECK_EQ(mgl::dtype_row_bytes(DType::F16, 10), size_t(20));
    CHECK_EQ(mgl::dtype_row_bytes(DType::BF16, 10), size_t(20));
    CHECK_EQ(mgl::dtype_row_bytes(DType::Q8_0, 64), size_t(68));
}

// Random mutations of valid files: each must open (then every tensor byte is readable and the
// tokenizer either loads or fails cleanly) or fail with mgl::Error; nothing else is acceptable.
TEST_CASE(fuzz_mutations) {
    std::vector<Bytes> seeds;
    seeds.push_back(small_writer().bytes());
    for (const char *kind : {"llama", "gpt2"}) {
        TinyConfig cfg;
        cfg.tokenizer = kind;
        cfg.n_layers = 1;
        cfg.d_model = 32;
        cfg.n_vocab = kind == std::string("llama") ? 340 : 280;
        cfg.mtp_heads = 2;
        cfg.weight_type = DType::F16;
        const std::string path = write_random_model(temp_path("fuzz_seed.gguf"), cfg, 11);
        std::ifstream in(path, std::ios::binary);
        seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    // Header sizes (metadata and tensor infos), where most mutations go.
    std::vector<size_t> header_size;
    for (const Bytes &s : seeds) {
        auto f = open_bytes(s);
        size_t data = 0;
        for (const auto &t : f->tensors()) data += (t.nbytes + 31) / 32 * 32;
        header_size.push_back(s.size() - data);
    }
    const uint64_t interesting[] = {0, 1, 2, 4, 5, 31, 32, 0x7F, 0xFF, 0xFFFF, 0xFFFFFFFFull, 0x100000000ull,
                                    100000001ull, uint64_t(1) << 62, uint64_t(1) << 63, ~uint64_t(0)};

    std::mt19937_64 rng(12345);
    int opened = 0, rejected = 0, tokenizers = 0;
    const int iterations = 2000;
    for (int it = 0; it < iterations; ++it) {
        const size_t which = size_t(rng() % seeds.size());
        Bytes b = seeds[which];
        const size_t head = header_size[which];
        const int kind = int(rng() % 6);
        std::string what;
        switch (kind) {
            case 0: {  // flip bits in the header
                int n = 1 + int(rng() % 8);
                for (int k = 0; k < n; ++k) b[rng() % head] ^= uint8_t(1u << (rng() % 8));
                what = "header bit flips";
                break;
            }
            case 1: {  // random bytes anywhere
                int n = 1 + int(rng() % 16);
                for (int k = 0; k < n; ++k) b[rng() % b.size()] = uint8_t(rng());
                what = "random bytes";
                break;
            }
            case 2:
                b.resize(rng() % b.size());
                what = "truncation";
                break;
            case 3: {  // garbage inserted in the header
                size_t at = rng() % head;
                size_t n = 1 + rng() % 16;
                Bytes garbage(n);
                for (uint8_t &g : garbage) g = uint8_t(rng());
                b.insert(b.begin() + long(at), garbage.begin(), garbage.end());
                what = "inserted garbage";
                break;
            }
            case 4: {  // a boundary value written over a 4- or 8-byte field
                size_t at = rng() % (head - 8);
                uint64_t v = interesting[rng() % (sizeof interesting / sizeof interesting[0])];
                if (rng() % 2) put_at<uint64_t>(b, at, v);
                else put_at<uint32_t>(b, at, uint32_t(v));
                what = "boundary value";
                break;
            }
            default: {  // a range of the header deleted
                size_t at = rng() % head;
                size_t n = 1 + rng() % std::min<size_t>(64, head - at);
                b.erase(b.begin() + long(at), b.begin() + long(at + n));
                what = "deleted range";
                break;
            }
        }
        try {
            auto f = open_bytes(b, it % 2 == 0, "fuzz.gguf");
            ++opened;
            uint64_t sum = 0;
            for (const auto &t : f->tensors())
                for (size_t k = 0; k < t.nbytes; ++k) sum += t.data[k];
            (void)sum;
            try {
                auto tok = mgl::Tokenizer::from_gguf(*f);
                ++tokenizers;
                std::vector<int32_t> ids = tok->encode("Hello, world! <s> \xff\xfe", true, true);
                tok->decode(ids.data(), ids.size(), true);
            } catch (const mgl::Error &) {
            }
        } catch (const mgl::Error &) {
            ++rejected;
        } catch (const std::exception &e) {
            report_failure(__FILE__, __LINE__, "iteration " + std::to_string(it) + " (" + what +
                                                   "): exception other than mgl::Error: " + e.what());
        }
    }
    std::printf("  fuzz: %d mutations, %d opened (%d with a tokenizer), %d rejected\n", iterations, opened,
                tokenizers, rejected);
    CHECK_EQ(opened + rejected, iterations);
    CHECK(rejected > iterations / 4);
}

TEST_CASE(large_file_opens_fast) {
    TinyConfig cfg;
    cfg.d_model = 1024;
    cfg.n_vocab = 7000;
    cfg.n_layers = 1;
    cfg.z_dim = 128;
    cfg.value_dim = 256;
    cfg.ffn_dim = 512;
    cfg.norm_groups = 16;
    const std::string path = write_random_model(temp_path("large.gguf"), cfg, 5);
    for (bool use_mmap : {true, false}) {
        auto t0 = std::chrono::steady_clock::now();
        auto f = GgufFile::open(path, use_mmap);
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        std::printf("  open %.1f MB with %s: %.2f ms\n", double(f->file_size()) / 1e6,
                    use_mmap ? "mmap" : "read", ms);
        CHECK(f->file_size() > 55u * 1000 * 1000);
    }
    std::remove(path.c_str());
}

TEST_MAIN("test_gguf")
