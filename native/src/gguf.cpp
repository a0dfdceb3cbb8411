// GGUF v2/v3 reader. Every length, count and offset read from the file is checked against the
// bytes that remain before it is used, so a corrupt file produces an mgl::Error, never an
// out-of-bounds read or an absurd allocation.

#include "gguf.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

#ifndef _WIN32
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace mgl {

namespace {

constexpr uint64_t kMaxTensors = uint64_t(1) << 20;
constexpr uint64_t kMaxKeys = uint64_t(1) << 20;
constexpr uint64_t kMaxArrayElements = 100000000;     // per array
constexpr uint64_t kMaxMetadataElements = 200000000;  // all arrays together
constexpr uint64_t kMaxNameLength = uint64_t(1) << 16;
constexpr uint64_t kMaxAlignment = uint64_t(1) << 24;
constexpr int kMaxArrayNesting = 4;
// Largest element count / byte size accepted for one tensor; keeps every product below 2^63.
constexpr uint64_t kMaxTensorElements = uint64_t(1) << 56;
constexpr size_t kFingerprintSample = 4096;

const char *value_type_name(GgufValueType t) {
    switch (t) {
        case GgufValueType::U8: return "uint8";
        case GgufValueType::I8: return "int8";
        case GgufValueType::U16: return "uint16";
        case GgufValueType::I16: return "int16";
        case GgufValueType::U32: return "uint32";
        case GgufValueType::I32: return "int32";
        case GgufValueType::F32: return "float32";
        case GgufValueType::BOOL: return "bool";
        case GgufValueType::STRING: return "string";
        case GgufValueType::ARRAY: return "array";
        case GgufValueType::U64: return "uint64";
        case GgufValueType::I64: return "int64";
        case GgufValueType::F64: return "float64";
    }
    return "unknown";
}

// Encoded size of a scalar value type (0 for string/array and unknown types).
size_t scalar_size(GgufValueType t) {
    switch (t) {
        case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::BOOL: return 1;
        case GgufValueType::U16: case GgufValueType::I16: return 2;
        case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::F32: return 4;
        case GgufValueType::U64: case GgufValueType::I64: case GgufValueType::F64: return 8;
        default: return 0;
    }
}

bool is_integer(GgufValueType t) {
    switch (t) {
        case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::U16: case GgufValueType::I16:
        case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::U64: case GgufValueType::I64:
            return true;
        default: return false;
    }
}

bool is_known_dtype(uint32_t t) {
    return t == uint32_t(DType::F32) || t == uint32_t(DType::F16) || t == uint32_t(DType::Q8_0) ||
           t == uint32_t(DType::BF16);
}

std::string u64s(uint64_t v) { return std::to_string(static_cast<unsigned long long>(v)); }

// Bounded little-endian reader over the file image.
class Cursor {
public:
    Cursor(const uint8_t *data, uint64_t size, const std::string &path) : data_(data), size_(size), path_(path) {}

    uint64_t pos() const { return pos_; }
    uint64_t remaining() const { return size_ - pos_; }

    [[noreturn]] void corrupt(const std::string &what) const { fail(MGL_ERR_FORMAT, path_ + ": " + what); }
    [[noreturn]] void truncated(uint64_t n, const std::string &what) const {
        corrupt("truncated: " + what + " needs " + u64s(n) + " bytes at offset " + u64s(pos_) +
                " but the file has " + u64s(size_));
    }

    void need(uint64_t n, const std::string &what) const {
        if (n > remaining()) truncated(n, what);
    }
    const uint8_t *take(uint64_t n, const std::string &what) {
        need(n, what);
        const uint8_t *p = data_ + pos_;
        pos_ += n;
        return p;
    }
    template <class T> T pod(const std::string &what) {
        T v;
        std::memcpy(&v, take(sizeof v, what), sizeof v);
        return v;
    }
    uint32_t u32(const std::string &what) { return pod<uint32_t>(what); }
    uint64_t u64(const std::string &what) { return pod<uint64_t>(what); }
    std::string str(const std::string &what, uint64_t max_len = std::numeric_limits<uint64_t>::max()) {
        return str_described([&] { return what; }, max_len);
    }
    // A string whose description is only built when it is needed for an error (array elements).
    template <class Describe>
    std::string str_described(const Describe &describe, uint64_t max_len = std::numeric_limits<uint64_t>::max()) {
        if (remaining() < 8) truncated(8, describe() + " length");
        uint64_t n;
        std::memcpy(&n, data_ + pos_, 8);
        pos_ += 8;
        if (n > max_len) corrupt(describe() + " length " + u64s(n) + " exceeds the limit " + u64s(max_len));
        if (n > remaining()) truncated(n, describe());
        const char *p = reinterpret_cast<const char *>(data_ + pos_);
        pos_ += n;
        return std::string(p, static_cast<size_t>(n));
    }

private:
    const uint8_t *data_;
    uint64_t size_;
    uint64_t pos_ = 0;
    const std::string &path_;
};

// Reads one scalar of type t into v (widened into i/u/f as meaningful).
void read_scalar(Cursor &cur, GgufValueType t, GgufValue &v, const std::string &what) {
    switch (t) {
        case GgufValueType::U8: v.u = cur.pod<uint8_t>(what); v.i = int64_t(v.u); v.f = double(v.u); break;
        case GgufValueType::U16: v.u = cur.pod<uint16_t>(what); v.i = int64_t(v.u); v.f = double(v.u); break;
        case GgufValueType::U32: v.u = cur.pod<uint32_t>(what); v.i = int64_t(v.u); v.f = double(v.u); break;
        case GgufValueType::U64:
            v.u = cur.pod<uint64_t>(what);
            v.i = v.u > uint64_t(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                                      : int64_t(v.u);
            v.f = double(v.u);
            break;
        case GgufValueType::I8: v.i = cur.pod<int8_t>(what); break;
        case GgufValueType::I16: v.i = cur.pod<int16_t>(what); break;
        case GgufValueType::I32: v.i = cur.pod<int32_t>(what); break;
        case GgufValueType::I64: v.i = cur.pod<int64_t>(what); break;
        case GgufValueType::F32: v.f = cur.pod<float>(what); break;
        case GgufValueType::F64: v.f = cur.pod<double>(what); break;
        case GgufValueType::BOOL: {
            uint8_t b = cur.pod<uint8_t>(what);
            if (b > 1) cur.corrupt(what + ": bool value " + std::to_string(b) + " is neither 0 nor 1");
            v.u = b; v.i = b; v.f = b;
            break;
        }
        default: cur.corrupt(what + ": not a scalar type");
    }
    if (t == GgufValueType::I8 || t == GgufValueType::I16 || t == GgufValueType::I32 || t == GgufValueType::I64) {
        v.u = v.i >= 0 ? uint64_t(v.i) : 0;
        v.f = double(v.i);
    }
}

GgufValueType read_value_type(Cursor &cur, const std::string &what) {
    uint32_t t = cur.u32(what + " type");
    if (t > uint32_t(GgufValueType::F64)) cur.corrupt(what + " has unknown value type " + std::to_string(t));
    return static_cast<GgufValueType>(t);
}

// Reads the payload of a value of type t. Nested arrays are validated and skipped (their
// contents are never needed); `budget` limits array elements over the whole metadata.
void read_value(Cursor &cur, GgufValueType t, GgufValue &v, const std::string &what, int depth,
                uint64_t &budget) {
    v.type = t;
    if (t == GgufValueType::STRING) {
        v.s = cur.str(what);
        return;
    }
    if (t != GgufValueType::ARRAY) {
        read_scalar(cur, t, v, what);
        return;
    }
    if (depth >= kMaxArrayNesting) cur.corrupt(what + ": arrays nested too deeply");
    GgufValueType et = read_value_type(cur, what + " element");
    uint64_t n = cur.u64(what + " element count");
    // Every element takes at least one byte (strings: their 8-byte length).
    uint64_t min_size = et == GgufValueType::STRING ? 8 : et == GgufValueType::ARRAY ? 12 : scalar_size(et);
    if (n > kMaxArrayElements) cur.corrupt(what + ": array of " + u64s(n) + " elements exceeds the limit");
    if (n > cur.remaining() / min_size)
        cur.corrupt(what + ": array of " + u64s(n) + " elements does not fit in the rest of the file");
    if (n > budget) cur.corrupt(what + ": metadata arrays exceed " + u64s(kMaxMetadataElements) + " elements");
    budget -= n;
    v.elem_type = et;
    v.count = static_cast<size_t>(n);
    if (et == GgufValueType::STRING) {
        v.strs.reserve(v.count);
        for (uint64_t k = 0; k < n; ++k)
            v.strs.push_back(cur.str_described([&] { return what + " element " + u64s(k); }));
    } else if (et == GgufValueType::ARRAY) {
        for (uint64_t k = 0; k < n; ++k) {
            GgufValue inner;
            std::string inner_what = what + " element " + u64s(k);
            read_value(cur, et, inner, inner_what, depth + 1, budget);
        }
    } else {
        v.nums.reserve(v.count);
        GgufValue scalar;
        for (uint64_t k = 0; k < n; ++k) {
            read_scalar(cur, et, scalar, what);
            v.nums.push_back(is_integer(et) && et != GgufValueType::U64 ? double(scalar.i) : scalar.f);
        }
    }
}

// a * b, or false when it exceeds `limit`.
bool mul_within(uint64_t a, uint64_t b, uint64_t limit, uint64_t &out) {
    if (a != 0 && b > limit / a) return false;
    out = a * b;
    return true;
}

}  // namespace

const char *dtype_name(DType t) {
    switch (t) {
        case DType::F32: return "f32";
        case DType::F16: return "f16";
        case DType::Q8_0: return "q8_0";
        case DType::BF16: return "bf16";
    }
    return "unknown";
}

size_t dtype_row_bytes(DType t, int64_t n) {
    switch (t) {
        case DType::F32: return size_t(n) * 4;
        case DType::F16: case DType::BF16: return size_t(n) * 2;
        case DType::Q8_0: return size_t(n / 32) * 34;  // f16 scale + 32 int8
    }
    return 0;
}

GgufFile::~GgufFile() {
#ifndef _WIN32
    if (map_) munmap(map_, map_size_);
#endif
}

const GgufValue *GgufFile::find(const std::string &key) const {
    auto it = kv_.find(key);
    return it == kv_.end() ? nullptr : &it->second;
}

namespace {
[[noreturn]] void wrong_type(const std::string &path, const std::string &key, const GgufValue &v,
                             const char *expected) {
    std::string got = value_type_name(v.type);
    if (v.type == GgufValueType::ARRAY) got += std::string(" of ") + value_type_name(v.elem_type);
    fail(MGL_ERR_FORMAT, path + ": key '" + key + "' has type " + got + ", expected " + expected);
}
}  // namespace

std::optional<uint64_t> GgufFile::get_uint(const std::string &key) const {
    const GgufValue *v = find(key);
    if (!v) return std::nullopt;
    if (!is_integer(v->type)) wrong_type(path_, key, *v, "an unsigned integer");
    if (v->type != GgufValueType::U64 && v->i < 0)
        fail(MGL_ERR_FORMAT, path_ + ": key '" + key + "' is negative (" + std::to_string(v->i) + ")");
    return v->u;
}

std::optional<double> GgufFile::get_float(const std::string &key) const {
    const GgufValue *v = find(key);
    if (!v) return std::nullopt;
    if (v->type != GgufValueType::F32 && v->type != GgufValueType::F64 && !is_integer(v->type))
        wrong_type(path_, key, *v, "a number");
    return v->f;
}

std::optional<bool> GgufFile::get_bool(const std::string &key) const {
    const GgufValue *v = find(key);
    if (!v) return std::nullopt;
    if (v->type != GgufValueType::BOOL) wrong_type(path_, key, *v, "bool");
    return v->u != 0;
}

std::optional<std::string> GgufFile::get_string(const std::string &key) const {
    const GgufValue *v = find(key);
    if (!v) return std::nullopt;
    if (v->type != GgufValueType::STRING) wrong_type(path_, key, *v, "string");
    return v->s;
}

const std::vector<std::string> *GgufFile::get_string_array(const std::string &key) const {
    const GgufValue *v = find(key);
    if (!v) return nullptr;
    if (v->type != GgufValueType::ARRAY || v->elem_type != GgufValueType::STRING)
        wrong_type(path_, key, *v, "array of string");
    return &v->strs;
}

const std::vector<double> *GgufFile::get_number_array(const std::string &key) const {
    const GgufValue *v = find(key);
    if (!v) return nullptr;
    if (v->type != GgufValueType::ARRAY || scalar_size(v->elem_type) == 0)
        wrong_type(path_, key, *v, "array of numbers");
    return &v->nums;
}

const GgufTensor *GgufFile::tensor(const std::string &name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::unique_ptr<GgufFile> GgufFile::open(const std::string &path, bool use_mmap) {
    std::unique_ptr<GgufFile> file(new GgufFile());
    file->path_ = path;

    // Load the file image: a read-only private mapping, or a copy in memory.
    const uint8_t *image = nullptr;
#ifdef _WIN32
    (void)use_mmap;
    FILE *fp = std::fopen(path.c_str(), "rb");
    if (!fp) fail(MGL_ERR_IO, path + ": cannot open: " + std::strerror(errno));
    std::unique_ptr<FILE, int (*)(FILE *)> guard(fp, std::fclose);
    if (_fseeki64(fp, 0, SEEK_END) != 0) fail(MGL_ERR_IO, path + ": cannot determine the file size");
    int64_t size = _ftelli64(fp);
    if (size < 0) fail(MGL_ERR_IO, path + ": cannot determine the file size");
    _fseeki64(fp, 0, SEEK_SET);
    file->file_size_ = uint64_t(size);
    file->owned_.resize(size_t(size));
    if (size > 0 && std::fread(file->owned_.data(), 1, size_t(size), fp) != size_t(size))
        fail(MGL_ERR_IO, path + ": read failed");
    image = file->owned_.data();
#else
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(MGL_ERR_IO, path + ": cannot open: " + std::strerror(errno));
    struct FdCloser {
        int fd;
        ~FdCloser() { ::close(fd); }
    } closer{fd};
    struct stat st;
    if (fstat(fd, &st) != 0) fail(MGL_ERR_IO, path + ": cannot stat: " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) fail(MGL_ERR_IO, path + ": not a regular file");
    file->file_size_ = uint64_t(st.st_size);
    if (file->file_size_ > std::numeric_limits<size_t>::max())
        fail(MGL_ERR_IO, path + ": file too large for this address space");
    const size_t size = size_t(file->file_size_);
    if (use_mmap && size > 0) {
        void *m = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            file->map_ = m;
            file->map_size_ = size;
            image = static_cast<const uint8_t *>(m);
        }
    }
    if (!image) {  // requested, or the mapping failed (e.g. a file system without mmap)
        try {
            file->owned_.resize(size);
        } catch (const std::bad_alloc &) {
            fail(MGL_ERR_OUT_OF_MEMORY, path + ": cannot allocate " + u64s(size) + " bytes to read the file");
        }
        size_t done = 0;
        while (done < size) {
            ssize_t r = ::pread(fd, file->owned_.data() + done, size - done, off_t(done));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) fail(MGL_ERR_IO, path + ": read failed at offset " + u64s(done) +
                                             (r < 0 ? std::string(": ") + std::strerror(errno) : ": unexpected end"));
            done += size_t(r);
        }
        image = file->owned_.data();
    }
#endif

    // Header, metadata and tensor infos.
    GgufFile &self = *file;
    Cursor cur(image, self.file_size_, path);

    if (self.file_size_ < 4 || std::memcmp(image, "GGUF", 4) != 0)
        cur.corrupt("not a GGUF file (bad magic)");
    cur.take(4, "magic");
    self.version_ = cur.u32("version");
    if (self.version_ != 2 && self.version_ != 3) {
        if (self.version_ == 0x02000000u || self.version_ == 0x03000000u)
            fail(MGL_ERR_UNSUPPORTED, path + ": big-endian GGUF files are not supported");
        fail(MGL_ERR_UNSUPPORTED, path + ": GGUF version " + std::to_string(self.version_) +
                                      " is not supported (2 or 3 expected)");
    }
    const uint64_t n_tensors = cur.u64("tensor count");
    const uint64_t n_kv = cur.u64("key/value count");
    // A key/value pair takes at least 13 bytes, a tensor info at least 32.
    if (n_kv > kMaxKeys || n_kv > cur.remaining() / 13)
        cur.corrupt("key/value count " + u64s(n_kv) + " is impossible for the file size");
    if (n_tensors > kMaxTensors || n_tensors > cur.remaining() / 32)
        cur.corrupt("tensor count " + u64s(n_tensors) + " is impossible for the file size");

    // Raw encoded values of the keys that identify the model, for the fingerprint.
    std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> identity_values;
    uint64_t budget = kMaxMetadataElements;
    for (uint64_t k = 0; k < n_kv; ++k) {
        std::string key = cur.str("key #" + u64s(k), kMaxNameLength);
        const std::string what = "key '" + key + "'";
        uint64_t value_start = cur.pos();
        GgufValueType t = read_value_type(cur, what);
        GgufValue v;
        read_value(cur, t, v, what, 0, budget);
        if (key.rfind("megalodon.", 0) == 0 || key.rfind("tokenizer.", 0) == 0)
            identity_values.push_back({key, {value_start, cur.pos()}});
        if (!self.kv_.emplace(key, std::move(v)).second) cur.corrupt("duplicate key '" + key + "'");
    }

    uint64_t alignment = 32;
    if (self.has("general.alignment")) {
        alignment = *self.get_uint("general.alignment");
        if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > kMaxAlignment)
            cur.corrupt("general.alignment " + u64s(alignment) + " is not a power of two up to " +
                        u64s(kMaxAlignment));
    }

    self.tensors_.resize(static_cast<size_t>(n_tensors));
    for (uint64_t k = 0; k < n_tensors; ++k) {
        GgufTensor &t = self.tensors_[static_cast<size_t>(k)];
        t.name = cur.str("tensor #" + u64s(k) + " name", kMaxNameLength);
        const std::string what = "tensor '" + t.name + "'";
        uint32_t n_dims = cur.u32(what + " dimension count");
        if (n_dims < 1 || n_dims > 4) cur.corrupt(what + " has " + std::to_string(n_dims) + " dimensions (1 to 4 allowed)");
        t.n_dims = int(n_dims);
        uint64_t n_elements = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            uint64_t ne = cur.u64(what + " dimension");
            if (ne == 0 || !mul_within(n_elements, ne, kMaxTensorElements, n_elements))
                cur.corrupt(what + " has an invalid shape (dimension " + std::to_string(d) + " = " + u64s(ne) + ")");
            t.ne[d] = int64_t(ne);
        }
        uint32_t type = cur.u32(what + " type");
        t.offset = cur.u64(what + " offset");
        if (!is_known_dtype(type))
            fail(MGL_ERR_UNSUPPORTED, path + ": " + what + " has tensor type " + std::to_string(type) +
                                          ", which this runtime does not support (f32, f16, bf16, q8_0)");
        t.type = static_cast<DType>(type);
        if (t.type == DType::Q8_0 && t.ne[0] % 32 != 0)
            cur.corrupt(what + " is q8_0 but its row length " + std::to_string(t.ne[0]) + " is not a multiple of 32");
        // Bytes per element are at most 4, and rows hold ne[0] elements: no overflow below 2^58.
        t.nbytes = dtype_row_bytes(t.type, t.ne[0]) * size_t(n_elements / uint64_t(t.ne[0]));
        if (t.offset % alignment != 0)
            cur.corrupt(what + " offset " + u64s(t.offset) + " is not a multiple of the alignment " + u64s(alignment));
        if (!self.tensor_index_.emplace(t.name, size_t(k)).second) cur.corrupt("duplicate tensor '" + t.name + "'");
    }

    // The data section starts at the next multiple of the alignment.
    const uint64_t data_start = (cur.pos() + alignment - 1) / alignment * alignment;
    for (GgufTensor &t : self.tensors_) {
        const uint64_t file_size = self.file_size_;
        const bool inside = data_start <= file_size && t.offset <= file_size - data_start &&
                            t.nbytes <= file_size - data_start - t.offset;
        if (!inside) {
            // Offsets within the file size cannot overflow when added to the data start.
            std::string range = t.offset > file_size ? "at data offset " + u64s(t.offset)
                                                : "[" + u64s(data_start + t.offset) + "," +
                                                      u64s(data_start + t.offset + t.nbytes) + ")";
            cur.corrupt("tensor '" + t.name + "' data " + range + " lies outside the file (size " +
                        u64s(file_size) + ")");
        }
        t.data = image + data_start + t.offset;
    }

    // Fingerprint (FORMAT.md 2): identity keys sorted by name with their encoded values, then
    // every tensor sorted by name with its type, shape and a sample of its data.
    Fnv1a64 fp;
    std::sort(identity_values.begin(), identity_values.end());
    for (const auto &kv : identity_values) {
        fp.update_pod(uint64_t(kv.first.size()));
        fp.update(kv.first.data(), kv.first.size());
        fp.update(image + kv.second.first, size_t(kv.second.second - kv.second.first));
    }
    std::vector<const GgufTensor *> by_name;
    for (const GgufTensor &t : self.tensors_) by_name.push_back(&t);
    std::sort(by_name.begin(), by_name.end(),
              [](const GgufTensor *a, const GgufTensor *b) { return a->name < b->name; });
    for (const GgufTensor *t : by_name) {
        fp.update_pod(uint64_t(t->name.size()));
        fp.update(t->name.data(), t->name.size());
        fp.update_pod(uint32_t(t->type));
        fp.update_pod(uint32_t(t->n_dims));
        for (int d = 0; d < t->n_dims; ++d) fp.update_pod(t->ne[d]);
        if (t->nbytes <= kFingerprintSample) {
            fp.update(t->data, t->nbytes);
        } else {
            fp.update(t->data, 2048);
            fp.update(t->data + t->nbytes / 2 - 512, 1024);
            fp.update(t->data + t->nbytes - 1024, 1024);
        }
    }
    self.fingerprint_ = fp.h;
    return file;
}

}  // namespace mgl
