// Self-speculative decoding with the multi-token heads: greedy output and the state it leaves
// are identical to plain decoding (random heads that rarely agree, and heads built to agree with
// head 1 so that long windows are kept; windows clipped at chunk boundaries; stop strings, EOS,
// callbacks, budgets, repetition penalty, refresh mode), rollback of a window without a second
// pass, speculative sampling following plain sampling's distribution, statistics and bad input.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "megalodon.h"
#include "model.h"
#include "state.h"
#include "test_handles.h"
#include "test_util.h"

using namespace mgl_test;

namespace {

using Bytes = std::vector<uint8_t>;

std::vector<int32_t> random_tokens(int32_t n_vocab, size_t count, std::mt19937 &rng) {
    std::vector<int32_t> t(count);
    for (int32_t &x : t) x = int32_t(rng() % uint32_t(n_vocab));
    return t;
}

struct Generation {
    std::vector<int32_t> tokens;
    std::string text;
    mgl_generate_result result{};
    mgl_status status = MGL_OK;
    int stop_after = -1;  // the callback asks to stop after this many tokens (-1: never)
};

int collect_token(int32_t token, const char *text, size_t len, void *user) {
    Generation &g = *static_cast<Generation *>(user);
    g.tokens.push_back(token);
    g.text.append(text, len);
    return g.stop_after >= 0 && int(g.tokens.size()) >= g.stop_after ? 1 : 0;
}

Generation generate(mgl_model *m, mgl_state *s, const std::vector<int32_t> &prompt, const mgl_generate_params &p,
                    int stop_after = -1) {
    Generation g;
    g.stop_after = stop_after;
    g.status = mgl_generate(m, s, prompt.data(), prompt.size(), &p, collect_token, &g, &g.result);
    return g;
}

Bytes read_bytes(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

Bytes saved(mgl_state *s, const std::string &name) {
    const std::string path = temp_path(name);
    if (mgl_state_save(s, path.c_str()) != MGL_OK) throw std::runtime_error(mgl_last_error());
    Bytes b = read_bytes(path);
    std::remove(path.c_str());
    return b;
}

bool same_floats(const float *a, const float *b, int32_t n) {
    return a && b && std::memcmp(a, b, size_t(n) * sizeof(float)) == 0;
}

// Random heads: extra heads that rarely agree with head 1, so most windows are cut short.
TinyConfig random_heads(uint32_t heads, uint32_t chunk) {
    TinyConfig c;
    c.mtp_heads = heads;
    c.chunk_size = chunk;
    return c;
}

// Heads that agree with head 1 by construction: the final norm's bias dominates, so each
// position's logits are close to one peaked distribution, and with the "final" source and zero
// down projections every extra head repeats head 1's logits, i.e. drafts "the same token again".
// Greedy output then runs in long repeats, with changes where the inputs tip the arg max.
TinyConfig agreeing_heads(uint32_t heads, uint32_t chunk, float weight = 0.3f, float bias = 1.0f) {
    TinyConfig c;
    c.mtp_heads = heads;
    c.chunk_size = chunk;
    c.mtp_source = "final";
    c.mtp_down_scale = 0.0f;
    c.output_norm_weight_mean = weight;
    c.output_norm_weight_std = 0.05f;
    c.output_norm_bias_std = bias;
    return c;
}

struct Totals {
    int runs = 0, tokens = 0, forwards = 0;  // tokens and forwards: runs with a fixed draft length
    int64_t drafted = 0, accepted = 0;
    std::map<int, int> reasons;
    // fixed_length: the caller chose the draft (with draft 0 the runtime picks window lengths
    // from timings, so tokens per forward depends on the machine).
    void add(const Generation &g, bool fixed_length) {
        ++runs;
        if (fixed_length) {
            tokens += g.result.n_tokens;
            forwards += g.result.forward_passes;
        }
        for (int j = 0; j + 1 < g.result.draft_heads; ++j) {
            drafted += g.result.drafted[j];
            accepted += g.result.accepted[j];
        }
        ++reasons[int(g.result.stop_reason)];
    }
    void print(const char *what) const {
        std::printf("    %s: %d runs, %d tokens, %.2f tokens/forward (fixed drafts), %.1f%% of %lld drafts accepted; "
                    "stops:", what,
                    runs, tokens, forwards ? double(tokens) / forwards : 0.0,
                    drafted ? 100.0 * double(accepted) / double(drafted) : 0.0, static_cast<long long>(drafted));
        for (const auto &r : reasons) std::printf(" %d:%d", r.first, r.second);
        std::printf("\n");
    }
};

// Plain and speculative greedy generation of one case must give the same tokens, text, stop
// reason, state file bytes and last logits.
void check_identical(mgl_model *m, const std::vector<int32_t> &prompt, mgl_generate_params p, int draft,
                     int stop_after, int flags, Totals &totals, const char *label) {
    const int32_t V = info_of(m).n_vocab;
    p.speculative = 0;
    StatePtr plain_state = new_state(m, flags);
    const Generation plain = generate(m, plain_state.get(), prompt, p, stop_after);
    p.speculative = 1;
    p.draft = draft;
    StatePtr spec_state = new_state(m, flags);
    const Generation spec = generate(m, spec_state.get(), prompt, p, stop_after);
    CHECK_EQ(plain.status, MGL_OK);
    CHECK_EQ(spec.status, MGL_OK);
    const bool same = spec.tokens == plain.tokens && spec.text == plain.text &&
                      spec.result.n_tokens == plain.result.n_tokens &&
                      spec.result.stop_reason == plain.result.stop_reason &&
                      mgl_state_position(spec_state.get()) == mgl_state_position(plain_state.get()) &&
                      saved(spec_state.get(), "spec.state") == saved(plain_state.get(), "plain.state") &&
                      same_floats(mgl_state_logits(spec_state.get(), 0), mgl_state_logits(plain_state.get(), 0), V);
    if (!same) {
        report_failure(__FILE__, __LINE__,
                       std::string(label) + ": speculative output differs from plain: prompt " + show(prompt) +
                           ", max_tokens " + show(p.max_tokens) + ", draft " + show(draft) + "\n    plain " +
                           show(plain.tokens) + " stop " + show(int(plain.result.stop_reason)) + "\n    spec  " +
                           show(spec.tokens) + " stop " + show(int(spec.result.stop_reason)));
    }
    totals.add(spec, draft > 0);
}

struct Sweep {
    const char *label;
    int cases;
    int flags = 0;
    uint32_t max_prompt = 20;
    uint32_t max_budget = 48;
    uint32_t penalty_every = 3;  // one case in this many uses a repetition penalty (0: none)
    double min_tokens_per_forward = 0;
};

// Hundreds of prompts and lengths on one model: random prompt lengths (windows start at every
// chunk phase), budgets, draft widths, repetition penalty, stop strings taken from the plain
// output, EOS, and callbacks that stop.
void greedy_identity_sweep(const TinyConfig &cfg, uint32_t seed, const Sweep &sweep) {
    const char *label = sweep.label;
    const int flags = sweep.flags;
    ModelPtr m = load(write_random_model(temp_path(std::string(label) + ".gguf"), cfg, seed));
    const mgl_model_info info = info_of(m.get());
    std::mt19937 rng(seed * 7 + 1);
    Totals totals;
    for (int i = 0; i < sweep.cases; ++i) {
        const std::vector<int32_t> prompt = random_tokens(info.n_vocab, 1 + rng() % sweep.max_prompt, rng);
        mgl_generate_params p = mgl_generate_default_params();
        p.sampling.temperature = 0;
        p.max_tokens = int32_t(1 + rng() % sweep.max_budget);
        p.stop_at_eos = rng() % 4 != 0;
        if (sweep.penalty_every > 0 && rng() % sweep.penalty_every == 0) {
            p.sampling.repeat_penalty = 1.3f;
            p.sampling.repeat_last_n = int32_t(rng() % 3 == 0 ? -1 : 1 + rng() % 16);
        }
        const int draft = rng() % 3 == 0 ? 0 : int(1 + rng() % uint32_t(info.n_predict_heads));
        std::string stop_string;
        const char *stops[1];
        if (rng() % 3 == 0) {
            // A stop string from inside the plain output, so that it is found.
            StatePtr s = new_state(m.get(), flags);
            const Generation g = generate(m.get(), s.get(), prompt, p);
            if (g.text.size() >= 4) {
                const size_t len = 2 + rng() % 3, at = rng() % (g.text.size() - len + 1);
                stop_string = g.text.substr(at, len);
                stops[0] = stop_string.c_str();
                p.stop = stops;
                p.n_stop = 1;
            }
        }
        const int stop_after = rng() % 6 == 0 ? int(1 + rng() % uint32_t(p.max_tokens)) : -1;
        check_identical(m.get(), prompt, p, draft, stop_after, flags, totals, label);
    }
    totals.print(label);
    CHECK(totals.reasons.size() >= 2);
    CHECK(double(totals.tokens) / totals.forwards >= sweep.min_tokens_per_forward);
}

// Two-sample chi-square statistic over the outcomes of a and b (equal counts), cells with fewer
// than 10 observations pooled; returns (statistic, degrees of freedom).
std::pair<double, int> chi_square(const std::map<std::vector<int32_t>, int> &a,
                                  const std::map<std::vector<int32_t>, int> &b) {
    std::map<std::vector<int32_t>, std::pair<int, int>> cells;
    for (const auto &e : a) cells[e.first].first += e.second;
    for (const auto &e : b) cells[e.first].second += e.second;
    double stat = 0;
    int dof = -1;
    std::pair<int, int> pooled{0, 0};
    auto add = [&](int x, int y) {
        stat += double(x - y) * double(x - y) / double(x + y);
        ++dof;
    };
    for (const auto &c : cells) {
        if (c.second.first + c.second.second >= 10) {
            add(c.second.first, c.second.second);
        } else {
            pooled.first += c.second.first;
            pooled.second += c.second.second;
        }
    }
    if (pooled.first + pooled.second > 0) add(pooled.first, pooled.second);
    return {stat, dof};
}

// Upper quantile of the chi-square distribution with `dof` degrees of freedom at the standard
// normal quantile z (Wilson-Hilferty).
double chi_square_quantile(int dof, double z) {
    const double k = dof, h = 2.0 / (9.0 * k);
    return k * std::pow(1.0 - h + z * std::sqrt(h), 3.0);
}

// Joint outcomes of the first `n` tokens over `runs` seeds, plain or speculative.
std::map<std::vector<int32_t>, int> first_tokens(mgl_model *m, const std::vector<int32_t> &prompt,
                                                 mgl_generate_params p, int n, int runs, uint64_t seed0,
                                                 Totals *totals) {
    std::map<std::vector<int32_t>, int> counts;
    p.max_tokens = n;
    p.stop_at_eos = 0;
    for (int r = 0; r < runs; ++r) {
        p.sampling.seed = seed0 + uint64_t(r);
        StatePtr s = new_state(m);
        const Generation g = generate(m, s.get(), prompt, p);
        if (g.status != MGL_OK || int(g.tokens.size()) != n) throw std::runtime_error("sampling run failed");
        ++counts[g.tokens];
        if (totals) totals->add(g, true);  // sampling keeps every window at full length
    }
    return counts;
}

// The distribution of the first three tokens, and of each of them, from speculative sampling
// matches plain sampling. Deterministic seeds: the outcome is fixed, and the thresholds are at
// a false-alarm rate of about 1e-6 for a correct implementation.
void sampling_matches(const TinyConfig &cfg, uint32_t model_seed, mgl_sampling_params sp, const char *label,
                      double min_accept, double max_accept) {
    ModelPtr m = load(write_random_model(temp_path(std::string(label) + ".gguf"), cfg, model_seed), 1);
    const std::vector<int32_t> prompt = {5, 77, 140, 9};
    const int runs = 12000, n = 3;
    mgl_generate_params p = mgl_generate_default_params();
    p.sampling = sp;
    p.speculative = 0;
    const auto plain = first_tokens(m.get(), prompt, p, n, runs, 1000000, nullptr);
    p.speculative = 1;
    Totals totals;
    const auto spec = first_tokens(m.get(), prompt, p, n, runs, 1, &totals);
    totals.print(label);
    const double acceptance = double(totals.accepted) / double(std::max<int64_t>(1, totals.drafted));
    CHECK(acceptance >= min_accept && acceptance <= max_accept);

    auto project = [&](const std::map<std::vector<int32_t>, int> &joint, size_t begin, size_t end) {
        std::map<std::vector<int32_t>, int> out;
        for (const auto &e : joint) out[std::vector<int32_t>(e.first.begin() + begin, e.first.begin() + end)] += e.second;
        return out;
    };
    const struct {
        size_t begin, end;
    } views[] = {{0, 3}, {0, 1}, {1, 2}, {2, 3}, {0, 2}};
    for (const auto &v : views) {
        const auto [stat, dof] = chi_square(project(plain, v.begin, v.end), project(spec, v.begin, v.end));
        const double limit = chi_square_quantile(std::max(dof, 1), 4.75);
        std::printf("    tokens [%zu, %zu): chi-square %.1f, %d degrees of freedom (limit %.1f)\n", v.begin, v.end,
                    stat, dof, limit);
        CHECK(dof >= 3);
        CHECK(stat < limit);
    }
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Greedy identity

TEST_CASE(greedy_identity_with_random_heads) {
    greedy_identity_sweep(random_heads(4, 8), 101, {"random4_c8", 80});
    greedy_identity_sweep(random_heads(2, 8), 102, {"random2_c8", 60});
    TinyConfig c = random_heads(3, 8);
    c.n_layers = 3;
    c.mtp_source = "final";
    c.swiglu = false;
    c.tied_embedding = true;
    greedy_identity_sweep(c, 103, {"random3_final_c8", 60});
}

TEST_CASE(greedy_identity_with_agreeing_heads) {
    Sweep a{"agree4_c8", 80};
    a.penalty_every = 0;
    a.min_tokens_per_forward = 1.4;
    greedy_identity_sweep(agreeing_heads(4, 8, 0.1f), 104, a);
    Sweep b{"agree3_c5", 60};
    b.max_prompt = 12;
    b.penalty_every = 0;
    b.min_tokens_per_forward = 1.3;
    greedy_identity_sweep(agreeing_heads(3, 5, 0.05f), 105, b);
    // Windows wider than matmul's GEMV route (16 heads): projections are split into row groups.
    Sweep c{"agree16_c32", 30};
    c.max_prompt = 40;
    c.max_budget = 64;
    c.penalty_every = 0;
    c.min_tokens_per_forward = 1.6;
    greedy_identity_sweep(agreeing_heads(16, 32, 0.05f), 106, c);
    // Logits that do not depend on the input at all: every draft is accepted, windows are cut
    // only by the chunk boundary and the budget.
    TinyConfig constant = agreeing_heads(16, 32, 0.0f);
    constant.output_norm_weight_std = 0.0f;
    Sweep d{"constant16_c32", 20};
    d.max_prompt = 40;
    d.max_budget = 64;
    d.penalty_every = 0;
    d.min_tokens_per_forward = 4.0;
    greedy_identity_sweep(constant, 118, d);
}

TEST_CASE(greedy_identity_with_quantized_weights) {
    TinyConfig c = agreeing_heads(4, 8, 0.4f);
    c.weight_type = mgl::DType::Q8_0;
    greedy_identity_sweep(c, 107, {"agree4_q8", 40});
    TinyConfig r = random_heads(3, 8);
    r.weight_type = mgl::DType::F16;
    greedy_identity_sweep(r, 108, {"random3_f16", 30});
}

// Refresh mode (megalodon.md 6.4) recomputes the norm statistics every 2C tokens from 8C on;
// a window that ends on such a boundary must refresh at the commit like a plain run.
TEST_CASE(greedy_identity_in_refresh_mode) {
    Sweep s{"agree4_refresh", 12, MGL_STATE_TSN_REFRESH};
    s.max_prompt = 70;
    s.max_budget = 60;
    greedy_identity_sweep(agreeing_heads(4, 8), 109, s);
}

TEST_CASE(greedy_identity_at_chunk_boundaries) {
    ModelPtr m = load(write_random_model(temp_path("bounds.gguf"), agreeing_heads(4, 8), 110));
    std::mt19937 rng(110);
    Totals totals;
    for (size_t n : {7, 8, 9, 15, 16, 17, 4, 5, 6}) {
        for (int budget : {1, 2, 3, 4, 5, 9, 17, 30}) {
            const std::vector<int32_t> prompt = random_tokens(info_of(m.get()).n_vocab, n, rng);
            mgl_generate_params p = mgl_generate_default_params();
            p.sampling.temperature = 0;
            p.max_tokens = budget;
            p.stop_at_eos = 0;
            check_identical(m.get(), prompt, p, 4, -1, 0, totals, "bounds");
        }
    }
    totals.print("chunk boundaries");
}

// A generation that continues a state (empty prompt; the state may lack the extra heads'
// logits) and a continuation after a speculative run.
TEST_CASE(speculative_runs_continue_like_plain_runs) {
    ModelPtr m = load(write_random_model(temp_path("continue.gguf"), agreeing_heads(3, 8), 111));
    const std::vector<int32_t> prompt = {3, 17, 90, 4, 4, 200};
    mgl_generate_params p = mgl_generate_default_params();
    p.sampling.temperature = 0;
    p.stop_at_eos = 0;
    p.max_tokens = 13;
    StatePtr a = new_state(m.get()), b = new_state(m.get());
    const Generation a1 = generate(m.get(), a.get(), prompt, p);
    p.speculative = 1;
    const Generation b1 = generate(m.get(), b.get(), prompt, p);
    CHECK_EQ(b1.tokens, a1.tokens);
    // Continue both with empty prompts, the other way round.
    const Generation b2 = generate(m.get(), b.get(), {}, p);
    p.speculative = 0;
    const Generation a2 = generate(m.get(), a.get(), {}, p);
    CHECK_EQ(b2.tokens, a2.tokens);
    // And with a prompt after a plain run (the state holds only head 1's logits).
    p.speculative = 1;
    const Generation b3 = generate(m.get(), b.get(), {7}, p);
    p.speculative = 0;
    const Generation a3 = generate(m.get(), a.get(), {7}, p);
    CHECK_EQ(b3.tokens, a3.tokens);
    CHECK(saved(a.get(), "a.state") == saved(b.get(), "b.state"));
    // After an eval (all heads' logits present).
    StatePtr c = new_state(m.get()), d = new_state(m.get());
    std::vector<float> logits(size_t(3 * info_of(m.get()).n_vocab));
    CHECK_EQ(mgl_eval(m.get(), c.get(), prompt.data(), prompt.size(), 1, 3, logits.data()), MGL_OK);
    CHECK_EQ(mgl_eval(m.get(), d.get(), prompt.data(), prompt.size(), 1, 3, logits.data()), MGL_OK);
    const Generation c1 = generate(m.get(), c.get(), {}, p);
    p.speculative = 0;
    const Generation d1 = generate(m.get(), d.get(), {}, p);
    CHECK_EQ(c1.tokens, d1.tokens);
    CHECK(saved(c.get(), "c.state") == saved(d.get(), "d.state"));
}

// ------------------------------------------------------------------------------------------
// Rollback of a verification window through the core API

// Prefill, a window of deliberately wrong drafts, commit of each possible prefix: the state must
// equal (file bytes, and the next token's logits bit for bit) a state that consumed only that
// prefix, one token at a time.
TEST_CASE(window_commit_equals_consuming_the_prefix) {
    const std::string path = write_random_model(temp_path("rollback.gguf"), random_heads(4, 8), 112);
    std::unique_ptr<mgl::Model> model = mgl::Model::load(path, 2, true);
    const int64_t V = model->config().n_vocab, C = model->config().chunk_size;
    std::mt19937 rng(112);
    int checked = 0;
    for (int64_t prefill : {1, 3, 5, 6, 7, 8, 9, 12, 15}) {
        const std::vector<int32_t> prompt = random_tokens(int32_t(V), size_t(prefill), rng);
        const int64_t w = std::min<int64_t>(4, C - prefill % C);
        const std::vector<int32_t> window = random_tokens(int32_t(V), size_t(w), rng);
        for (int64_t keep = 1; keep <= w; ++keep) {
            mgl::State spec(*model, 0), plain(*model, 0);
            mgl::RunRequest prefill_run;
            prefill_run.keep_last_heads = 4;
            mgl::run_tokens(*model, spec, prompt.data(), prefill, prefill_run);
            mgl::RunRequest plain_run;
            mgl::run_tokens(*model, plain, prompt.data(), prefill, plain_run);
            for (int64_t i = 0; i < keep; ++i) {
                mgl::RunRequest step;
                step.keep_last_heads = 4;
                mgl::run_tokens(*model, plain, &window[size_t(i)], 1, step);
            }

            std::vector<float> logits(size_t(w * V)), extra(size_t(3 * V));
            mgl::WindowRequest request;
            request.tokens = window.data();
            request.rows = w;
            request.logits = logits.data();
            request.n_heads = 4;
            request.extra_logits = extra.data();
            request.choose_row = [&] { return keep - 1; };
            mgl::run_window(*model, spec, request);
            CHECK_EQ(spec.position(), prefill);  // the committed state is untouched
            std::vector<float> last(size_t(4 * V));
            std::copy(logits.begin() + (keep - 1) * V, logits.begin() + keep * V, last.begin());
            std::copy(extra.begin(), extra.end(), last.begin() + V);
            mgl::commit_window(*model, spec, window.data(), keep, last.data(), 4);

            CHECK_EQ(spec.position(), plain.position());
            CHECK_EQ(spec.kv_len(), plain.kv_len());
            for (int j = 0; j < 4; ++j) CHECK(same_floats(spec.last_logits(j), plain.last_logits(j), int32_t(V)));
            const std::string a = temp_path("rollback_a"), b = temp_path("rollback_b");
            spec.save(a);
            plain.save(b);
            CHECK(read_bytes(a) == read_bytes(b));
            // One more token decoded on both.
            const int32_t next = int32_t(rng() % uint32_t(V));
            mgl::RunRequest more;
            more.keep_last_heads = 1;
            mgl::run_tokens(*model, spec, &next, 1, more);
            mgl::run_tokens(*model, plain, &next, 1, more);
            CHECK(same_floats(spec.last_logits(0), plain.last_logits(0), int32_t(V)));
            ++checked;
        }
    }
    CHECK(checked > 20);
}

// ------------------------------------------------------------------------------------------
// Speculative sampling

TEST_CASE(speculative_sampling_matches_plain_sampling) {
    // A small, peaked vocabulary: 272 tokens, logits dominated by the final norm's bias.
    TinyConfig c = agreeing_heads(3, 8, 1.0f, 4.0f);
    c.n_vocab = 272;
    c.mtp_down_scale = 0.5f;  // heads close to head 1 but not equal: some drafts rejected
    mgl_sampling_params plain = mgl_sampling_default_params();
    plain.temperature = 1.0f;
    plain.top_k = 0;
    plain.top_p = 1.0f;
    plain.min_p = 0.0f;
    sampling_matches(c, 113, plain, "sampling_t1", 0.2, 0.95);

    // The whole chain (penalty, temperature, top-k, top-p, min-p) on p and q alike, with random
    // heads (most drafts rejected: the residual distribution does the work).
    TinyConfig r = agreeing_heads(3, 8, 1.0f, 2.0f);
    r.n_vocab = 272;
    r.mtp_source = "trunk";
    r.mtp_down_scale = 1.0f;
    mgl_sampling_params chain = mgl_sampling_default_params();
    chain.temperature = 0.9f;
    chain.top_k = 30;
    chain.top_p = 0.9f;
    chain.min_p = 0.02f;
    chain.repeat_penalty = 1.5f;
    chain.repeat_last_n = 8;
    sampling_matches(r, 114, chain, "sampling_chain", 0.01, 0.9);
}

// ------------------------------------------------------------------------------------------
// Statistics and arguments

TEST_CASE(statistics_describe_the_windows) {
    ModelPtr m = load(write_random_model(temp_path("stats.gguf"), agreeing_heads(4, 8), 115));
    mgl_generate_params p = mgl_generate_default_params();
    p.sampling.temperature = 0;
    p.stop_at_eos = 0;
    p.max_tokens = 100;
    p.speculative = 1;
    StatePtr s = new_state(m.get());
    const Generation g = generate(m.get(), s.get(), {10, 20, 30}, p);
    CHECK_EQ(g.status, MGL_OK);
    const mgl_generate_result &r = g.result;
    CHECK_EQ(r.n_tokens, 100);
    CHECK_EQ(r.draft_heads, 4);
    CHECK(r.forward_passes > 0 && r.forward_passes < 100);
    CHECK_NEAR(r.tokens_per_forward, 100.0 / r.forward_passes, 1e-12);
    // Every window keeps its first token plus its accepted drafts.
    CHECK_EQ(r.forward_passes + r.accepted[0] + r.accepted[1] + r.accepted[2], r.n_tokens);
    for (int j = 0; j < 3; ++j) CHECK(r.accepted[j] <= r.drafted[j]);
    CHECK(r.accepted[1] <= r.accepted[0] && r.accepted[2] <= r.accepted[1]);
    for (int j = 3; j < MGL_MAX_DRAFT_HEADS - 1; ++j) CHECK_EQ(r.drafted[j], 0);
    // The runtime chose the window lengths (draft 0, greedy): every length 1..4 was tried, and
    // the windows by rows add up to the forward passes.
    int windows = 0;
    for (int rows = 1; rows <= 4; ++rows) {
        CHECK(r.windows[rows - 1] > 0);
        windows += r.windows[rows - 1];
    }
    CHECK_EQ(windows, r.forward_passes);
    for (int rows = 5; rows <= MGL_MAX_DRAFT_HEADS; ++rows) CHECK_EQ(r.windows[rows - 1], 0);

    // Plain decoding: one forward per token, no drafts.
    p.speculative = 0;
    StatePtr t = new_state(m.get());
    const Generation h = generate(m.get(), t.get(), {10, 20, 30}, p);
    CHECK_EQ(h.result.forward_passes, 100);
    CHECK_EQ(h.result.draft_heads, 1);
    CHECK_EQ(h.result.tokens_per_forward, 1.0);
    CHECK_EQ(h.result.drafted[0], 0);

    // draft 2: one draft per window.
    p.speculative = 1;
    p.draft = 2;
    StatePtr u = new_state(m.get());
    const Generation k2 = generate(m.get(), u.get(), {10, 20, 30}, p);
    CHECK_EQ(k2.result.draft_heads, 2);
    CHECK_EQ(k2.result.drafted[1], 0);
    CHECK_EQ(k2.result.forward_passes + k2.result.accepted[0], 100);
    CHECK_EQ(k2.tokens, h.tokens);
    // A fixed draft length: windows of 2 rows, 1 only where a chunk boundary cuts one short.
    CHECK_EQ(k2.result.windows[0] + k2.result.windows[1], k2.result.forward_passes);
    CHECK(k2.result.windows[1] > k2.result.windows[0]);
    CHECK_EQ(k2.result.windows[2], 0);

    // Sampling keeps every window at full length (up to chunk boundaries), so a seed gives the
    // same tokens on every run whatever the machine's speed.
    p.draft = 0;
    p.sampling.temperature = 1.0f;
    p.sampling.seed = 7;
    StatePtr v = new_state(m.get()), w = new_state(m.get());
    const Generation s1 = generate(m.get(), v.get(), {10, 20, 30}, p), s2 = generate(m.get(), w.get(), {10, 20, 30}, p);
    CHECK_EQ(s1.tokens, s2.tokens);
    CHECK(s1.result.windows[3] > 0);
    CHECK_EQ(s1.result.windows[0] + s1.result.windows[1] + s1.result.windows[2] + s1.result.windows[3],
             s1.result.forward_passes);
}

// The window-length measurements of one generation carry over to the next on the same model:
// a fresh model tries every length first, a model that has generated before starts with the
// fastest one.
TEST_CASE(window_lengths_are_learned_across_generations) {
    ModelPtr m = load(write_random_model(temp_path("lengths.gguf"), agreeing_heads(4, 64), 119));
    mgl_generate_params p = mgl_generate_default_params();
    p.sampling.temperature = 0;
    p.stop_at_eos = 0;
    p.speculative = 1;
    auto lengths_used = [](const mgl_generate_result &r) {
        int n = 0;
        for (int rows = 1; rows <= 4; ++rows) n += r.windows[rows - 1] > 0;
        return n;
    };
    p.max_tokens = 8;
    StatePtr a = new_state(m.get());
    const Generation first = generate(m.get(), a.get(), {1, 2, 3}, p);
    CHECK(lengths_used(first.result) >= 3);
    p.max_tokens = 300;
    StatePtr b = new_state(m.get());
    const Generation longer = generate(m.get(), b.get(), {4, 5, 6}, p);
    CHECK_EQ(longer.status, MGL_OK);
    p.max_tokens = 8;
    StatePtr c = new_state(m.get());
    const Generation again = generate(m.get(), c.get(), {1, 2, 3}, p);
    CHECK(lengths_used(again.result) <= 2);  // the fastest length, and a last window cut by the budget
    CHECK_EQ(again.tokens, first.tokens);
}

TEST_CASE(bad_speculative_arguments_are_reported) {
    ModelPtr m = load(write_random_model(temp_path("args.gguf"), random_heads(3, 8), 116));
    mgl_generate_params p = mgl_generate_default_params();
    CHECK_EQ(p.speculative, 0);
    CHECK_EQ(p.draft, 0);
    p.max_tokens = 4;
    p.speculative = 1;
    const std::vector<int32_t> prompt = {1, 2};
    for (int draft : {4, 17, -1}) {
        p.draft = draft;
        StatePtr s = new_state(m.get());
        const Generation g = generate(m.get(), s.get(), prompt, p);
        CHECK_EQ(g.status, MGL_ERR_INVALID_ARG);
        CHECK(contains(mgl_last_error(), "draft = " + std::to_string(draft)));
        CHECK_EQ(mgl_state_position(s.get()), int64_t(0));  // nothing ran
        CHECK(g.tokens.empty());
    }
    {
        p.draft = 4;
        StatePtr s = new_state(m.get());
        generate(m.get(), s.get(), prompt, p);
        CHECK(contains(mgl_last_error(), "the model has 3 prediction heads"));
    }
    // Ignored when speculation is off.
    p.speculative = 0;
    p.draft = 9;
    {
        StatePtr s = new_state(m.get());
        CHECK_EQ(generate(m.get(), s.get(), prompt, p).status, MGL_OK);
    }
    p.speculative = 2;
    p.draft = 0;
    {
        StatePtr s = new_state(m.get());
        CHECK_EQ(generate(m.get(), s.get(), prompt, p).status, MGL_ERR_INVALID_ARG);
        CHECK(contains(mgl_last_error(), "speculative = 2"));
    }
    // A model without extra heads decodes plainly.
    ModelPtr single = load(write_random_model(temp_path("single.gguf"), TinyConfig(), 117));
    p.speculative = 1;
    p.draft = 0;
    StatePtr s = new_state(single.get());
    const Generation g = generate(single.get(), s.get(), prompt, p);
    CHECK_EQ(g.status, MGL_OK);
    CHECK_EQ(g.result.draft_heads, 1);
    CHECK_EQ(g.result.forward_passes, g.result.n_tokens);
    p.draft = 2;
    StatePtr s2 = new_state(single.get());
    CHECK_EQ(generate(single.get(), s2.get(), prompt, p).status, MGL_ERR_INVALID_ARG);
}

TEST_MAIN("test_speculative")
