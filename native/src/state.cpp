// Sequence state: creation, clone, reset and the state file (FORMAT.md 2).
#include "state.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#ifdef _WIN32
#include <io.h>
#include <process.h>
#include <windows.h>
#else
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include "common.h"

#if defined(__BYTE_ORDER__)
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the state file is written in host byte order");
#endif

namespace mgl {

namespace {

constexpr char kMagic[8] = {'M', 'G', 'L', 'S', 'T', 'A', 'T', 'E'};
constexpr uint32_t kVersion = MGL_STATE_FILE_VERSION;
constexpr int64_t kHeaderBytes = 80;
constexpr size_t kIoBlock = size_t(1) << 20;

// Fixed-size header, in file order.
struct Header {
    uint32_t version = 0, flags = 0;
    uint64_t fingerprint = 0;
    uint32_t n_layers = 0, d_model = 0, cema_ndim = 0, norm_groups = 0, chunk_size = 0, z_dim = 0, value_dim = 0;
    uint32_t reserved = 0;
    int64_t position = 0, tsn_count = 0;
    uint32_t kv_len = 0, history_len = 0;
};

std::string hex64(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
    return buf;
}

// Sequential writer that keeps the running checksum.
class StateWriter {
public:
    StateWriter(FILE *f, const std::string &path) : f_(f), path_(path) { buf_.reserve(kIoBlock); }
    void bytes(const void *p, size_t n) {
        const uint8_t *b = static_cast<const uint8_t *>(p);
        checksum_.update(b, n);
        while (n > 0) {
            const size_t take = std::min(n, kIoBlock - buf_.size());
            buf_.insert(buf_.end(), b, b + take);
            b += take;
            n -= take;
            if (buf_.size() == kIoBlock) flush();
        }
    }
    template <class T> void pod(const T &v) { bytes(&v, sizeof v); }
    void floats(const float *p, int64_t n) { bytes(p, size_t(n) * sizeof(float)); }
    void finish() {
        const uint64_t sum = checksum_.h;
        bytes(&sum, sizeof sum);
        flush();
    }

private:
    void flush() {
        if (!buf_.empty() && std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size())
            fail(MGL_ERR_IO, path_ + ": write failed: " + std::strerror(errno));
        buf_.clear();
    }
    FILE *f_;
    const std::string &path_;
    std::vector<uint8_t> buf_;
    Fnv1a64 checksum_;
};

// Sequential reader over a file whose size is already known to match its header.
class StateReader {
public:
    StateReader(FILE *f, const std::string &path) : f_(f), path_(path) {}
    void bytes(void *p, size_t n) {
        if (n > 0 && std::fread(p, 1, n, f_) != n)
            fail(MGL_ERR_IO, path_ + ": read failed" + (std::ferror(f_) ? std::string(": ") + std::strerror(errno) : ""));
    }
    template <class T> T pod() {
        T v;
        bytes(&v, sizeof v);
        return v;
    }
    void floats(float *p, int64_t n) { bytes(p, size_t(n) * sizeof(float)); }

private:
    FILE *f_;
    const std::string &path_;
};

struct FileCloser {
    void operator()(FILE *f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<FILE, FileCloser>;

// The header after the magic.
Header read_header(StateReader &in) {
    Header h;
    h.version = in.pod<uint32_t>();
    h.flags = in.pod<uint32_t>();
    h.fingerprint = in.pod<uint64_t>();
    h.n_layers = in.pod<uint32_t>();
    h.d_model = in.pod<uint32_t>();
    h.cema_ndim = in.pod<uint32_t>();
    h.norm_groups = in.pod<uint32_t>();
    h.chunk_size = in.pod<uint32_t>();
    h.z_dim = in.pod<uint32_t>();
    h.value_dim = in.pod<uint32_t>();
    h.reserved = in.pod<uint32_t>();
    h.position = in.pod<int64_t>();
    h.tsn_count = in.pod<int64_t>();
    h.kv_len = in.pod<uint32_t>();
    h.history_len = in.pod<uint32_t>();
    return h;
}

// File size a header implies, or 0 when its dimensions are impossible.
uint64_t expected_file_size(const Header &h) {
    constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
    auto mul = [](uint64_t a, uint64_t b, uint64_t &out) {
        if (a != 0 && b > kMax / a) return false;
        out = a * b;
        return true;
    };
    auto add = [](uint64_t a, uint64_t b, uint64_t &out) {
        if (b > kMax - a) return false;
        out = a + b;
        return true;
    };
    uint64_t dn, cema, stats, kv_row, kv, per_layer, layers, total, hist;
    if (!mul(h.d_model, h.cema_ndim, dn) || !mul(dn, 8, cema)) return 0;
    stats = uint64_t(h.norm_groups) * 8;
    if (!mul(uint64_t(h.z_dim) + h.value_dim, 4, kv_row) || !mul(kv_row, h.kv_len, kv)) return 0;
    if (!add(cema, stats, per_layer) || !add(per_layer, kv, per_layer)) return 0;
    if (!mul(per_layer, h.n_layers, layers)) return 0;
    hist = uint64_t(h.history_len) * 4;
    if (!add(layers, uint64_t(kHeaderBytes) + stats + hist + 8, total)) return 0;
    return total;
}

void sync_and_close(FILE *f, const std::string &tmp) {
    if (std::fflush(f) != 0) fail(MGL_ERR_IO, tmp + ": write failed: " + std::strerror(errno));
#ifdef _WIN32
    if (_commit(_fileno(f)) != 0) fail(MGL_ERR_IO, tmp + ": flush to disk failed: " + std::strerror(errno));
#else
    if (fsync(fileno(f)) != 0) fail(MGL_ERR_IO, tmp + ": flush to disk failed: " + std::strerror(errno));
#endif
}

void replace_file(const std::string &tmp, const std::string &path) {
#ifdef _WIN32
    if (!MoveFileExA(tmp.c_str(), path.c_str(), MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH))
        fail(MGL_ERR_IO, path + ": cannot replace the file with " + tmp);
#else
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
        fail(MGL_ERR_IO, path + ": cannot rename " + tmp + " over it: " + std::strerror(errno));
    // Make the rename itself durable; a failure here leaves a complete file, so it is ignored.
    const size_t slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        ::close(dfd);
    }
#endif
}

int process_id() {
#ifdef _WIN32
    return _getpid();
#else
    return int(getpid());
#endif
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Life cycle

State::State(const Model &model, int flags) : model_(&model), flags_(flags) {
    if (flags & ~kKnownFlags)
        fail(MGL_ERR_INVALID_ARG, "state flags " + std::to_string(flags) + " contain unknown bits (known: " +
                                      std::to_string(kKnownFlags) + ")");
    allocate();
    reset();
}

void State::allocate_slot(Recurrent &slot) const {
    const ModelConfig &c = model_->config();
    slot.tsn_mean.resize(size_t((c.n_layers + 1) * c.norm_groups));
    slot.tsn_var.resize(size_t((c.n_layers + 1) * c.norm_groups));
    slot.cema_re.resize(size_t(c.n_layers * cema_stride()));
    slot.cema_im.resize(size_t(c.n_layers * cema_stride()));
}

void State::reserve_window(int64_t rows) {
    while (int64_t(ring_.size()) < rows + 1) {
        ring_.emplace_back();
        allocate_slot(ring_.back());
    }
}

void State::allocate() {
    const ModelConfig &c = model_->config();
    ring_.assign(1, Recurrent());
    cur_ = 0;
    allocate_slot(ring_[0]);
    keys_t_.allocate(size_t(c.n_layers * kv_keys_stride()));
    values_.allocate(size_t(c.n_layers * kv_values_stride()));
    last_logits_.resize(size_t(c.n_predict * c.n_vocab));
    last_logits_valid_.assign(size_t(c.n_predict), 0);
    if (refresh_mode()) history_.resize(size_t(history_capacity()));
}

State::State(const State &other) : model_(other.model_), flags_(other.flags_) {
    allocate();
    position_ = other.position_;
    tsn_count_ = other.tsn_count_;
    kv_len_ = other.kv_len_;
    ring_[0] = other.ring_[other.cur_];  // window slots are scratch: not copied
    const ModelConfig &c = model_->config();
    const State &src = other;
    for (int64_t l = 0; l < c.n_layers; ++l) {
        for (int64_t z = 0; z < c.z_dim; ++z)
            std::copy(src.keys_t(l) + z * c.chunk_size, src.keys_t(l) + z * c.chunk_size + kv_len_,
                      keys_t(l) + z * c.chunk_size);
        std::copy(src.values(l), src.values(l) + kv_len_ * c.value_dim, values(l));
    }
    last_logits_ = other.last_logits_;
    last_logits_valid_ = other.last_logits_valid_;
    history_ = other.history_;
    history_start_ = other.history_start_;
    history_len_ = other.history_len_;
}

std::unique_ptr<State> State::clone() const { return std::unique_ptr<State>(new State(*this)); }

void State::reset() {
    position_ = 0;
    tsn_count_ = 0;
    kv_len_ = 0;
    // Welford prior (megalodon.md 3.2): mean 0, variance 1, weighted by a count of 0.
    Recurrent &r = ring_[cur_];
    std::fill(r.tsn_mean.begin(), r.tsn_mean.end(), 0.0f);
    std::fill(r.tsn_var.begin(), r.tsn_var.end(), 1.0f);
    std::fill(r.cema_re.begin(), r.cema_re.end(), 0.0f);
    std::fill(r.cema_im.begin(), r.cema_im.end(), 0.0f);
    std::fill(last_logits_valid_.begin(), last_logits_valid_.end(), 0);
    history_start_ = 0;
    history_len_ = 0;
}

const float *State::last_logits(int head) const {
    if (head < 0 || head >= int(last_logits_valid_.size()) || !last_logits_valid_[size_t(head)]) return nullptr;
    return last_logits_.data() + size_t(head) * size_t(model_->config().n_vocab);
}

// ------------------------------------------------------------------------------------------
// State file

int64_t State::saved_size() const {
    const ModelConfig &c = model_->config();
    return kHeaderBytes + c.n_layers * (2 * c.norm_groups * 4 + c.d_model * c.cema_ndim * 8 + kv_len_ * (c.z_dim + c.value_dim) * 4) +
           2 * c.norm_groups * 4 + history_len_ * 4 + 8;
}

void State::save(const std::string &path) const {
    static std::atomic<uint64_t> counter{0};
    const std::string tmp = path + ".tmp-" + std::to_string(process_id()) + "-" + std::to_string(counter.fetch_add(1));
    FILE *raw = std::fopen(tmp.c_str(), "wb");
    if (!raw) fail(MGL_ERR_IO, path + ": cannot create " + tmp + ": " + std::strerror(errno));
    FilePtr file(raw);
    try {
        const ModelConfig &c = model_->config();
        StateWriter out(raw, tmp);
        out.bytes(kMagic, 8);
        out.pod(kVersion);
        out.pod(uint32_t(flags_));
        out.pod(model_->fingerprint());
        for (int64_t dim : {c.n_layers, c.d_model, c.cema_ndim, c.norm_groups, c.chunk_size, c.z_dim, c.value_dim})
            out.pod(uint32_t(dim));
        out.pod(uint32_t(0));
        out.pod(position_);
        out.pod(tsn_count_);
        out.pod(uint32_t(kv_len_));
        out.pod(uint32_t(history_len_));

        const int64_t dn = c.d_model * c.cema_ndim;
        std::vector<float> row(size_t(std::max({2 * dn, c.value_dim, c.z_dim})));
        const State &self = *this;
        for (int64_t l = 0; l < c.n_layers; ++l) {
            out.floats(self.tsn_mean(l), c.norm_groups);
            out.floats(self.tsn_var(l), c.norm_groups);
            const float *re = self.cema_re(l), *im = self.cema_im(l);
            for (int64_t d = 0; d < c.d_model; ++d)
                for (int64_t n = 0; n < c.cema_ndim; ++n) {
                    const size_t k = size_t(d * c.cema_ndim + n);
                    row[2 * k] = re[n * c.d_model + d];
                    row[2 * k + 1] = im[n * c.d_model + d];
                }
            out.floats(row.data(), 2 * dn);
            const float *kt = self.keys_t(l);
            for (int64_t t = 0; t < kv_len_; ++t) {
                for (int64_t z = 0; z < c.z_dim; ++z) row[size_t(z)] = kt[z * c.chunk_size + t];
                out.floats(row.data(), c.z_dim);
            }
            out.floats(self.values(l), kv_len_ * c.value_dim);
        }
        out.floats(self.tsn_mean(c.n_layers), c.norm_groups);
        out.floats(self.tsn_var(c.n_layers), c.norm_groups);
        for (int64_t i = 0; i < history_len_; ++i)
            out.pod(history_[size_t((history_start_ + i) % history_capacity())]);
        out.finish();
        sync_and_close(raw, tmp);
        file.reset();
        replace_file(tmp, path);
    } catch (...) {
        file.reset();
        std::remove(tmp.c_str());
        throw;
    }
}

std::unique_ptr<State> State::load(const Model &model, const std::string &path) {
    FILE *raw = std::fopen(path.c_str(), "rb");
    if (!raw) fail(MGL_ERR_IO, path + ": cannot open: " + std::strerror(errno));
    FilePtr file(raw);
#ifdef _WIN32
    if (_fseeki64(raw, 0, SEEK_END) != 0) fail(MGL_ERR_IO, path + ": cannot determine the file size");
    const int64_t size = _ftelli64(raw);
    _fseeki64(raw, 0, SEEK_SET);
#else
    struct stat st;
    if (fstat(fileno(raw), &st) != 0) fail(MGL_ERR_IO, path + ": cannot stat: " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) fail(MGL_ERR_IO, path + ": not a regular file");
    const int64_t size = int64_t(st.st_size);
#endif
    const std::string where = path + ": ";
    if (size < kHeaderBytes + 8)
        fail(MGL_ERR_FORMAT, where + "truncated state file (" + std::to_string(size) + " bytes, at least " +
                                 std::to_string(kHeaderBytes + 8) + " expected)");
    StateReader in(raw, path);
    char magic[8];
    in.bytes(magic, 8);
    if (std::memcmp(magic, kMagic, 8) != 0) fail(MGL_ERR_FORMAT, where + "not a MEGALODON state file (bad magic)");
    const Header h = read_header(in);
    if (h.version != kVersion)
        fail(MGL_ERR_UNSUPPORTED, where + "state file version " + std::to_string(h.version) + " is not supported (" +
                                      std::to_string(kVersion) + " expected)");

    // Lengths: the header must describe exactly this many bytes before any of them is trusted.
    if (h.chunk_size == 0 || h.kv_len >= h.chunk_size)
        fail(MGL_ERR_FORMAT, where + "kv_len " + std::to_string(h.kv_len) + " is not below chunk_size " +
                                 std::to_string(h.chunk_size));
    if (uint64_t(h.history_len) > uint64_t(State::kRefreshWindowChunks) * h.chunk_size)
        fail(MGL_ERR_FORMAT, where + "history_len " + std::to_string(h.history_len) + " exceeds " +
                                 std::to_string(State::kRefreshWindowChunks) + " chunks");
    const uint64_t expected = expected_file_size(h);
    if (expected != uint64_t(size))
        fail(MGL_ERR_FORMAT, where + "file has " + std::to_string(size) + " bytes but its header describes " +
                                 (expected ? std::to_string(expected) + " bytes" : std::string("impossible sizes")) +
                                 " (truncated or corrupt)");

    // Checksum over everything before the last 8 bytes.
    {
        Fnv1a64 sum;
        std::vector<uint8_t> block(kIoBlock);
        if (std::fseek(raw, 0, SEEK_SET) != 0) fail(MGL_ERR_IO, where + "seek failed");
        int64_t left = size - 8;
        while (left > 0) {
            const size_t take = size_t(std::min<int64_t>(left, int64_t(kIoBlock)));
            in.bytes(block.data(), take);
            sum.update(block.data(), take);
            left -= take;
        }
        const uint64_t stored = in.pod<uint64_t>();
        if (stored != sum.h)
            fail(MGL_ERR_FORMAT, where + "checksum mismatch (stored " + hex64(stored) + ", computed " + hex64(sum.h) +
                                     "): the file is corrupt");
    }

    const ModelConfig &c = model.config();
    const bool same_dims = int64_t(h.n_layers) == c.n_layers && int64_t(h.d_model) == c.d_model &&
                           int64_t(h.cema_ndim) == c.cema_ndim && int64_t(h.norm_groups) == c.norm_groups &&
                           int64_t(h.chunk_size) == c.chunk_size && int64_t(h.z_dim) == c.z_dim &&
                           int64_t(h.value_dim) == c.value_dim;
    if (h.fingerprint != model.fingerprint() || !same_dims)
        fail(MGL_ERR_MISMATCH, where + "the state belongs to model " + hex64(h.fingerprint) + " (" +
                                   std::to_string(h.n_layers) + " layers, d_model " + std::to_string(h.d_model) +
                                   ", chunk " + std::to_string(h.chunk_size) + "), not to this model " +
                                   hex64(model.fingerprint()) + " (" + std::to_string(c.n_layers) + " layers, d_model " +
                                   std::to_string(c.d_model) + ", chunk " + std::to_string(c.chunk_size) + ")");

    // Consistency of the counters (FORMAT.md 2, megalodon.md 6.4).
    if (h.flags & ~uint32_t(State::kKnownFlags))
        fail(MGL_ERR_FORMAT, where + "unknown flags " + std::to_string(h.flags));
    if (h.reserved != 0) fail(MGL_ERR_FORMAT, where + "reserved field is " + std::to_string(h.reserved) + ", not 0");
    const int64_t C = c.chunk_size;
    const bool refresh = (h.flags & MGL_STATE_TSN_REFRESH) != 0;
    if (h.position < 0) fail(MGL_ERR_FORMAT, where + "negative position " + std::to_string(h.position));
    if (int64_t(h.kv_len) != h.position % C)
        fail(MGL_ERR_FORMAT, where + "kv_len " + std::to_string(h.kv_len) + " does not match position " +
                                 std::to_string(h.position) + " mod chunk " + std::to_string(C));
    const int64_t refresh_start = State::kRefreshMinChunks * C;
    const int64_t expected_count = refresh && h.position >= refresh_start
                                       ? State::kRefreshWindowChunks * C + h.position % (State::kRefreshEveryChunks * C)
                                       : h.position;
    if (h.tsn_count != expected_count)
        fail(MGL_ERR_FORMAT, where + "tsn_count " + std::to_string(h.tsn_count) + " is inconsistent with position " +
                                 std::to_string(h.position) + " (expected " + std::to_string(expected_count) + ")");
    const int64_t expected_history = refresh ? std::min(h.position, State::kRefreshWindowChunks * C) : 0;
    if (int64_t(h.history_len) != expected_history)
        fail(MGL_ERR_FORMAT, where + "history_len " + std::to_string(h.history_len) + " (expected " +
                                 std::to_string(expected_history) + ")");

    // Contents.
    std::unique_ptr<State> state(new State(model, int(h.flags)));
    State &s = *state;
    s.position_ = h.position;
    s.tsn_count_ = h.tsn_count;
    s.kv_len_ = h.kv_len;
    if (std::fseek(raw, long(kHeaderBytes), SEEK_SET) != 0) fail(MGL_ERR_IO, where + "seek failed");
    auto check_finite = [&](const float *p, int64_t n, const std::string &what, bool non_negative) {
        for (int64_t i = 0; i < n; ++i)
            if (!std::isfinite(p[i]) || (non_negative && p[i] < 0))
                fail(MGL_ERR_FORMAT, where + what + " holds an invalid value");
    };
    const int64_t dn = c.d_model * c.cema_ndim;
    std::vector<float> row(size_t(std::max({2 * dn, c.value_dim, c.z_dim})));
    for (int64_t l = 0; l < c.n_layers; ++l) {
        const std::string layer = "layer " + std::to_string(l);
        in.floats(s.tsn_mean(l), c.norm_groups);
        in.floats(s.tsn_var(l), c.norm_groups);
        check_finite(s.tsn_mean(l), c.norm_groups, layer + " TimestepNorm mean", false);
        check_finite(s.tsn_var(l), c.norm_groups, layer + " TimestepNorm variance", true);
        in.floats(row.data(), 2 * dn);
        check_finite(row.data(), 2 * dn, layer + " CEMA state", false);
        float *re = s.cema_re(l), *im = s.cema_im(l);
        for (int64_t d = 0; d < c.d_model; ++d)
            for (int64_t n = 0; n < c.cema_ndim; ++n) {
                const size_t k = size_t(d * c.cema_ndim + n);
                re[n * c.d_model + d] = row[2 * k];
                im[n * c.d_model + d] = row[2 * k + 1];
            }
        float *kt = s.keys_t(l);
        for (int64_t t = 0; t < s.kv_len_; ++t) {
            in.floats(row.data(), c.z_dim);
            check_finite(row.data(), c.z_dim, layer + " keys", false);
            for (int64_t z = 0; z < c.z_dim; ++z) kt[z * C + t] = row[size_t(z)];
        }
        in.floats(s.values(l), s.kv_len_ * c.value_dim);
        check_finite(s.values(l), s.kv_len_ * c.value_dim, layer + " values", false);
    }
    in.floats(s.tsn_mean(c.n_layers), c.norm_groups);
    in.floats(s.tsn_var(c.n_layers), c.norm_groups);
    check_finite(s.tsn_mean(c.n_layers), c.norm_groups, "final norm mean", false);
    check_finite(s.tsn_var(c.n_layers), c.norm_groups, "final norm variance", true);
    for (int64_t i = 0; i < int64_t(h.history_len); ++i) {
        const int32_t token = in.pod<int32_t>();
        if (token < 0 || token >= c.n_vocab)
            fail(MGL_ERR_FORMAT, where + "history token " + std::to_string(token) + " is out of range");
        s.history_[size_t(i)] = token;
    }
    s.history_start_ = 0;
    s.history_len_ = h.history_len;
    return state;
}

}  // namespace mgl
