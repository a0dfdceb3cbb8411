// The forward pass (FORMAT.md 1.3, megalodon.md 1-6) over segments of rows that never cross a
// chunk boundary. Decoding is the same code with one row.
//
// Per layer and segment: TimestepNorm (sequential Welford over the rows, parallel over groups),
// CEMA by the step recurrence (parallel over channels, vectorised along them), RMSNorm, the
// projections as batched matrix products, per-head Z normalisation + RoPE, K/V appended to the
// state, chunk-local causal attention in tiles of query rows (parallel over heads x tiles, the
// masked part beyond each tile's last row never computed), the gate, the two-hop residual with
// LayerNorm and the FFN. After the last layer the final TimestepNorm absorbs every row; logits
// are computed only for the rows a call asks for.
//
// A verification window (self-speculative decoding, multi-token.md 5.5) is a segment that reads
// the committed recurrent state and writes the state after each row into the state's ring, so
// that keeping any prefix of the window needs no second pass. Its rows are computed exactly as
// decoding them one at a time would be: projections in groups whose rows matmul computes as it
// computes single rows (matmul_row_exact_rows: any size with int8 panels), and attention in such
// groups with zero weights on the keys a row does not see, so greedy speculative decoding
// reproduces plain decoding bit for bit.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <mutex>
#include <vector>

#include "common.h"
#include "state.h"

namespace mgl {

namespace {

// Below this many multiply-adds an elementwise step runs on the calling thread.
constexpr int64_t kMinParallelWork = 1 << 15;

// Runs fn(begin, end) over [0, n) split into ranges, in parallel when the work pays for it.
template <class Fn>
void parallel_ranges(ThreadPool *pool, int64_t n, int64_t cost_per_item, const Fn &fn) {
    const int64_t threads = pool ? pool->size() : 1;
    if (threads <= 1 || n < 2 || n * cost_per_item < kMinParallelWork) {
        fn(int64_t(0), n);
        return;
    }
    const int64_t tasks = std::min(n, threads * 4);
    pool->parallel_for(tasks, [&](int64_t task, int) { fn(task * n / tasks, (task + 1) * n / tasks); });
}

// Sum of f(x[i]) for i < n in double, over four interleaved partial sums: a single running sum
// would make every row's norms wait on one chain of dependent additions.
template <class F> inline double sum_of(const float *x, int64_t n, const F &f) {
    double s[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; ++j) s[j] += f(double(x[i + j]));
    for (; i < n; ++i) s[0] += f(double(x[i]));
    return (s[0] + s[1]) + (s[2] + s[3]);
}

// Mean and population variance of x[0..n) (double accumulation).
inline void moments(const float *x, int64_t n, double &mean, double &var) {
    mean = sum_of(x, n, [](double v) { return v; }) / double(n);
    const double m = mean;
    var = sum_of(x, n, [m](double v) { return (v - m) * (v - m); }) / double(n);
}

inline double mean_square(const float *x, int64_t n) {
    return sum_of(x, n, [](double v) { return v * v; }) / double(n);
}

// Where a recurrence reads its state before row t and writes it after row t. An ordinary
// segment updates one state in place (before and every after[t] are that state); a
// verification window reads the committed state and writes the state after row t into after[t]
// (a ring slot), leaving the committed one as it was.
struct RowStates {
    const float *before = nullptr;
    float *const *after = nullptr;  // [rows]
    const float *read(int64_t t) const { return t == 0 ? before : after[t - 1]; }
    float *write(int64_t t) const { return after[t]; }
};

// TimestepNorm over `rows` rows of x (row stride D) for groups [g0, g1) (megalodon.md 3.2):
// Welford-merge each row's group moments into (mean, var) with count0 + row earlier rows, then
// normalise the row with the updated statistics. out (optional) gets the affine output;
// row_mean / row_rstd (optional, [rows][G]) get the statistics after each row.
void timestep_norm(const float *x, int64_t rows, int64_t D, int64_t G, int64_t g0, int64_t g1, int64_t count0,
                   float eps, const RowStates &means, const RowStates &vars, const float *weight, const float *bias,
                   float *out, float *row_mean, float *row_rstd) {
    const int64_t dg = D / G;
    // The groups' 1/sqrt go through one loop of their own: it vectorises, where one per group
    // would wait on a square root and a division in turn.
    constexpr int64_t kStackGroups = 64;
    double stack_var[kStackGroups];
    float stack_rstd[kStackGroups];
    std::vector<double> heap_var;
    std::vector<float> heap_rstd;
    double *new_var = stack_var;
    float *rstd = stack_rstd;
    if (g1 - g0 > kStackGroups) {
        heap_var.resize(size_t(g1 - g0));
        heap_rstd.resize(size_t(g1 - g0));
        new_var = heap_var.data();
        rstd = heap_rstd.data();
    }
    for (int64_t t = 0; t < rows; ++t) {
        const double n_old = double(count0 + t), n_new = n_old + 1.0;
        const double c1 = n_old / n_new, c2 = 1.0 / n_new;
        const float *mean = means.read(t), *var = vars.read(t);
        float *mean_out = means.write(t), *var_out = vars.write(t);
        for (int64_t g = g0; g < g1; ++g) {
            double m, s2;
            moments(x + t * D + g * dg, dg, m, s2);
            const double delta = m - double(mean[g]);
            const float v = float(c1 * var[g] + c2 * s2 + c1 * c2 * delta * delta);
            mean_out[g] = float(c1 * mean[g] + c2 * m);
            var_out[g] = v;
            new_var[g - g0] = double(v) + double(eps);
        }
        for (int64_t i = 0; i < g1 - g0; ++i) rstd[i] = float(1.0 / std::sqrt(new_var[i]));
        for (int64_t g = g0; g < g1; ++g) {
            const float new_mean = mean_out[g], r = rstd[g - g0];
            if (row_mean) row_mean[t * G + g] = new_mean;
            if (row_rstd) row_rstd[t * G + g] = r;
            if (out) {
                const float *xs = x + t * D + g * dg, *w = weight + g * dg, *b = bias + g * dg;
                float *o = out + t * D + g * dg;
                for (int64_t j = 0; j < dg; ++j) o[j] = (xs[j] - new_mean) * r * w[j] + b[j];
            }
        }
    }
}

// CEMA step recurrence (megalodon.md 2.2) for channels [d0, d1) over `rows` rows: row t reads
// the state before it and writes the state after it (in place for an ordinary segment, into
// its ring slot in a verification window: the same kernel, so the rows come out bit-identical).
// State and coefficients are [N][D] so the kernel runs along contiguous channels, all rows of a
// state row at once (its coefficients read once per segment or window, not once per row).
void cema_rows(const LayerWeights &w, const RowStates &re_states, const RowStates &im_states, const float *x_hat,
               float *c, int64_t rows, int64_t D, int64_t N, int64_t d0, int64_t d1) {
    for (int64_t t = 0; t < rows; ++t)
        for (int64_t d = d0; d < d1; ++d) c[t * D + d] = w.cema_omega[size_t(d)] * x_hat[t * D + d];
    for (int64_t n = 0; n < N; ++n) {
        const int64_t off = n * D + d0;
        const CemaRow row{w.cema_q_re.data() + off, w.cema_q_im.data() + off, w.cema_p.data() + off,
                          w.cema_eta_re.data() + off, w.cema_eta_im.data() + off};
        const CemaSteps steps{x_hat + d0, D, c + d0, D, re_states.read(0) + off, im_states.read(0) + off,
                              re_states.after, im_states.after, off, rows};
        cema_steps(row, steps, d1 - d0);
    }
}

// In-place softmax of s[0..visible), zeros in s[visible..n). The maximum and the sum avoid one
// long chain of dependent operations (a decode row's keys are up to a chunk long).
void masked_softmax(float *s, int64_t visible, int64_t n) {
    const float mx = s[first_max(s, visible)];
    exp_shifted(s, mx, visible);
    const double sum = sum_of(s, visible, [](double v) { return v; });
    const float inv = float(1.0 / sum);
    for (int64_t j = 0; j < visible; ++j) s[j] *= inv;
    for (int64_t j = visible; j < n; ++j) s[j] = 0.0f;
}

// F32 weights [rows][cols] stored transposed: element (n, k) at data[k * ld + n].
WeightView transposed_view(const float *data, int64_t rows, int64_t cols, int64_t ld) {
    WeightView w;
    w.type = DType::F32;
    w.data = data;
    w.rows = rows;
    w.cols = cols;
    w.ld = ld;
    w.transposed = true;
    return w;
}

}  // namespace

// Which outputs one segment produces (rows are segment-local).
struct SegmentOutputs {
    // Logits of heads [0, n_heads) for rows [logits_begin, logits_end): row r, head j at
    // logits + (r - logits_begin) * n_heads * V + j * V.
    float *logits = nullptr;
    int64_t logits_begin = 0, logits_end = 0;
    int n_heads = 0;
    // Heads [0, keep_last_heads) of the segment's last row become the state's last logits.
    int keep_last_heads = 0;
    // Head-1 NLL of targets[r] for rows r < n_scored.
    const int32_t *targets = nullptr;
    int64_t n_scored = 0;
    double *sum_nll = nullptr;
};

class ForwardPass {
public:
    ForwardPass(const Model &model, State &state)
        : model_(model), cfg_(model.config()), st_(state), s_(model.scratch()) {}

    // Takes the model's run mutex for each segment when lock is set (a nested refresh run
    // already holds it); the progress callback runs without it.
    bool run(const int32_t *tokens, int64_t n, RunRequest &req, bool lock);
    // A verification window and the commit of a prefix of it (run_window / commit_window).
    void window(WindowRequest &req);
    void commit(const int32_t *tokens, int64_t keep, const float *last_logits, int n_last_heads);

private:
    void segment(const int32_t *tokens, int64_t rows, const SegmentOutputs &out);
    // Refresh mode: appends the rows' tokens to the history and refreshes when one is due.
    void record(const int32_t *tokens, int64_t rows);
    void embed(const int32_t *tokens, int64_t rows);
    // The recurrence state of one array for the rows of this segment; `at(slot)` is the array
    // in a ring slot. `after` holds the pointers of the states after each row.
    template <class At> RowStates row_states(int64_t rows, std::vector<float *> &after, const At &at);
    // Y = X·Wᵀ (+ bias); in a window in groups of rows that matmul computes as single rows.
    void project(const float *X, int64_t rows, int64_t ldx, const WeightView &W, const float *bias, float *Y,
                 int64_t ldy);
    // Independent products in one pool dispatch where matmuls allows it (as project in a window).
    void project_all(std::initializer_list<MatmulJob> jobs);
    void block(int64_t layer, int64_t rows);
    void attention(int64_t layer, int64_t rows, int64_t kv0);
    void final_norm(int64_t rows);
    // Logits of heads [head_begin, head_end) for rows [r0, r1): row r, head j at
    // out + (r - r0) * row_stride + (j - head_begin) * V.
    void head_logits(int64_t r0, int64_t r1, int head_begin, int head_end, float *out, int64_t row_stride);
    // Final-norm output of hidden rows h[0..count) (row stride D) for segment rows r0.. into out.
    void normalise_final(const float *h, int64_t r0, int64_t count, float *out);
    void score(const SegmentOutputs &out);
    void refresh();

    const Model &model_;
    const ModelConfig &cfg_;
    State &st_;
    Scratch &s_;
    ThreadPool *pool_ = nullptr;
    bool window_ = false;  // running a verification window
    std::vector<float *> mean_after_, var_after_, re_after_, im_after_;
};

bool ForwardPass::run(const int32_t *tokens, int64_t n, RunRequest &req, bool lock) {
    if (n <= 0) return true;
    const int64_t V = cfg_.n_vocab, C = cfg_.chunk_size;
    std::fill(st_.last_logits_valid_.begin(), st_.last_logits_valid_.end(), 0);
    st_.window_rows_ = 0;  // the ring no longer describes the rows after the committed state
    const int64_t logits_first = n - req.logits_rows;  // first call row with logits
    int64_t done = 0;
    while (done < n) {
        const int64_t rows = std::min({n - done, C - st_.kv_len_, s_.max_rows});
        SegmentOutputs out;
        if (req.logits_rows > 0 && done + rows > logits_first) {
            out.logits_begin = std::max<int64_t>(0, logits_first - done);
            out.logits_end = rows;
            out.n_heads = req.n_heads;
            out.logits = req.logits + (done + out.logits_begin - logits_first) * req.n_heads * V;
        }
        if (done + rows == n) out.keep_last_heads = req.keep_last_heads;
        if (req.score) {
            out.targets = tokens + done + 1;
            out.n_scored = std::min(rows, n - 1 - done);
            out.sum_nll = &req.sum_nll;
        }
        {
            std::unique_lock<std::mutex> guard(model_.run_mutex(), std::defer_lock);
            if (lock) guard.lock();
            pool_ = model_.pool();  // set_threads may have replaced it between segments
            segment(tokens + done, rows, out);
        }
        done += rows;
        if (req.score) req.n_scored += out.n_scored;
        const bool boundary = st_.position_ % C == 0 || done == n;
        if (boundary && req.progress && req.progress(done, n, req.progress_user) != 0 && done < n) return false;
    }
    return true;
}

void ForwardPass::segment(const int32_t *tokens, int64_t rows, const SegmentOutputs &out) {
    const int64_t D = cfg_.d_model, L = cfg_.n_layers;
    // Heads 2..n of the trunk source read the input of block L.
    const bool keep_trunk = (out.n_heads > 1 || out.keep_last_heads > 1) && !cfg_.mtp_source_final;

    embed(tokens, rows);
    for (int64_t l = 0; l < L; ++l) {
        if (l == L - 1 && keep_trunk) std::copy(s_.x.data(), s_.x.data() + rows * D, s_.trunk.data());
        block(l, rows);
    }
    final_norm(rows);
    st_.tsn_count_ += rows;
    st_.position_ += rows;
    st_.kv_len_ = st_.position_ % cfg_.chunk_size;

    // Outputs use this segment's final-norm statistics, so they come before any refresh.
    if (out.logits_end > out.logits_begin)
        head_logits(out.logits_begin, out.logits_end, 0, out.n_heads, out.logits, out.n_heads * cfg_.n_vocab);
    if (out.n_scored > 0) score(out);
    if (out.keep_last_heads > 0) {
        const int64_t V = cfg_.n_vocab, last = rows - 1;
        float *dst = st_.last_logits_.data();
        int first_missing = 0;
        if (out.logits_end == rows && out.logits_end > out.logits_begin) {
            // Already computed for the caller: copy what overlaps.
            first_missing = std::min(out.n_heads, out.keep_last_heads);
            const float *src = out.logits + (last - out.logits_begin) * out.n_heads * V;
            std::copy(src, src + first_missing * V, dst);
        }
        if (first_missing < out.keep_last_heads)
            head_logits(last, rows, first_missing, out.keep_last_heads, dst + first_missing * V, 0);
        for (int j = 0; j < out.keep_last_heads; ++j) st_.last_logits_valid_[size_t(j)] = 1;
    }

    record(tokens, rows);
}

void ForwardPass::record(const int32_t *tokens, int64_t rows) {
    if (st_.refresh_mode()) {
        const int64_t cap = st_.history_capacity();
        for (int64_t i = 0; i < rows; ++i) {
            if (st_.history_len_ < cap) {
                st_.history_[size_t((st_.history_start_ + st_.history_len_) % cap)] = tokens[i];
                ++st_.history_len_;
            } else {
                st_.history_[size_t(st_.history_start_)] = tokens[i];
                st_.history_start_ = (st_.history_start_ + 1) % cap;
            }
        }
        const int64_t C = cfg_.chunk_size;
        if (st_.position_ % (State::kRefreshEveryChunks * C) == 0 && st_.position_ >= State::kRefreshMinChunks * C)
            refresh();
    }
}

// TimestepNorm statistics of every norm are replaced by those of a blank run over the last
// 6C tokens (megalodon.md 6.4); CEMA states, KV and the position stay.
void ForwardPass::refresh() {
    std::vector<int32_t> window(size_t(st_.history_len_));
    const int64_t cap = st_.history_capacity();
    for (int64_t i = 0; i < st_.history_len_; ++i) window[size_t(i)] = st_.history_[size_t((st_.history_start_ + i) % cap)];
    State fresh(model_, 0);
    RunRequest ingest;
    ForwardPass(model_, fresh).run(window.data(), int64_t(window.size()), ingest, false);
    st_.tsn_count_ = fresh.tsn_count_;
    st_.ring_[st_.cur_].tsn_mean = fresh.ring_[fresh.cur_].tsn_mean;
    st_.ring_[st_.cur_].tsn_var = fresh.ring_[fresh.cur_].tsn_var;
}

void ForwardPass::window(WindowRequest &req) {
    const int64_t D = cfg_.d_model, L = cfg_.n_layers, V = cfg_.n_vocab, rows = req.rows;
    pool_ = model_.pool();
    st_.reserve_window(rows);
    window_ = true;
    // Heads 2..n of the trunk source read the input of block L.
    const bool keep_trunk = req.n_heads > 1 && !cfg_.mtp_source_final;
    embed(req.tokens, rows);
    for (int64_t l = 0; l < L; ++l) {
        if (l == L - 1 && keep_trunk) std::copy(s_.x.data(), s_.x.data() + rows * D, s_.trunk.data());
        block(l, rows);
    }
    final_norm(rows);
    head_logits(0, rows, 0, 1, req.logits, V);
    st_.window_rows_ = rows;
    const int64_t row = req.choose_row ? req.choose_row() : -1;
    if (row >= 0 && row < rows && req.n_heads > 1) head_logits(row, row + 1, 1, req.n_heads, req.extra_logits, 0);
    window_ = false;
}

void ForwardPass::commit(const int32_t *tokens, int64_t keep, const float *last_logits, int n_last_heads) {
    if (keep < 1 || keep > st_.window_rows_)
        fail(MGL_ERR_INTERNAL, "commit_window: " + std::to_string(keep) + " rows of a window of " +
                                   std::to_string(st_.window_rows_));
    const int64_t V = cfg_.n_vocab;
    st_.cur_ = st_.window_slot(keep - 1);
    st_.window_rows_ = 0;
    st_.position_ += keep;
    st_.tsn_count_ += keep;
    st_.kv_len_ = st_.position_ % cfg_.chunk_size;  // keys and values past it are ignored
    std::fill(st_.last_logits_valid_.begin(), st_.last_logits_valid_.end(), 0);
    std::copy(last_logits, last_logits + n_last_heads * V, st_.last_logits_.data());
    for (int j = 0; j < n_last_heads; ++j) st_.last_logits_valid_[size_t(j)] = 1;
    pool_ = model_.pool();
    record(tokens, keep);
}

template <class At> RowStates ForwardPass::row_states(int64_t rows, std::vector<float *> &after, const At &at) {
    RowStates states;
    states.before = at(st_.committed_slot());
    after.resize(size_t(rows));
    for (int64_t t = 0; t < rows; ++t) after[size_t(t)] = window_ ? at(st_.window_slot(t)) : at(st_.committed_slot());
    states.after = after.data();
    return states;
}

void ForwardPass::project(const float *X, int64_t rows, int64_t ldx, const WeightView &W, const float *bias, float *Y,
                          int64_t ldy) {
    const int64_t step = window_ ? matmul_row_exact_rows(W) : rows;
    for (int64_t r0 = 0; r0 < rows; r0 += step)
        matmul(pool_, X + r0 * ldx, std::min(step, rows - r0), ldx, W, bias, Y + r0 * ldy, ldy);
}

void ForwardPass::project_all(std::initializer_list<MatmulJob> jobs) {
    bool exact = true;  // a window's rows come out as single rows from one product of them all
    for (const MatmulJob &j : jobs) exact = exact && (!window_ || matmul_row_exact_rows(*j.W) >= j.M);
    if (exact) return matmuls(pool_, jobs.begin(), int(jobs.size()));
    for (const MatmulJob &j : jobs) project(j.X, j.M, j.ldx, *j.W, j.bias, j.Y, j.ldy);
}

void ForwardPass::embed(const int32_t *tokens, int64_t rows) {
    const int64_t D = cfg_.d_model;
    const float scale = cfg_.scale_embedding ? float(std::sqrt(double(D))) : 1.0f;
    for (int64_t i = 0; i < rows; ++i) {
        float *x = s_.x.data() + i * D;
        dequantize_row(model_.token_embd(), tokens[i], x);
        if (cfg_.scale_embedding)
            for (int64_t j = 0; j < D; ++j) x[j] *= scale;
    }
}

void ForwardPass::block(int64_t layer, int64_t rows) {
    const LayerWeights &w = model_.layers()[size_t(layer)];
    const int64_t D = cfg_.d_model, N = cfg_.cema_ndim, Z = cfg_.z_dim, E = cfg_.value_dim, G = cfg_.norm_groups;
    const int64_t H = cfg_.n_heads, dz = cfg_.head_z(), C = cfg_.chunk_size;
    const int64_t F = cfg_.ffn_dim, kv0 = st_.kv_len_;
    const float eps = cfg_.norm_eps;
    float *x = s_.x.data(), *x_hat = s_.x_hat.data(), *m = s_.m.data(), *y = s_.y.data(), *proj = s_.proj.data();

    // TimestepNorm: rows in order, groups in parallel.
    const RowStates mean = row_states(rows, mean_after_, [&](size_t slot) { return st_.tsn_mean(layer, slot); });
    const RowStates var = row_states(rows, var_after_, [&](size_t slot) { return st_.tsn_var(layer, slot); });
    const int64_t count0 = st_.tsn_count_;
    parallel_ranges(pool_, G, rows * (D / G) * 4, [&](int64_t g0, int64_t g1) {
        timestep_norm(x, rows, D, G, g0, g1, count0, eps, mean, var, w.tsn_weight.data(), w.tsn_bias.data(), x_hat,
                      nullptr, nullptr);
    });

    // CEMA into m, channels in parallel, in whole cache lines of channels: threads writing to one
    // line of the state would take it from each other on every row.
    const RowStates h_re = row_states(rows, re_after_, [&](size_t slot) { return st_.cema_re(layer, slot); });
    const RowStates h_im = row_states(rows, im_after_, [&](size_t slot) { return st_.cema_im(layer, slot); });
    const int64_t line = 64 / int64_t(sizeof(float));
    parallel_ranges(pool_, (D + line - 1) / line, rows * N * 8 * line, [&](int64_t b0, int64_t b1) {
        cema_rows(w, h_re, h_im, x_hat, m, rows, D, N, b0 * line, std::min(D, b1 * line));
    });

    // RMSNorm of the CEMA output.
    parallel_ranges(pool_, rows, D * 2, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i) {
            float *mi = m + i * D;
            const float rs = float(1.0 / std::sqrt(mean_square(mi, D) + double(eps)));
            for (int64_t j = 0; j < D; ++j) mi[j] = mi[j] * rs * w.rms_weight[size_t(j)];
        }
    });

    // The products of the attention's inputs, and the first hop's M W_h1ᵀ + b_h1 (into y).
    float *z = s_.z.data(), *q = s_.q.data(), *v = s_.v.data(), *r = s_.r.data();
    project_all({{m, rows, D, &w.attn_z, w.attn_z_bias.data(), z, Z},
                 {x_hat, rows, D, &w.attn_v, w.attn_v_bias.data(), v, E},
                 {m, rows, D, &w.attn_r, w.attn_r_bias.data(), r, E},
                 {m, rows, D, &w.attn_h1, w.attn_h1_bias.data(), y, D}});

    // Per-head Z normalisation, Q/K affine, RoPE at the chunk position; K and silu(V) appended
    // to the state's KV; silu of the gate.
    float *keys_t = st_.keys_t(layer), *values = st_.values(layer);
    const float *rope_cos = model_.rope_cos().data(), *rope_sin = model_.rope_sin().data();
    const int64_t half = dz / 2;
    parallel_ranges(pool_, rows, 4 * Z + 3 * E, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i) {
            const int64_t pos = kv0 + i;
            const float *zi = z + i * Z;
            float *qi = q + i * Z, *ki = keys_t + pos;  // column pos, stride C
            const float *cs = rope_cos + pos * half, *sn = rope_sin + pos * half;
            for (int64_t h = 0; h < H; ++h) {
                const int64_t o = h * dz;
                const float rs = float(1.0 / std::sqrt(mean_square(zi + o, dz) + double(eps)));
                for (int64_t p = 0; p < half; ++p) {
                    const int64_t j0 = o + 2 * p, j1 = j0 + 1;
                    const float z0 = zi[j0] * rs, z1 = zi[j1] * rs;
                    const float q0 = z0 * w.q_scale[size_t(j0)] + w.q_bias[size_t(j0)];
                    const float q1 = z1 * w.q_scale[size_t(j1)] + w.q_bias[size_t(j1)];
                    const float k0 = z0 * w.k_scale[size_t(j0)] + w.k_bias[size_t(j0)];
                    const float k1 = z1 * w.k_scale[size_t(j1)] + w.k_bias[size_t(j1)];
                    qi[j0] = q0 * cs[p] - q1 * sn[p];
                    qi[j1] = q0 * sn[p] + q1 * cs[p];
                    ki[j0 * C] = k0 * cs[p] - k1 * sn[p];
                    ki[j1 * C] = k0 * sn[p] + k1 * cs[p];
                }
            }
            float *vi = values + pos * E;
            std::copy(v + i * E, v + (i + 1) * E, vi);
            silu(vi, nullptr, E);
            silu(r + i * E, nullptr, E);
        }
    });

    attention(layer, rows, kv0);  // s_.o = attention output ⊙ gate

    // First hop: Y = X + M W_h1ᵀ + b_h1 + (O ⊙ R) W_h2ᵀ, then LayerNorm(Y) in place.
    project(s_.o.data(), rows, E, w.attn_h2, nullptr, proj, D);
    parallel_ranges(pool_, rows, D * 4, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i) {
            float *yi = y + i * D;
            const float *xi = x + i * D, *pi = proj + i * D;
            for (int64_t j = 0; j < D; ++j) yi[j] = xi[j] + yi[j] + pi[j];
            double mu, var_y;
            moments(yi, D, mu, var_y);
            const float rs = float(1.0 / std::sqrt(var_y + double(eps))), muf = float(mu);
            for (int64_t j = 0; j < D; ++j)
                yi[j] = (yi[j] - muf) * rs * w.ffn_norm_weight[size_t(j)] + w.ffn_norm_bias[size_t(j)];
        }
    });

    // FFN and the second hop: out = X + W_down(silu(U W_gateᵀ) [⊙ U W_upᵀ]).
    float *a = s_.ffn_a.data(), *b = s_.ffn_b.data();
    if (cfg_.swiglu) project_all({{y, rows, D, &w.ffn_gate, nullptr, a, F}, {y, rows, D, &w.ffn_up, nullptr, b, F}});
    else project(y, rows, D, w.ffn_gate, nullptr, a, F);
    parallel_ranges(pool_, rows, F * 4, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i) {
            silu(a + i * F, cfg_.swiglu ? b + i * F : nullptr, F);
        }
    });
    project(a, rows, F, w.ffn_down, nullptr, proj, D);
    parallel_ranges(pool_, rows, D, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0 * D; i < r1 * D; ++i) x[i] += proj[i];
    });
}

// O = softmax(Q Kᵀ) V per head over the chunk's keys 0..kv0+i for query row i, multiplied by
// the gate R, into s_.o. Tasks are (head, tile of kAttnTile query rows); each computes only the
// keys up to its tile's last row.
void ForwardPass::attention(int64_t layer, int64_t rows, int64_t kv0) {
    const int64_t H = cfg_.n_heads, dz = cfg_.head_z(), dv = cfg_.head_v(), Z = cfg_.z_dim, E = cfg_.value_dim;
    // A window's rows in tiles that the GEMV route computes row by row: a row's scores and its
    // sum over the keys it sees (zero weights for the keys after it) then come out exactly as
    // when decoding that row alone, and the keys and values are read once for the tile.
    const int64_t C = cfg_.chunk_size;
    const int64_t T = window_ ? matmul_row_exact_rows(transposed_view(nullptr, 0, 0, 0)) : Model::kAttnTile;
    const int64_t n_tiles = (rows + T - 1) / T;
    const float *keys_t = st_.keys_t(layer), *values = st_.values(layer);
    const float *q = s_.q.data(), *gate = s_.r.data();
    float *o = s_.o.data();
    auto task = [&](int64_t t, int thread) {
        // Heaviest tiles (the last rows, most keys) first.
        const int64_t tile = n_tiles - 1 - t / H, h = t % H;
        const int64_t i0 = tile * T, i1 = std::min(rows, i0 + T), tr = i1 - i0;
        const int64_t n_keys = kv0 + i1;
        float *scores = s_.attn_scores.data() + int64_t(thread) * T * C;
        matmul(nullptr, q + i0 * Z + h * dz, tr, Z, transposed_view(keys_t + h * dz * C, n_keys, dz, C), nullptr,
               scores, n_keys);
        for (int64_t i = 0; i < tr; ++i) masked_softmax(scores + i * n_keys, kv0 + i0 + i + 1, n_keys);
        float *oh = o + i0 * E + h * dv;
        matmul(nullptr, scores, tr, n_keys, transposed_view(values + h * dv, dv, n_keys, E), nullptr, oh, E);
        for (int64_t i = 0; i < tr; ++i) {
            float *oi = oh + i * E;
            const float *gi = gate + (i0 + i) * E + h * dv;
            for (int64_t j = 0; j < dv; ++j) oi[j] *= gi[j];
        }
    };
    const int64_t n_tasks = H * n_tiles;
    const int64_t work = rows * (kv0 + rows) * (dz + dv);
    if (pool_ && pool_->size() > 1 && n_tasks > 1 && work >= kMinParallelWork) {
        pool_->parallel_for(n_tasks, task);
    } else {
        for (int64_t t = 0; t < n_tasks; ++t) task(t, 0);
    }
}

void ForwardPass::final_norm(int64_t rows) {
    const int64_t D = cfg_.d_model, G = cfg_.norm_groups, L = cfg_.n_layers;
    const RowStates mean = row_states(rows, mean_after_, [&](size_t slot) { return st_.tsn_mean(L, slot); });
    const RowStates var = row_states(rows, var_after_, [&](size_t slot) { return st_.tsn_var(L, slot); });
    const int64_t count0 = st_.tsn_count_;
    parallel_ranges(pool_, G, rows * (D / G) * 3, [&](int64_t g0, int64_t g1) {
        timestep_norm(s_.x.data(), rows, D, G, g0, g1, count0, cfg_.norm_eps, mean, var, nullptr, nullptr, nullptr,
                      s_.final_mean.data(), s_.final_rstd.data());
    });
}

void ForwardPass::normalise_final(const float *h, int64_t r0, int64_t count, float *out) {
    const int64_t D = cfg_.d_model, G = cfg_.norm_groups, dg = D / G;
    const float *w = model_.output_norm_weight().data(), *b = model_.output_norm_bias().data();
    parallel_ranges(pool_, count, D * 2, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
            const float *mu = s_.final_mean.data() + (r0 + i) * G, *rs = s_.final_rstd.data() + (r0 + i) * G;
            for (int64_t j = 0; j < D; ++j) {
                const int64_t g = j / dg;
                out[i * D + j] = (h[i * D + j] - mu[g]) * rs[g] * w[j] + b[j];
            }
        }
    });
}

void ForwardPass::head_logits(int64_t r0, int64_t r1, int head_begin, int head_end, float *out, int64_t row_stride) {
    const int64_t D = cfg_.d_model, V = cfg_.n_vocab, Fh = cfg_.mtp_hidden, count = r1 - r0;
    const float eps = cfg_.norm_eps;
    if (row_stride == 0) row_stride = (head_end - head_begin) * V;  // a single row
    const float *h1 = s_.x.data() + r0 * D;
    const float *source = (cfg_.mtp_source_final ? s_.x.data() : s_.trunk.data()) + r0 * D;
    float *normed = s_.x_hat.data(), *r = s_.m.data(), *hidden = s_.y.data(), *proj = s_.proj.data();
    float *a = s_.ffn_a.data(), *b = s_.ffn_b.data();
    // One row and several heads: their normalised rows go through the unembedding together (one
    // pass over its weights), in groups that matmul computes exactly as single rows.
    const bool batch_heads = count == 1 && head_end - head_begin > 1;
    for (int j = head_begin; j < head_end; ++j) {
        const float *h = h1;
        if (j > 0) {
            // h_j = z + W_down(silu(RMSNorm_j(z) W_gateᵀ) ⊙ RMSNorm_j(z) W_upᵀ)
            const MtpHeadWeights &mw = model_.mtp_heads()[size_t(j - 1)];
            parallel_ranges(pool_, count, D * 2, [&](int64_t i0, int64_t i1) {
                for (int64_t i = i0; i < i1; ++i) {
                    const float *zi = source + i * D;
                    const float rs = float(1.0 / std::sqrt(mean_square(zi, D) + double(eps)));
                    for (int64_t k = 0; k < D; ++k) r[i * D + k] = zi[k] * rs * mw.norm_weight[size_t(k)];
                }
            });
            project(r, count, D, mw.gate, nullptr, a, Fh);
            project(r, count, D, mw.up, nullptr, b, Fh);
            parallel_ranges(pool_, count * Fh, 4, [&](int64_t k0, int64_t k1) {
                silu(a + k0, b + k0, k1 - k0);
            });
            project(a, count, Fh, mw.down, nullptr, proj, D);
            for (int64_t k = 0; k < count * D; ++k) hidden[k] = source[k] + proj[k];
            h = hidden;
        }
        if (batch_heads) {
            normalise_final(h, r0, 1, s_.heads_normed.data() + (j - head_begin) * D);
            continue;
        }
        normalise_final(h, r0, count, normed);
        project(normed, count, D, model_.lm_head(), nullptr, out + (j - head_begin) * V, row_stride);
    }
    if (batch_heads) {
        const int64_t n = head_end - head_begin, step = matmul_row_exact_rows(model_.lm_head());
        for (int64_t m0 = 0; m0 < n; m0 += step)
            matmul(pool_, s_.heads_normed.data() + m0 * D, std::min(step, n - m0), D, model_.lm_head(), nullptr,
                   out + m0 * V, V);
    }
}

// Head-1 negative log-likelihood of the targets, kScoreRows rows of logits at a time.
void ForwardPass::score(const SegmentOutputs &out) {
    const int64_t D = cfg_.d_model, V = cfg_.n_vocab;
    float *normed = s_.x_hat.data(), *logits = s_.logits.data();
    std::vector<double> nll(size_t(Model::kScoreRows));
    for (int64_t r0 = 0; r0 < out.n_scored; r0 += Model::kScoreRows) {
        const int64_t count = std::min(Model::kScoreRows, out.n_scored - r0);
        normalise_final(s_.x.data() + r0 * D, r0, count, normed);
        matmul(pool_, normed, count, D, model_.lm_head(), nullptr, logits, V);
        parallel_ranges(pool_, count, V * 8, [&](int64_t i0, int64_t i1) {
            for (int64_t i = i0; i < i1; ++i) {
                const float *l = logits + i * V;
                float mx = l[0];
                for (int64_t k = 1; k < V; ++k) mx = std::max(mx, l[k]);
                double sum = 0;
                for (int64_t k = 0; k < V; ++k) sum += std::exp(l[k] - mx);
                nll[size_t(i)] = std::log(sum) + double(mx) - double(l[out.targets[r0 + i]]);
            }
        });
        for (int64_t i = 0; i < count; ++i) *out.sum_nll += nll[size_t(i)];
    }
}

bool run_tokens(const Model &model, State &state, const int32_t *tokens, int64_t n, RunRequest &request) {
    return ForwardPass(model, state).run(tokens, n, request, true);
}

void run_window(const Model &model, State &state, WindowRequest &request) {
    const ModelConfig &c = model.config();
    if (request.rows < 1 || request.rows > c.chunk_size - state.kv_len() || request.rows > model.scratch().max_rows)
        fail(MGL_ERR_INTERNAL, "run_window: " + std::to_string(request.rows) + " rows at chunk position " +
                                   std::to_string(state.kv_len()) + " (chunk " + std::to_string(c.chunk_size) + ")");
    if (request.n_heads < 1 || request.n_heads > c.n_predict)
        fail(MGL_ERR_INTERNAL, "run_window: " + std::to_string(request.n_heads) + " heads");
    std::lock_guard<std::mutex> guard(model.run_mutex());
    ForwardPass(model, state).window(request);
}

void commit_window(const Model &model, State &state, const int32_t *tokens, int64_t keep, const float *last_logits,
                   int n_last_heads) {
    // A refresh that may be due runs the model, so the scratch buffers must be free.
    std::unique_lock<std::mutex> guard(model.run_mutex(), std::defer_lock);
    if (state.refresh_mode()) guard.lock();
    ForwardPass(model, state).commit(tokens, keep, last_logits, n_last_heads);
}

}  // namespace mgl
