// A loaded MEGALODON model: configuration, weights (matrices stay in the GGUF mapping), the
// coefficients precomputed at load time, the tokenizer, the thread pool and the forward pass.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gguf.h"
#include "kernels.h"
#include "threadpool.h"
#include "tokenizer.h"

namespace mgl {

// 64-byte aligned, uninitialised float storage (pages are only touched when written).
class FloatBuffer {
public:
    FloatBuffer() = default;
    explicit FloatBuffer(size_t n) { allocate(n); }
    FloatBuffer(const FloatBuffer &) = delete;
    FloatBuffer &operator=(const FloatBuffer &) = delete;
    FloatBuffer(FloatBuffer &&other) noexcept { swap(other); }
    FloatBuffer &operator=(FloatBuffer &&other) noexcept {
        swap(other);
        return *this;
    }
    ~FloatBuffer();
    // Replaces the contents with n uninitialised floats; throws std::bad_alloc.
    void allocate(size_t n);
    float *data() { return data_; }
    const float *data() const { return data_; }
    size_t size() const { return size_; }
    float &operator[](size_t i) { return data_[i]; }
    const float &operator[](size_t i) const { return data_[i]; }

private:
    void swap(FloatBuffer &other) noexcept {
        std::swap(data_, other.data_);
        std::swap(size_, other.size_);
    }
    float *data_ = nullptr;
    size_t size_ = 0;
};

struct ModelConfig {
    int64_t n_layers = 0;     // L, the head-1 block included
    int64_t d_model = 0;      // D
    int64_t cema_ndim = 0;    // N
    int64_t n_heads = 0;      // H (attention)
    int64_t z_dim = 0;        // Z
    int64_t value_dim = 0;    // E
    int64_t ffn_dim = 0;      // F
    int64_t chunk_size = 0;   // C
    int64_t norm_groups = 0;  // G
    int64_t n_vocab = 0;      // V
    int64_t n_predict = 1;    // prediction heads, head 1 included
    int64_t mtp_hidden = 0;   // Fh (heads 2..n)
    bool mtp_source_final = false;  // heads 2..n read block L's output instead of block L-1's
    float norm_eps = 1e-5f;
    float rope_base = 10000.0f;
    bool rope_bf16_freqs = true;
    bool swiglu = false;
    bool scale_embedding = false;
    bool tied_embedding = false;

    int64_t head_z() const { return z_dim / n_heads; }
    int64_t head_v() const { return value_dim / n_heads; }
    int64_t group_size() const { return d_model / norm_groups; }
};

struct LayerWeights {
    std::vector<float> tsn_weight, tsn_bias;  // [D]
    // CEMA coefficients (megalodon.md 2.5) as [N][D] (the stored tensors are [D][N]), complex
    // values split into real and imaginary arrays so the recurrence vectorises along channels.
    std::vector<float> cema_p;                 // α
    std::vector<float> cema_q_re, cema_q_im;   // (1 - αδ) e^{iθ}
    std::vector<float> cema_eta_re, cema_eta_im;  // η = γ / √N
    std::vector<float> cema_omega;             // [D]
    std::vector<float> rms_weight;             // [D]
    WeightView attn_z, attn_v, attn_r, attn_h1, attn_h2;
    std::vector<float> attn_z_bias, attn_v_bias, attn_r_bias, attn_h1_bias;
    // Q = Z'·q_scale + q_bias (q_scale = stored κ_q+1 already divided by √d_z); K likewise.
    std::vector<float> q_scale, q_bias, k_scale, k_bias;  // [Z]
    std::vector<float> ffn_norm_weight, ffn_norm_bias;    // [D]
    WeightView ffn_gate, ffn_up, ffn_down;                // ffn_up: data null unless swiglu
};

struct MtpHeadWeights {
    std::vector<float> norm_weight;  // [D]
    WeightView gate, up, down;
};

// Parameter counts reported by the info JSON.
struct ParamCounts {
    int64_t embedding = 0, blocks = 0, head = 0, extra_heads = 0;
    int64_t total() const { return embedding + blocks + head + extra_heads; }
};

// Reusable buffers of the forward pass, sized once for max_rows rows per segment. Only used
// while Model::run_mutex is held; nothing in them outlives a segment.
struct Scratch {
    int64_t max_rows = 0;
    FloatBuffer x;        // [R][D] residual stream
    FloatBuffer x_hat;    // [R][D] TimestepNorm output
    FloatBuffer m;        // [R][D] CEMA output, then RMSNorm
    FloatBuffer y;        // [R][D] first hop, then LayerNorm
    FloatBuffer proj;     // [R][D] W_h1 / W_down products
    FloatBuffer trunk;    // [R][D] input of block L (heads 2..n), when the model has them
    FloatBuffer z;        // [R][Z]
    FloatBuffer q;        // [R][Z]
    FloatBuffer v;        // [R][E]
    FloatBuffer r;        // [R][E] gate, then O ⊙ R
    FloatBuffer o;        // [R][E] attention output
    FloatBuffer ffn_a;    // [R][max(F, Fh)]
    FloatBuffer ffn_b;    // [R][max(F, Fh)]
    FloatBuffer final_mean, final_rstd;  // [R][G] final-norm statistics after each row
    FloatBuffer heads_normed;  // [n_predict][D] final-norm outputs of one row's heads
    FloatBuffer logits;   // [kScoreRows][V] for mgl_score
    FloatBuffer attn_scores;  // [threads][kAttnTile][C]
    int attn_threads = 0;
};

// What speculative decoding has measured on this model for a draft width k (generate.cpp
// chooses window lengths from it): per window length, the time of a window (decaying sums, so
// recent windows count most), and per draft depth j, how often the first j drafts were all
// accepted among the windows that had at least j drafts.
struct WindowStats {
    struct Length {
        double seconds = 0, windows = 0;
        int64_t uses = 0;
    };
    struct Depth {
        double passed = 0, tried = 0;
    };
    std::vector<Length> lengths;  // [k]: windows of 1..k rows
    std::vector<Depth> depths;    // [k]: depths 1..k-1 at index 1..k-1
};

class Model {
public:
    // Rows per attention task (one GEMM-sized tile of queries).
    static constexpr int64_t kAttnTile = 64;
    // Rows whose logits mgl_score materialises at once.
    static constexpr int64_t kScoreRows = 64;
    // Longest segment the forward pass takes at once (a chunk is split further above this).
    static constexpr int64_t kMaxSegmentRows = 512;

    // Loads and validates a GGUF file; throws mgl::Error naming what is wrong.
    static std::unique_ptr<Model> load(const std::string &path, int n_threads, bool use_mmap);

    void set_threads(int n_threads);
    int n_threads() const { return pool_->size(); }
    ThreadPool *pool() const { return pool_.get(); }

    const ModelConfig &config() const { return cfg_; }
    const Tokenizer &tokenizer() const { return *tokenizer_; }
    uint64_t fingerprint() const { return fingerprint_; }
    const std::string &path() const { return file_->path(); }
    const ParamCounts &params() const { return params_; }
    const std::string &info_json() const { return info_json_; }
    // Bytes of a saved state of this model at a chunk boundary without refresh history.
    int64_t state_bytes_at_boundary() const;

    // Weights.
    const WeightView &token_embd() const { return token_embd_; }
    const WeightView &lm_head() const { return lm_head_; }
    const std::vector<LayerWeights> &layers() const { return layers_; }
    const std::vector<float> &output_norm_weight() const { return output_norm_weight_; }
    const std::vector<float> &output_norm_bias() const { return output_norm_bias_; }
    const std::vector<MtpHeadWeights> &mtp_heads() const { return mtp_heads_; }  // heads 2..n
    // RoPE rotation for chunk position p, pair m: cos at [p * d_z/2 + m], sin likewise.
    const FloatBuffer &rope_cos() const { return rope_cos_; }
    const FloatBuffer &rope_sin() const { return rope_sin_; }

    Scratch &scratch() const { return scratch_; }
    // Serialises the calls that run the model (they share the scratch buffers and the pool).
    std::mutex &run_mutex() const { return run_mutex_; }
    // Window statistics measured by earlier generations with k heads and the current thread
    // count (empty at first): a generation starts from them and leaves its own, so only the
    // first one on a machine pays for trying every window length.
    WindowStats window_stats(int k) const;
    void set_window_stats(int k, const WindowStats &stats) const;

private:
    Model() = default;
    void read_config();
    void check_memory_bounds(int n_threads) const;
    void bind_tensors();
    void precompute_rope();
    void pack_weights();
    void allocate_scratch();
    void allocate_attention_scratch();
    void build_info_json();

    std::unique_ptr<GgufFile> file_;
    std::unique_ptr<Tokenizer> tokenizer_;
    std::unique_ptr<ThreadPool> pool_;
    ModelConfig cfg_;
    uint64_t fingerprint_ = 0;
    ParamCounts params_;
    int tensor_type_counts_[4] = {0, 0, 0, 0};  // f32, f16, bf16, q8_0
    std::string info_json_;

    WeightView token_embd_, lm_head_;
    std::vector<LayerWeights> layers_;
    std::vector<float> output_norm_weight_, output_norm_bias_;
    std::vector<MtpHeadWeights> mtp_heads_;
    std::vector<FloatBuffer> packed_weights_;  // storage of the weights' int8 panels (pack_weights)
    FloatBuffer rope_cos_, rope_sin_;

    mutable Scratch scratch_;
    mutable std::mutex run_mutex_;
    mutable std::mutex window_stats_mutex_;
    mutable std::map<std::pair<int, int>, WindowStats> window_stats_;  // by (k, threads)
};

}  // namespace mgl
