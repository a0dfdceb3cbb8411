// GGUF v3 reader: parses and validates the header, memory-maps (or reads) the tensor data.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.h"

namespace mgl {

// Tensor element types the runtime computes with (GGUF type ids).
enum class DType : uint32_t { F32 = 0, F16 = 1, Q8_0 = 8, BF16 = 30 };

const char *dtype_name(DType t);
// Bytes of one row of `n` elements (n % 32 == 0 for Q8_0).
size_t dtype_row_bytes(DType t, int64_t n);

enum class GgufValueType : uint32_t {
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
    STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12
};

struct GgufValue {
    GgufValueType type = GgufValueType::U8;
    GgufValueType elem_type = GgufValueType::U8;  // for ARRAY
    // Scalars are widened into one of these.
    int64_t i = 0;
    uint64_t u = 0;
    double f = 0;
    std::string s;
    // Arrays: numbers widened, strings kept.
    std::vector<double> nums;
    std::vector<std::string> strs;
    size_t count = 0;  // array length
};

struct GgufTensor {
    std::string name;
    DType type = DType::F32;
    int n_dims = 0;
    int64_t ne[4] = {1, 1, 1, 1};  // ne[0] contiguous
    uint64_t offset = 0;           // relative to the data section
    const uint8_t *data = nullptr;
    size_t nbytes = 0;
    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

class GgufFile {
public:
    // Throws mgl::Error (MGL_ERR_IO, MGL_ERR_FORMAT, MGL_ERR_UNSUPPORTED) with a message that
    // names the file and what is wrong. Never reads outside the file, whatever its contents.
    static std::unique_ptr<GgufFile> open(const std::string &path, bool use_mmap);
    ~GgufFile();
    GgufFile(const GgufFile &) = delete;
    GgufFile &operator=(const GgufFile &) = delete;

    uint32_t version() const { return version_; }
    const std::string &path() const { return path_; }
    uint64_t file_size() const { return file_size_; }

    bool has(const std::string &key) const { return kv_.count(key) != 0; }
    const GgufValue *find(const std::string &key) const;
    // Typed getters: nullopt when absent; throw MGL_ERR_FORMAT when present with a wrong type.
    std::optional<uint64_t> get_uint(const std::string &key) const;  // any unsigned/signed int >= 0
    std::optional<double> get_float(const std::string &key) const;   // f32/f64 (ints accepted)
    std::optional<bool> get_bool(const std::string &key) const;
    std::optional<std::string> get_string(const std::string &key) const;
    const std::vector<std::string> *get_string_array(const std::string &key) const;
    const std::vector<double> *get_number_array(const std::string &key) const;

    const GgufTensor *tensor(const std::string &name) const;  // nullptr when absent
    const std::vector<GgufTensor> &tensors() const { return tensors_; }

    // FNV-1a 64 fingerprint as FORMAT.md defines it.
    uint64_t fingerprint() const { return fingerprint_; }

private:
    GgufFile() = default;
    std::string path_;
    uint32_t version_ = 0;
    uint64_t file_size_ = 0;
    std::unordered_map<std::string, GgufValue> kv_;
    std::vector<GgufTensor> tensors_;
    std::unordered_map<std::string, size_t> tensor_index_;
    uint64_t fingerprint_ = 0;
    // Mapping or owned buffer.
    void *map_ = nullptr;
    size_t map_size_ = 0;
    std::vector<uint8_t> owned_;
};

}  // namespace mgl
