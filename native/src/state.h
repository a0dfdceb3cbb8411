// Per-sequence state (megalodon.md 6.1): position, TimestepNorm statistics, CEMA states, the
// current chunk's keys and values, the last logits and, in refresh mode, the last 6C token ids.
// Also the entry point that runs tokens through the model into a state (forward.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <new>
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

    // The recurrent state (TimestepNorm statistics, CEMA states) lives in a ring of slots
    // (multi-token.md 5.5): slot committed_slot() is the state proper; a verification window
    // writes the state after each of its rows into the slots that follow it, and keeping a
    // prefix of the window selects one of them instead of running the rows again.
    size_t committed_slot() const { return cur_; }
    // Slot holding the state after row `row` (0-based) of the current verification window.
    size_t window_slot(int64_t row) const { return (cur_ + 1 + size_t(row)) % ring_.size(); }
    // Makes the ring large enough for a window of `rows` rows (slots are allocated on first use).
    void reserve_window(int64_t rows);

    // Layer l: TimestepNorm statistics (l == L is the final norm), [G] each, of ring slot `slot`.
    float *tsn_mean(int64_t l, size_t slot) { return ring_[slot].tsn_mean.data() + l * model_->config().norm_groups; }
    float *tsn_var(int64_t l, size_t slot) { return ring_[slot].tsn_var.data() + l * model_->config().norm_groups; }
    // CEMA state of layer l in ring slot `slot`, [N][D] real and imaginary parts (the file stores
    // [D][N] pairs).
    float *cema_re(int64_t l, size_t slot) { return ring_[slot].cema_re.data() + l * cema_stride(); }
    float *cema_im(int64_t l, size_t slot) { return ring_[slot].cema_im.data() + l * cema_stride(); }
    // The same for the committed state.
    float *tsn_mean(int64_t l) { return tsn_mean(l, cur_); }
    float *tsn_var(int64_t l) { return tsn_var(l, cur_); }
    const float *tsn_mean(int64_t l) const { return ring_[cur_].tsn_mean.data() + l * model_->config().norm_groups; }
    const float *tsn_var(int64_t l) const { return ring_[cur_].tsn_var.data() + l * model_->config().norm_groups; }
    float *cema_re(int64_t l) { return cema_re(l, cur_); }
    float *cema_im(int64_t l) { return cema_im(l, cur_); }
    const float *cema_re(int64_t l) const { return ring_[cur_].cema_re.data() + l * cema_stride(); }
    const float *cema_im(int64_t l) const { return ring_[cur_].cema_im.data() + l * cema_stride(); }
    // Keys of layer l transposed: [Z][C] (columns [0, kv_len) valid); values of layer l: [C][E]
    // (rows [0, kv_len) valid). Attention multiplies by both as transposed weights, so decoding
    // a row sweeps contiguous rows of them (the file stores both as [t][·] rows).
    float *keys_t(int64_t l) { return keys_t_.data() + l * kv_keys_stride(); }
    const float *keys_t(int64_t l) const { return keys_t_.data() + l * kv_keys_stride(); }
    float *values(int64_t l) { return values_.data() + l * kv_values_stride(); }
    const float *values(int64_t l) const { return values_.data() + l * kv_values_stride(); }

private:
    friend class ForwardPass;  // forward.cpp advances the position and the norm statistics
    State(const State &other);  // clone(): copies only the valid parts of the KV
    int64_t cema_stride() const { return model_->config().d_model * model_->config().cema_ndim; }
    int64_t kv_keys_stride() const { return model_->config().chunk_size * model_->config().z_dim; }
    int64_t kv_values_stride() const { return model_->config().value_dim * model_->config().chunk_size; }
    void allocate();

    // Cache-line aligned, so that threads splitting the CEMA channels at multiples of 16 never
    // write to one line (forward.cpp).
    template <class T> struct LineAligned {
        using value_type = T;
        LineAligned() = default;
        template <class U> LineAligned(const LineAligned<U> &) {}
        T *allocate(size_t n) { return static_cast<T *>(::operator new(n * sizeof(T), std::align_val_t{64})); }
        void deallocate(T *p, size_t) { ::operator delete(p, std::align_val_t{64}); }
        template <class U> bool operator==(const LineAligned<U> &) const { return true; }
        template <class U> bool operator!=(const LineAligned<U> &) const { return false; }
    };
    using AlignedFloats = std::vector<float, LineAligned<float>>;
    struct Recurrent {
        AlignedFloats tsn_mean, tsn_var;  // [L + 1][G]
        AlignedFloats cema_re, cema_im;   // [L][N][D]
    };
    void allocate_slot(Recurrent &slot) const;

    const Model *model_;
    int flags_;
    int64_t position_ = 0;
    int64_t tsn_count_ = 0;  // Welford count shared by every TimestepNorm
    int64_t kv_len_ = 0;     // position mod C
    int64_t window_rows_ = 0;  // rows of the verification window whose states the ring holds
    std::vector<Recurrent> ring_;  // one slot until a verification window needs more
    size_t cur_ = 0;               // the committed slot
    FloatBuffer keys_t_;  // [L][Z][C]
    FloatBuffer values_;  // [L][C][E]
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

// A verification window of self-speculative decoding (multi-token.md 3.1, 5.5): `rows` tokens
// (at most C - kv_len, so the window never crosses a chunk boundary) run through the model
// without changing the committed state. The recurrent state after each row goes to the state's
// ring, the rows' keys and values to the chunk's KV after kv_len. Each row is computed exactly
// as decoding the tokens one by one would compute it.
struct WindowRequest {
    const int32_t *tokens = nullptr;
    int64_t rows = 0;
    float *logits = nullptr;  // head-1 logits of every row, [rows][V]
    // Runs under the model's run mutex once `logits` is filled; returns the row whose extra
    // heads are wanted (-1: none). Acceptance of the drafts is decided here.
    std::function<int64_t()> choose_row;
    int n_heads = 1;                // heads 2..n_heads at the chosen row ...
    float *extra_logits = nullptr;  // ... into [n_heads - 1][V]
};
void run_window(const Model &model, State &state, WindowRequest &request);

// Keeps rows [0, keep) of the last window (1 <= keep <= its rows; nothing else may have run on
// the state since): the state continues after tokens[keep - 1] without another forward pass, by
// selecting that row's ring slot and cutting the chunk's KV back to the new position.
// last_logits ([n_last_heads][V]) become the state's last logits.
void commit_window(const Model &model, State &state, const int32_t *tokens, int64_t keep, const float *last_logits,
                   int n_last_heads);

}  // namespace mgl
