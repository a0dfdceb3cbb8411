// Model loading: configuration keys, bounds checked before anything large is allocated, tensor
// validation, the coefficients precomputed once (CEMA p/q/η, RoPE tables), scratch buffers and
// the info JSON.
#include "model.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <new>
#include <thread>

#include "common.h"
#include "state.h"

namespace mgl {

// ------------------------------------------------------------------------------------------
// FloatBuffer

FloatBuffer::~FloatBuffer() { std::free(data_); }

void FloatBuffer::allocate(size_t n) {
    std::free(data_);
    data_ = nullptr;
    size_ = 0;
    if (n == 0) return;
    if (n > (std::numeric_limits<size_t>::max() - 63) / sizeof(float)) throw std::bad_alloc();
    const size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    data_ = static_cast<float *>(std::aligned_alloc(64, bytes));
    if (!data_) throw std::bad_alloc();
    size_ = n;
}

namespace {

// Largest state (KV, CEMA, statistics) and largest scratch memory a model may ask for.
constexpr uint64_t kMaxStateBytes = uint64_t(16) << 30;
constexpr uint64_t kMaxScratchBytes = uint64_t(16) << 30;
constexpr int kMaxThreads = 1024;
constexpr double kPi = 3.14159265358979323846;

// Saturating arithmetic for the memory estimates: any overflow reads as "too large".
constexpr uint64_t kHuge = std::numeric_limits<uint64_t>::max();
uint64_t mul(uint64_t a, uint64_t b) { return a != 0 && b > kHuge / a ? kHuge : a * b; }
uint64_t add(uint64_t a, uint64_t b) { return b > kHuge - a ? kHuge : a + b; }

std::string gib(uint64_t bytes) {
    if (bytes == kHuge) return "more than 2^64 bytes";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(uint64_t(1) << 30));
    return buf;
}

int resolve_threads(int n_threads) {
    if (n_threads <= 0) {
        const unsigned hw = std::thread::hardware_concurrency();
        n_threads = hw == 0 ? 1 : int(std::min<unsigned>(hw, kMaxThreads));
    }
    if (n_threads > kMaxThreads)
        fail(MGL_ERR_INVALID_ARG, "n_threads = " + std::to_string(n_threads) + " is more than " +
                                      std::to_string(kMaxThreads));
    return n_threads;
}

std::string shape_string(const std::vector<int64_t> &dims) {
    std::string s = "[";
    for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + "]";
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

void json_string(std::string &out, const std::string &s) {
    out += '"';
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += char(c);
        }
    }
    out += '"';
}

// Tensor lookup with the checks of FORMAT.md 1.2. Shapes are given in PyTorch order.
class TensorBinder {
public:
    TensorBinder(const GgufFile &file, ParamCounts &params, int *type_counts)
        : file_(file), params_(params), type_counts_(type_counts) {}

    enum class Group { Embedding, Blocks, Head, ExtraHeads };

    const GgufTensor &get(const std::string &name, const std::vector<int64_t> &shape, bool f32_only, Group group) {
        const GgufTensor *t = file_.tensor(name);
        if (!t) fail(MGL_ERR_FORMAT, file_.path() + ": required tensor '" + name + "' is missing");
        // GGUF lists ne[0] (contiguous) first: the reverse of the PyTorch order. Trailing
        // dimensions of size 1 carry no information and are ignored.
        std::vector<int64_t> found;
        for (int d = t->n_dims - 1; d >= 0; --d) found.push_back(t->ne[d]);
        while (found.size() > shape.size() && found.front() == 1) found.erase(found.begin());
        if (found != shape)
            fail(MGL_ERR_FORMAT, file_.path() + ": tensor '" + name + "' has shape " + shape_string(found) +
                                     ", expected " + shape_string(shape));
        if (f32_only && t->type != DType::F32)
            fail(MGL_ERR_FORMAT, file_.path() + ": tensor '" + name + "' has type " + dtype_name(t->type) +
                                     ", expected f32");
        int64_t &count = group == Group::Embedding ? params_.embedding
                         : group == Group::Blocks  ? params_.blocks
                         : group == Group::Head    ? params_.head
                                                   : params_.extra_heads;
        count += t->n_elements();
        switch (t->type) {
            case DType::F32: ++type_counts_[0]; break;
            case DType::F16: ++type_counts_[1]; break;
            case DType::BF16: ++type_counts_[2]; break;
            case DType::Q8_0: ++type_counts_[3]; break;
        }
        return *t;
    }

    std::vector<float> vector(const std::string &name, const std::vector<int64_t> &shape, Group group) {
        const GgufTensor &t = get(name, shape, true, group);
        std::vector<float> v(static_cast<size_t>(t.n_elements()));
        std::memcpy(v.data(), t.data, v.size() * sizeof(float));
        return v;
    }

    // Matrix [rows = out][cols = in] of any supported type.
    WeightView matrix(const std::string &name, int64_t rows, int64_t cols, Group group) {
        const GgufTensor &t = get(name, {rows, cols}, false, group);
        WeightView w;
        w.type = t.type;
        w.data = t.data;
        w.rows = rows;
        w.cols = cols;
        return w;
    }

private:
    const GgufFile &file_;
    ParamCounts &params_;
    int *type_counts_;
};

}  // namespace

// ------------------------------------------------------------------------------------------
// Loading

std::unique_ptr<Model> Model::load(const std::string &path, int n_threads, bool use_mmap) {
    const int threads = resolve_threads(n_threads);
    std::unique_ptr<Model> model(new Model());
    model->file_ = GgufFile::open(path, use_mmap);
    model->read_config();
    model->check_memory_bounds(threads);
    model->bind_tensors();
    model->tokenizer_ = Tokenizer::from_gguf(*model->file_);
    if (model->tokenizer_->n_vocab() != model->cfg_.n_vocab)
        fail(MGL_ERR_FORMAT, path + ": the tokenizer has " + std::to_string(model->tokenizer_->n_vocab()) +
                                 " tokens but token_embd.weight has " + std::to_string(model->cfg_.n_vocab) + " rows");
    model->fingerprint_ = model->file_->fingerprint();
    model->precompute_rope();
    model->pool_ = std::make_unique<ThreadPool>(threads);
    model->pack_weights();
    model->allocate_scratch();
    model->build_info_json();
    return model;
}

void Model::read_config() {
    const GgufFile &f = *file_;
    const std::string &path = f.path();
    const auto arch = f.get_string("general.architecture");
    if (!arch) fail(MGL_ERR_FORMAT, path + ": general.architecture is missing");
    if (*arch != "megalodon")
        fail(MGL_ERR_UNSUPPORTED, path + ": architecture '" + *arch + "' is not supported (expected 'megalodon')");

    // Bounds far above any real model; the memory checks below are the binding limits.
    auto dim = [&](const std::string &key, uint64_t max_value) -> int64_t {
        const auto v = f.get_uint(key);
        if (!v) fail(MGL_ERR_FORMAT, path + ": required key " + key + " is missing");
        if (*v < 1 || *v > max_value)
            fail(MGL_ERR_FORMAT, path + ": " + key + " = " + std::to_string(*v) + " is outside [1, " +
                                     std::to_string(max_value) + "]");
        return int64_t(*v);
    };
    auto flag = [&](const std::string &key, bool fallback) {
        const auto v = f.get_bool(key);
        return v ? *v : fallback;
    };
    constexpr uint64_t kMaxDim = uint64_t(1) << 24;
    ModelConfig &c = cfg_;
    c.n_layers = dim("megalodon.block_count", 1 << 16);
    c.d_model = dim("megalodon.embedding_length", kMaxDim);
    c.cema_ndim = dim("megalodon.cema_ndim", 1 << 12);
    c.n_heads = dim("megalodon.attention.head_count", kMaxDim);
    c.z_dim = dim("megalodon.attention.z_dim", kMaxDim);
    c.value_dim = dim("megalodon.attention.value_dim", kMaxDim);
    c.ffn_dim = dim("megalodon.feed_forward_length", kMaxDim);
    c.chunk_size = dim("megalodon.chunk_size", kMaxDim);
    c.norm_groups = dim("megalodon.norm_groups", kMaxDim);

    const auto eps = f.get_float("megalodon.norm_eps");
    c.norm_eps = eps ? float(*eps) : 1e-5f;
    if (!(std::isfinite(c.norm_eps) && c.norm_eps >= 0))
        fail(MGL_ERR_FORMAT, path + ": megalodon.norm_eps = " + std::to_string(c.norm_eps) + " is not a finite value >= 0");
    const auto base = f.get_float("megalodon.rope.freq_base");
    if (!base) fail(MGL_ERR_FORMAT, path + ": required key megalodon.rope.freq_base is missing");
    c.rope_base = float(*base);
    if (!(std::isfinite(c.rope_base) && c.rope_base > 0))
        fail(MGL_ERR_FORMAT, path + ": megalodon.rope.freq_base = " + std::to_string(*base) + " is not a finite value > 0");
    c.rope_bf16_freqs = flag("megalodon.rope.bf16_freqs", true);
    const auto swiglu = f.get_bool("megalodon.swiglu");
    if (!swiglu) fail(MGL_ERR_FORMAT, path + ": required key megalodon.swiglu is missing");
    c.swiglu = *swiglu;
    c.scale_embedding = flag("megalodon.scale_embedding", false);
    c.tied_embedding = flag("megalodon.tied_embedding", false);

    c.n_predict = f.has("megalodon.mtp.head_count") ? dim("megalodon.mtp.head_count", 64) : 1;
    if (c.n_predict > 1) c.mtp_hidden = dim("megalodon.mtp.hidden_dim", kMaxDim);
    const std::string source = f.get_string("megalodon.mtp.source").value_or("trunk");
    if (source != "trunk" && source != "final")
        fail(MGL_ERR_FORMAT, path + ": megalodon.mtp.source = '" + source + "' (expected 'trunk' or 'final')");
    c.mtp_source_final = source == "final";

    const std::vector<std::string> *tokens = f.get_string_array("tokenizer.ggml.tokens");
    if (!tokens) fail(MGL_ERR_FORMAT, path + ": required key tokenizer.ggml.tokens is missing");
    if (tokens->empty() || tokens->size() > uint64_t(std::numeric_limits<int32_t>::max()))
        fail(MGL_ERR_FORMAT, path + ": tokenizer.ggml.tokens has " + std::to_string(tokens->size()) + " entries");
    c.n_vocab = int64_t(tokens->size());

    auto divisible = [&](int64_t a, const char *an, int64_t b, const char *bn) {
        if (a % b != 0)
            fail(MGL_ERR_FORMAT, path + ": " + an + " = " + std::to_string(a) + " is not a multiple of " + bn +
                                     " = " + std::to_string(b));
    };
    divisible(c.d_model, "embedding_length", c.norm_groups, "norm_groups");
    divisible(c.z_dim, "attention.z_dim", c.n_heads, "attention.head_count");
    divisible(c.value_dim, "attention.value_dim", c.n_heads, "attention.head_count");
    if (c.head_z() % 2 != 0)
        fail(MGL_ERR_FORMAT, path + ": the per-head z dimension " + std::to_string(c.head_z()) +
                                 " is odd (RoPE rotates pairs)");
}

void Model::check_memory_bounds(int n_threads) const {
    const ModelConfig &c = cfg_;
    const uint64_t L = c.n_layers, D = c.d_model, N = c.cema_ndim, Z = c.z_dim, E = c.value_dim;
    const uint64_t C = c.chunk_size, G = c.norm_groups, V = c.n_vocab, R = std::min<uint64_t>(C, kMaxSegmentRows);
    const uint64_t F = std::max<uint64_t>(c.ffn_dim, c.mtp_hidden);

    // State: per layer statistics, CEMA and a full chunk of keys and values; final norm, last
    // logits of every head and the refresh history.
    uint64_t per_layer = add(add(mul(2, G), mul(mul(2, D), N)), mul(C, add(Z, E)));
    uint64_t state = mul(4, add(add(mul(L, per_layer), mul(2, G)), add(mul(uint64_t(c.n_predict), V),
                                                                        mul(uint64_t(State::kRefreshWindowChunks), C))));
    if (state > kMaxStateBytes)
        fail(MGL_ERR_UNSUPPORTED, file_->path() + ": a state of this model would need " + gib(state) +
                                      " (limit " + gib(kMaxStateBytes) + "); chunk_size = " + std::to_string(C) +
                                      ", z_dim = " + std::to_string(Z) + ", value_dim = " + std::to_string(E) +
                                      ", block_count = " + std::to_string(L));

    // Scratch: per-row activations, the score block, per-thread attention scores, RoPE tables.
    uint64_t per_row = add(add(add(mul(6, D), mul(2, Z)), add(mul(3, E), mul(2, F))), mul(2, G));
    uint64_t scratch = mul(4, add(add(mul(R, per_row), mul(kScoreRows, V)),
                                  add(mul(mul(uint64_t(n_threads), kAttnTile), C), mul(C, Z / c.n_heads))));
    if (scratch > kMaxScratchBytes)
        fail(MGL_ERR_UNSUPPORTED, file_->path() + ": the working memory of this model would need " + gib(scratch) +
                                      " (limit " + gib(kMaxScratchBytes) + ")");
}

void Model::bind_tensors() {
    const ModelConfig &c = cfg_;
    const int64_t D = c.d_model, N = c.cema_ndim, Z = c.z_dim, E = c.value_dim, F = c.ffn_dim, V = c.n_vocab;
    using G = TensorBinder::Group;
    TensorBinder bind(*file_, params_, tensor_type_counts_);

    // The vocabulary size comes from the tokenizer; the embedding must agree with it.
    if (const GgufTensor *embd = file_->tensor("token_embd.weight"); embd && embd->n_dims >= 2 && embd->ne[1] != V)
        fail(MGL_ERR_FORMAT, file_->path() + ": token_embd.weight has " + std::to_string(embd->ne[1]) +
                                 " rows but tokenizer.ggml.tokens has " + std::to_string(V) + " entries");
    token_embd_ = bind.matrix("token_embd.weight", V, D, G::Embedding);

    layers_.resize(static_cast<size_t>(c.n_layers));
    const double inv_sqrt_n = 1.0 / std::sqrt(double(N));
    const float inv_sqrt_dz = float(1.0 / std::sqrt(double(c.head_z())));
    for (int64_t i = 0; i < c.n_layers; ++i) {
        LayerWeights &l = layers_[size_t(i)];
        const std::string p = "blk." + std::to_string(i) + ".";
        l.tsn_weight = bind.vector(p + "tsn.weight", {D}, G::Blocks);
        l.tsn_bias = bind.vector(p + "tsn.bias", {D}, G::Blocks);

        // CEMA coefficients from the stored logits (megalodon.md 2.1), in double, stored as f32.
        const std::vector<float> alpha = bind.vector(p + "cema.alpha", {D, N}, G::Blocks);
        const std::vector<float> delta = bind.vector(p + "cema.delta", {D, N}, G::Blocks);
        const std::vector<float> theta = bind.vector(p + "cema.theta", {D}, G::Blocks);
        const std::vector<float> gamma = bind.vector(p + "cema.gamma", {D, N, 2}, G::Blocks);
        l.cema_omega = bind.vector(p + "cema.omega", {D}, G::Blocks);
        const size_t dn = size_t(D * N);
        l.cema_p.resize(dn);
        l.cema_q_re.resize(dn);
        l.cema_q_im.resize(dn);
        l.cema_eta_re.resize(dn);
        l.cema_eta_im.resize(dn);
        for (int64_t d = 0; d < D; ++d) {
            const double base_angle = sigmoid(theta[size_t(d)]) * (2.0 * kPi / double(N));
            for (int64_t n = 0; n < N; ++n) {
                const size_t k = size_t(d * N + n);  // stored order [D][N]
                const size_t o = size_t(n * D + d);  // runtime order [N][D]
                const double a = sigmoid(alpha[k]);
                const double magnitude = 1.0 - a * sigmoid(delta[k]);
                const double angle = double(n + 1) * base_angle;
                l.cema_p[o] = float(a);
                l.cema_q_re[o] = float(magnitude * std::cos(angle));
                l.cema_q_im[o] = float(magnitude * std::sin(angle));
                l.cema_eta_re[o] = float(gamma[2 * k] * inv_sqrt_n);
                l.cema_eta_im[o] = float(gamma[2 * k + 1] * inv_sqrt_n);
            }
        }

        l.rms_weight = bind.vector(p + "rms.weight", {D}, G::Blocks);
        l.attn_z = bind.matrix(p + "attn_z.weight", Z, D, G::Blocks);
        l.attn_z_bias = bind.vector(p + "attn_z.bias", {Z}, G::Blocks);
        l.attn_v = bind.matrix(p + "attn_v.weight", E, D, G::Blocks);
        l.attn_v_bias = bind.vector(p + "attn_v.bias", {E}, G::Blocks);
        l.attn_r = bind.matrix(p + "attn_r.weight", E, D, G::Blocks);
        l.attn_r_bias = bind.vector(p + "attn_r.bias", {E}, G::Blocks);
        l.attn_h1 = bind.matrix(p + "attn_h1.weight", D, D, G::Blocks);
        l.attn_h1_bias = bind.vector(p + "attn_h1.bias", {D}, G::Blocks);
        l.attn_h2 = bind.matrix(p + "attn_h2.weight", D, E, G::Blocks);
        const std::vector<float> qk_scale = bind.vector(p + "attn_qk.scale", {2, Z}, G::Blocks);
        const std::vector<float> qk_bias = bind.vector(p + "attn_qk.bias", {2, Z}, G::Blocks);
        l.q_scale.resize(size_t(Z));
        l.k_scale.resize(size_t(Z));
        for (int64_t j = 0; j < Z; ++j) {
            l.q_scale[size_t(j)] = qk_scale[size_t(j)] * inv_sqrt_dz;
            l.k_scale[size_t(j)] = qk_scale[size_t(Z + j)] * inv_sqrt_dz;
        }
        l.q_bias.assign(qk_bias.begin(), qk_bias.begin() + Z);
        l.k_bias.assign(qk_bias.begin() + Z, qk_bias.end());
        l.ffn_norm_weight = bind.vector(p + "ffn_norm.weight", {D}, G::Blocks);
        l.ffn_norm_bias = bind.vector(p + "ffn_norm.bias", {D}, G::Blocks);
        l.ffn_gate = bind.matrix(p + "ffn_gate.weight", F, D, G::Blocks);
        if (c.swiglu) l.ffn_up = bind.matrix(p + "ffn_up.weight", F, D, G::Blocks);
        l.ffn_down = bind.matrix(p + "ffn_down.weight", D, F, G::Blocks);
    }

    output_norm_weight_ = bind.vector("output_norm.weight", {D}, G::Head);
    output_norm_bias_ = bind.vector("output_norm.bias", {D}, G::Head);
    lm_head_ = c.tied_embedding ? token_embd_ : bind.matrix("output.weight", V, D, G::Head);

    for (int64_t j = 2; j <= c.n_predict; ++j) {
        const std::string p = "mtp." + std::to_string(j) + ".";
        MtpHeadWeights h;
        h.norm_weight = bind.vector(p + "norm.weight", {D}, G::ExtraHeads);
        h.gate = bind.matrix(p + "gate.weight", c.mtp_hidden, D, G::ExtraHeads);
        h.up = bind.matrix(p + "up.weight", c.mtp_hidden, D, G::ExtraHeads);
        h.down = bind.matrix(p + "down.weight", D, c.mtp_hidden, G::ExtraHeads);
        mtp_heads_.push_back(std::move(h));
    }
}

// Q8_0 matrices get int8 panels when the CPU's kernels have an int8 GEMM: a product then costs
// about the same per row whether it has 1 row (decoding) or a few (a speculative window), and
// every row comes out exactly as it would alone. The embedding keeps its rows for lookups; the
// tied unembedding gets its own panels.
void Model::pack_weights() {
    std::vector<WeightView *> matrices;
    for (LayerWeights &l : layers_)
        for (WeightView *w : {&l.attn_z, &l.attn_v, &l.attn_r, &l.attn_h1, &l.attn_h2, &l.ffn_gate, &l.ffn_up,
                              &l.ffn_down})
            if (w->data) matrices.push_back(w);
    for (MtpHeadWeights &h : mtp_heads_)
        for (WeightView *w : {&h.gate, &h.up, &h.down}) matrices.push_back(w);
    matrices.push_back(&lm_head_);
    for (WeightView *w : matrices) {
        const int64_t bytes = q8_panels_bytes(*w);
        if (bytes == 0) continue;
        FloatBuffer panels(size_t(bytes) / sizeof(float));
        uint8_t *dst = reinterpret_cast<uint8_t *>(panels.data());
        pack_q8_panels(pool_.get(), *w, dst);
        w->q8_panels = dst;
        packed_weights_.push_back(std::move(panels));
    }
}

// Rotation tables for chunk positions 0..C-1 (megalodon.md 4.2): θ_m = base^(-2m/d_z) as f32,
// optionally rounded to bf16; the angle p·θ_m and its cosine and sine in double.
void Model::precompute_rope() {
    const int64_t half = cfg_.head_z() / 2, C = cfg_.chunk_size;
    std::vector<double> freqs(static_cast<size_t>(half));
    for (int64_t m = 0; m < half; ++m) {
        float f = float(std::pow(double(cfg_.rope_base), -double(2 * m) / double(cfg_.head_z())));
        if (cfg_.rope_bf16_freqs) f = bf16_to_fp32(fp32_to_bf16(f));
        freqs[size_t(m)] = f;
    }
    rope_cos_.allocate(size_t(C * half));
    rope_sin_.allocate(size_t(C * half));
    for (int64_t pos = 0; pos < C; ++pos)
        for (int64_t m = 0; m < half; ++m) {
            const double angle = double(pos) * freqs[size_t(m)];
            rope_cos_[size_t(pos * half + m)] = float(std::cos(angle));
            rope_sin_[size_t(pos * half + m)] = float(std::sin(angle));
        }
}

void Model::allocate_scratch() {
    const ModelConfig &c = cfg_;
    Scratch &s = scratch_;
    const size_t R = size_t(std::min(c.chunk_size, kMaxSegmentRows));
    const size_t D = size_t(c.d_model), Z = size_t(c.z_dim), E = size_t(c.value_dim), G = size_t(c.norm_groups);
    const size_t F = size_t(std::max(c.ffn_dim, c.mtp_hidden));
    s.max_rows = int64_t(R);
    s.x.allocate(R * D);
    s.x_hat.allocate(R * D);
    s.m.allocate(R * D);
    s.y.allocate(R * D);
    s.proj.allocate(R * D);
    if (c.n_predict > 1) {
        s.trunk.allocate(R * D);
        s.heads_normed.allocate(size_t(c.n_predict) * D);
    }
    s.z.allocate(R * Z);
    s.q.allocate(R * Z);
    s.v.allocate(R * E);
    s.r.allocate(R * E);
    s.o.allocate(R * E);
    s.ffn_a.allocate(R * F);
    s.ffn_b.allocate(R * F);
    s.final_mean.allocate(R * G);
    s.final_rstd.allocate(R * G);
    s.logits.allocate(size_t(kScoreRows * c.n_vocab));
    allocate_attention_scratch();
}

void Model::allocate_attention_scratch() {
    scratch_.attn_threads = pool_->size();
    scratch_.attn_scores.allocate(size_t(pool_->size()) * size_t(kAttnTile) * size_t(cfg_.chunk_size));
}

void Model::set_threads(int n_threads) {
    const int threads = resolve_threads(n_threads);
    if (threads == pool_->size()) return;
    check_memory_bounds(threads);
    pool_ = std::make_unique<ThreadPool>(threads);
    allocate_attention_scratch();
}

WindowStats Model::window_stats(int k) const {
    std::lock_guard<std::mutex> guard(window_stats_mutex_);
    const auto found = window_stats_.find({k, pool_->size()});
    if (found != window_stats_.end()) return found->second;
    WindowStats fresh;
    fresh.lengths.resize(size_t(k));
    fresh.depths.resize(size_t(k));
    return fresh;
}

void Model::set_window_stats(int k, const WindowStats &stats) const {
    std::lock_guard<std::mutex> guard(window_stats_mutex_);
    window_stats_[{k, pool_->size()}] = stats;
}

int64_t Model::state_bytes_at_boundary() const {
    const ModelConfig &c = cfg_;
    const int64_t header = 8 + 4 + 4 + 8 + 7 * 4 + 4 + 8 + 8 + 4 + 4;
    const int64_t per_layer = 2 * c.norm_groups * 4 + c.d_model * c.cema_ndim * 8;
    return header + c.n_layers * per_layer + 2 * c.norm_groups * 4 + 8;
}

void Model::build_info_json() {
    const ModelConfig &c = cfg_;
    std::string j = "{";
    auto key = [&](const char *k) {
        if (j.size() > 1 && j.back() != '{') j += ',';
        json_string(j, k);
        j += ':';
    };
    auto num = [&](const char *k, int64_t v) {
        key(k);
        j += std::to_string(v);
    };
    auto boolean = [&](const char *k, bool v) {
        key(k);
        j += v ? "true" : "false";
    };
    auto real = [&](const char *k, float v) {
        key(k);
        // Shortest decimal form that reads back as the same float (1e-05, not 9.99999975e-06).
        char buf[32];
        for (int digits = 6; digits <= 9; ++digits) {
            std::snprintf(buf, sizeof buf, "%.*g", digits, double(v));
            if (std::strtof(buf, nullptr) == v) break;
        }
        j += buf;
    };
    auto str = [&](const char *k, const std::string &v) {
        key(k);
        json_string(j, v);
    };

    str("architecture", "megalodon");
    str("name", file_->get_string("general.name").value_or(""));
    str("file", file_->path());
    key("config");
    j += '{';
    num("n_layers", c.n_layers);
    num("d_model", c.d_model);
    num("cema_ndim", c.cema_ndim);
    num("n_attn_heads", c.n_heads);
    num("z_dim", c.z_dim);
    num("value_dim", c.value_dim);
    num("ffn_dim", c.ffn_dim);
    num("chunk_size", c.chunk_size);
    num("norm_groups", c.norm_groups);
    num("n_vocab", c.n_vocab);
    real("norm_eps", c.norm_eps);
    real("rope_freq_base", c.rope_base);
    boolean("rope_bf16_freqs", c.rope_bf16_freqs);
    boolean("swiglu", c.swiglu);
    boolean("scale_embedding", c.scale_embedding);
    boolean("tied_embedding", c.tied_embedding);
    num("n_predict_heads", c.n_predict);
    num("mtp_hidden_dim", c.mtp_hidden);
    str("mtp_source", c.mtp_source_final ? "final" : "trunk");
    j += '}';
    key("n_params");
    j += '{';
    num("total", params_.total());
    num("embedding", params_.embedding);
    num("blocks", params_.blocks);
    num("head", params_.head);
    num("extra_heads", params_.extra_heads);
    j += '}';
    key("tensor_types");
    j += '{';
    num("f32", tensor_type_counts_[0]);
    num("f16", tensor_type_counts_[1]);
    num("bf16", tensor_type_counts_[2]);
    num("q8_0", tensor_type_counts_[3]);
    j += '}';
    key("tokenizer");
    j += '{';
    str("kind", tokenizer_->kind());
    num("n_vocab", tokenizer_->n_vocab());
    num("bos_token", tokenizer_->bos());
    num("eos_token", tokenizer_->eos());
    j += '}';
    char fp[24];
    std::snprintf(fp, sizeof fp, "%016" PRIx64, fingerprint_);
    str("fingerprint", fp);
    num("state_bytes", state_bytes_at_boundary());
    num("chunk_size", c.chunk_size);
    str("cpu", cpu_features());
    j += '}';
    info_json_ = std::move(j);
}

}  // namespace mgl
