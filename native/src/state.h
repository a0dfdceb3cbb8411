// Per-sequence state (megalodon.md 6.1): position, TimestepNorm statistics, CEMA states, the
// current chunk's keys and values, the last logits and, in refresh mode, the last 6C token ids.
// Also the entry point that runs tokens through the model into a state (forward.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "megalodon.h"
#include "model.h"

namespace mgl {

class State {
public:
    // Refresh mode (megalodon.md 6.4): every 2C tokens from 8C on, the TimestepNorm statistics
    // are recomputed from a blank run over the last kRefreshWindowChunks chunks.
    static constexpr int64_t kRefreshEveryChunks = 2;
    static constexpr int64_t kRefreshMinChunks = 8;
    static constexpr int64_t kRefreshWindowChunks = 6;
    static constexpr int kKnownFlags = MGL_STATE_TSN_REFRESH;

    // A blank state (position 0); throws MGL_ERR_INVALID_ARG for unknown flags.
    State(const Model &model, int flags);
    std::unique_ptr<State> clone() const;
    void reset();

    const Model &model() const { return *model_; }
    int flags() const { return flags_; }
    bool refresh_mode() const { return (flags_ & MGL_STATE_TSN_REFRESH) != 0; }
    int64_t position() const { return position_; }
    int64_t kv_len() const { return kv_len_; }

    // Bytes save() writes now (FORMAT.md 2).
    int64_t saved_size() const;
    // Atomic: a temporary file next to `path`, fsync, rename.
    void save(const std::string &path) const;
    // Validates everything before trusting any length; MGL_ERR_MISMATCH for another model's state.
    static std::unique_ptr<State> load(const Model &model, const std::string &path);

    // Head `head` (0-based) logits of the last position evaluated, or null if not available.
    const float *last_logits(int head) const;

    // Layer l: TimestepNorm statistics (l == L is the final norm), [G] each.
    float *tsn_mean(int64_t l) { return tsn_mean_.data() + l * model_->config().norm_groups; }
    float *tsn_var(int64_t l) { return tsn_var_.data() + l * model_->config().norm_groups; }
    const float *tsn_mean(int64_t l) const { return tsn_mean_.data() + l * model_->config().norm_groups; }
    const float *tsn_var(int64_t l) const { return tsn_var_.data() + l * model_->config().norm_groups; }
    // CEMA state of layer l, [N][D] real and imaginary parts (the file stores [D][N] pairs).
    float *cema_re(int64_t l) { return cema_re_.data() + l * cema_stride(); }
    float *cema_im(int64_t l) { return cema_im_.data() + l * cema_stride(); }
    const float *cema_re(int64_t l) const { return cema_re_.data() + l * cema_stride(); }
    const float *cema_im(int64_t l) const { return cema_im_.data() + l * cema_stride(); }
    // Keys of layer l: [C][Z] row-major (rows [0, kv_len) valid).
    float *keys(int64_t l) { return keys_.data() + l * kv_keys_stride(); }
    const float *keys(int64_t l) const { return keys_.data() + l * kv_keys_stride(); }
    // Values of layer l transposed: [E][C] (columns [0, kv_len) valid), so that O = P·V is a
    // matrix product with contiguous weight rows.
    float *values_t(int64_t l) { return values_t_.data() + l * kv_values_stride(); }
    const float *values_t(int64_t l) const { return values_t_.data() + l * kv_values_stride(); }

private:
    friend class ForwardPass;  // forward.cpp advances the position and the norm statistics
    State(const State &other);  // clone(): copies only the valid parts of the KV
    int64_t cema_stride() const { return model_->config().d_model * model_->config().cema_ndim; }
    int64_t kv_keys_stride() const { return model_->config().chunk_size * model_->config().z_dim; }
    int64_t kv_values_stride() const { return model_->config().value_dim * model_->config().chunk_size; }
    void allocate();

    const Model *model_;
    int flags_;
    int64_t position_ = 0;
    int64_t tsn_count_ = 0;  // Welford count shared by every TimestepNorm
    int64_t kv_len_ = 0;     // position mod C
    std::vector<float> tsn_mean_, tsn_var_;  // [L + 1][G]
    std::vector<float> cema_re_, cema_im_;   // [L][D][N]
    FloatBuffer keys_;      // [L][C][Z]
    FloatBuffer values_t_;  // [L][E][C]
    std::vector<float> last_logits_;         // [n_predict][V]
    std::vector<uint8_t> last_logits_valid_;  // [n_predict]
    // Refresh mode: ring of the last history_capacity() token ids, oldest at history_start_.
    std::vector<int32_t> history_;
    int64_t history_start_ = 0, history_len_ = 0;
    int64_t history_capacity() const { return kRefreshWindowChunks * model_->config().chunk_size; }
};

// What a call to run_tokens wants besides consuming the tokens.
struct RunRequest {
    // mgl_eval: logits of heads [0, n_heads) for the last logits_rows rows of the call into
    // logits, laid out [logits_rows][n_heads][V].
    float *logits = nullptr;
    int64_t logits_rows = 0;
    int n_heads = 0;
    // Heads of the call's last row kept as the state's last logits (0: the state then has none).
    int keep_last_heads = 0;
    // mgl_score: head-1 negative log-likelihood of tokens[i + 1] at every row i < n - 1.
    bool score = false;
    double sum_nll = 0;
    int64_t n_scored = 0;
    // Called after every segment that ends at a chunk boundary or at the end of the input;
    // non-zero cancels (run_tokens then returns false, the state stays at that segment's end).
    mgl_progress_fn progress = nullptr;
    void *progress_user = nullptr;
};

// Consumes tokens[0..n) (ids already validated) into the state, split at chunk boundaries.
// Takes model.run_mutex() for each segment; the progress callback runs without it. Returns
// false when cancelled.
bool run_tokens(const Model &model, State &state, const int32_t *tokens, int64_t n, RunRequest &request);

}  // namespace mgl
