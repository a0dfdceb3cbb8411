// The C API (include/megalodon.h): argument checks and exceptions turned into mgl_status plus a
// thread-local message. Generation itself is in generate.cpp.
#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "backend_select.h"
#include "common.h"
#include "generate.h"
#include "kernels.h"
#include "megalodon.h"
#include "model.h"
#include "sampling.h"
#include "state.h"

struct mgl_model {
    std::unique_ptr<mgl::Model> impl;
};

struct mgl_state {
    std::unique_ptr<mgl::State> impl;
};

struct mgl_sampler {
    mgl::Sampler impl;
};

namespace {

using mgl::fail;

thread_local std::string t_last_error;

void set_error(const std::string &message) { t_last_error = message; }

// Runs fn, mapping every exception to a status and the thread's last error message.
template <class Fn> mgl_status guarded(Fn &&fn) {
    t_last_error.clear();
    try {
        fn();
        return MGL_OK;
    } catch (const mgl::Error &e) {
        set_error(e.what());
        return e.status;
    } catch (const std::bad_alloc &) {
        set_error("out of memory");
        return MGL_ERR_OUT_OF_MEMORY;
    } catch (const std::exception &e) {
        set_error(std::string("internal error: ") + e.what());
        return MGL_ERR_INTERNAL;
    } catch (...) {
        set_error("internal error: unknown exception");
        return MGL_ERR_INTERNAL;
    }
}

template <class T> void require(const T *p, const char *fn, const char *name) {
    if (!p) fail(MGL_ERR_INVALID_ARG, std::string(fn) + ": " + name + " is null");
}

void require_same_model(const mgl_model *model, const mgl_state *state, const char *fn) {
    require(model, fn, "model");
    require(state, fn, "state");
    if (&state->impl->model() != model->impl.get())
        fail(MGL_ERR_INVALID_ARG, std::string(fn) + ": the state belongs to another model");
}

void check_tokens(const mgl::Model &model, const int32_t *tokens, size_t n, const char *fn) {
    if (n > 0 && !tokens) fail(MGL_ERR_INVALID_ARG, std::string(fn) + ": tokens is null");
    const int32_t vocab = int32_t(model.config().n_vocab);
    for (size_t i = 0; i < n; ++i)
        if (tokens[i] < 0 || tokens[i] >= vocab)
            fail(MGL_ERR_INVALID_ARG, std::string(fn) + ": token " + std::to_string(tokens[i]) + " at index " +
                                          std::to_string(i) + " is out of range [0, " + std::to_string(vocab) + ")");
}

mgl_sampling_params default_sampling() {
    mgl_sampling_params p;
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.seed = 0;
    return p;
}

}  // namespace

extern "C" {

const char *mgl_last_error(void) { return t_last_error.c_str(); }

const char *mgl_status_name(mgl_status s) {
    switch (s) {
        case MGL_OK: return "MGL_OK";
        case MGL_ERR_IO: return "MGL_ERR_IO";
        case MGL_ERR_FORMAT: return "MGL_ERR_FORMAT";
        case MGL_ERR_UNSUPPORTED: return "MGL_ERR_UNSUPPORTED";
        case MGL_ERR_INVALID_ARG: return "MGL_ERR_INVALID_ARG";
        case MGL_ERR_OUT_OF_MEMORY: return "MGL_ERR_OUT_OF_MEMORY";
        case MGL_ERR_CANCELLED: return "MGL_ERR_CANCELLED";
        case MGL_ERR_MISMATCH: return "MGL_ERR_MISMATCH";
        case MGL_ERR_INTERNAL: return "MGL_ERR_INTERNAL";
    }
    return "MGL_ERR_UNKNOWN";
}

const char *mgl_version(void) {
    static const std::string version = std::string("megalodon 0.1.0 cpu ") + mgl::cpu_features();
    return version.c_str();
}

// ------------------------------------------------------------------------------------------
// Model

mgl_model_params mgl_model_default_params(void) {
    mgl_model_params p;
    p.n_threads = 0;
    p.use_mmap = 1;
    return p;
}

mgl_status mgl_model_load(const char *path, const mgl_model_params *params, mgl_model **out) {
    return guarded([&] {
        require(out, "mgl_model_load", "out");
        *out = nullptr;
        require(path, "mgl_model_load", "path");
        const mgl_model_params p = params ? *params : mgl_model_default_params();
        mgl::announce_backend_choice();
        auto model = std::make_unique<mgl_model>();
        model->impl = mgl::Model::load(path, p.n_threads, p.use_mmap != 0);
        *out = model.release();
    });
}

void mgl_model_free(mgl_model *model) { delete model; }

mgl_status mgl_model_set_threads(mgl_model *model, int n_threads) {
    return guarded([&] {
        require(model, "mgl_model_set_threads", "model");
        std::lock_guard<std::mutex> lock(model->impl->run_mutex());
        model->impl->set_threads(n_threads);
    });
}

mgl_status mgl_model_get_info(const mgl_model *model, mgl_model_info *out) {
    return guarded([&] {
        require(model, "mgl_model_get_info", "model");
        require(out, "mgl_model_get_info", "out");
        const mgl::Model &m = *model->impl;
        const mgl::ModelConfig &c = m.config();
        mgl_model_info info;
        std::memset(&info, 0, sizeof info);
        info.n_layers = int32_t(c.n_layers);
        info.d_model = int32_t(c.d_model);
        info.cema_ndim = int32_t(c.cema_ndim);
        info.n_attn_heads = int32_t(c.n_heads);
        info.z_dim = int32_t(c.z_dim);
        info.value_dim = int32_t(c.value_dim);
        info.ffn_dim = int32_t(c.ffn_dim);
        info.chunk_size = int32_t(c.chunk_size);
        info.norm_groups = int32_t(c.norm_groups);
        info.n_vocab = int32_t(c.n_vocab);
        info.n_predict_heads = int32_t(c.n_predict);
        info.mtp_hidden_dim = int32_t(c.mtp_hidden);
        info.swiglu = c.swiglu ? 1 : 0;
        info.tied_embedding = c.tied_embedding ? 1 : 0;
        info.bos_token = m.tokenizer().bos();
        info.eos_token = m.tokenizer().eos();
        info.n_threads = m.n_threads();
        info.n_params = m.params().total();
        info.state_bytes = m.state_bytes_at_boundary();
        info.fingerprint = m.fingerprint();
        *out = info;
    });
}

const char *mgl_model_info_json(const mgl_model *model) {
    if (!model) {
        set_error("mgl_model_info_json: model is null");
        return nullptr;
    }
    return model->impl->info_json().c_str();
}

// ------------------------------------------------------------------------------------------
// Tokenizer

mgl_status mgl_tokenize(const mgl_model *model, const char *text, size_t len, int flags, int32_t *out, size_t cap,
                        size_t *n_out) {
    return guarded([&] {
        const char *fn = "mgl_tokenize";
        require(model, fn, "model");
        require(n_out, fn, "n_out");
        if (len > 0) require(text, fn, "text");
        if (cap > 0) require(out, fn, "out");
        if (flags & ~(MGL_TOKENIZE_ADD_BOS | MGL_TOKENIZE_PARSE_SPECIAL))
            fail(MGL_ERR_INVALID_ARG, std::string(fn) + ": unknown flags " + std::to_string(flags));
        const std::vector<int32_t> tokens = model->impl->tokenizer().encode(
            std::string_view(len > 0 ? text : "", len), (flags & MGL_TOKENIZE_ADD_BOS) != 0,
            (flags & MGL_TOKENIZE_PARSE_SPECIAL) != 0);
        *n_out = tokens.size();
        if (tokens.size() <= cap) std::copy(tokens.begin(), tokens.end(), out);
    });
}

mgl_status mgl_detokenize(const mgl_model *model, const int32_t *tokens, size_t n, int render_special, char *out,
                          size_t cap, size_t *n_out) {
    return guarded([&] {
        const char *fn = "mgl_detokenize";
        require(model, fn, "model");
        require(n_out, fn, "n_out");
        if (cap > 0) require(out, fn, "out");
        check_tokens(*model->impl, tokens, n, fn);
        const std::string text = model->impl->tokenizer().decode(tokens, n, render_special != 0);
        *n_out = text.size();
        if (!text.empty() && text.size() <= cap) std::memcpy(out, text.data(), text.size());
    });
}

const char *mgl_token_piece(const mgl_model *model, int32_t token) {
    const char *piece = nullptr;
    guarded([&] {
        require(model, "mgl_token_piece", "model");
        check_tokens(*model->impl, &token, 1, "mgl_token_piece");
        piece = model->impl->tokenizer().piece(token).c_str();
    });
    return piece;
}

// ------------------------------------------------------------------------------------------
// State

mgl_status mgl_state_create(const mgl_model *model, int flags, mgl_state **out) {
    return guarded([&] {
        require(out, "mgl_state_create", "out");
        *out = nullptr;
        require(model, "mgl_state_create", "model");
        auto state = std::make_unique<mgl_state>();
        state->impl = std::make_unique<mgl::State>(*model->impl, flags);
        *out = state.release();
    });
}

mgl_status mgl_state_clone(const mgl_state *state, mgl_state **out) {
    return guarded([&] {
        require(out, "mgl_state_clone", "out");
        *out = nullptr;
        require(state, "mgl_state_clone", "state");
        auto copy = std::make_unique<mgl_state>();
        copy->impl = state->impl->clone();
        *out = copy.release();
    });
}

void mgl_state_reset(mgl_state *state) {
    if (state) state->impl->reset();
}

void mgl_state_free(mgl_state *state) { delete state; }

int64_t mgl_state_position(const mgl_state *state) { return state ? state->impl->position() : -1; }

int mgl_state_flags(const mgl_state *state) { return state ? state->impl->flags() : 0; }

int64_t mgl_state_size(const mgl_state *state) { return state ? state->impl->saved_size() : -1; }

mgl_status mgl_state_save(const mgl_state *state, const char *path) {
    return guarded([&] {
        require(state, "mgl_state_save", "state");
        require(path, "mgl_state_save", "path");
        state->impl->save(path);
    });
}

mgl_status mgl_state_load(const mgl_model *model, const char *path, mgl_state **out) {
    return guarded([&] {
        require(out, "mgl_state_load", "out");
        *out = nullptr;
        require(model, "mgl_state_load", "model");
        require(path, "mgl_state_load", "path");
        auto state = std::make_unique<mgl_state>();
        state->impl = mgl::State::load(*model->impl, path);
        *out = state.release();
    });
}

const float *mgl_state_logits(const mgl_state *state, int head) { return state ? state->impl->last_logits(head) : nullptr; }

// ------------------------------------------------------------------------------------------
// Running the model

mgl_status mgl_ingest(mgl_model *model, mgl_state *state, const int32_t *tokens, size_t n, mgl_progress_fn progress,
                      void *user) {
    return guarded([&] {
        require_same_model(model, state, "mgl_ingest");
        check_tokens(*model->impl, tokens, n, "mgl_ingest");
        mgl::RunRequest request;
        request.progress = progress;
        request.progress_user = user;
        const int64_t start = state->impl->position();
        if (!mgl::run_tokens(*model->impl, *state->impl, tokens, int64_t(n), request))
            fail(MGL_ERR_CANCELLED, "mgl_ingest: cancelled by the progress callback after " +
                                        std::to_string(state->impl->position() - start) + " of " + std::to_string(n) +
                                        " tokens");
    });
}

mgl_status mgl_eval(mgl_model *model, mgl_state *state, const int32_t *tokens, size_t n, size_t n_rows, int n_heads,
                    float *logits) {
    return guarded([&] {
        const char *fn = "mgl_eval";
        require_same_model(model, state, fn);
        const mgl::ModelConfig &c = model->impl->config();
        if (n_heads < 1 || n_heads > c.n_predict)
            fail(MGL_ERR_INVALID_ARG, std::string(fn) + ": n_heads = " + std::to_string(n_heads) + " is outside [1, " +
                                          std::to_string(c.n_predict) + "]");
        if (n_rows > n)
            fail(MGL_ERR_INVALID_ARG, std::string(fn) + ": n_rows = " + std::to_string(n_rows) +
                                          " is more than the number of tokens " + std::to_string(n));
        if (n_rows > 0) require(logits, fn, "logits");
        check_tokens(*model->impl, tokens, n, fn);
        mgl::RunRequest request;
        request.logits = logits;
        request.logits_rows = int64_t(n_rows);
        request.n_heads = n_heads;
        request.keep_last_heads = int(c.n_predict);
        mgl::run_tokens(*model->impl, *state->impl, tokens, int64_t(n), request);
    });
}

mgl_status mgl_score(mgl_model *model, mgl_state *state, const int32_t *tokens, size_t n, double *sum_nll,
                     int64_t *n_scored, mgl_progress_fn progress, void *user) {
    return guarded([&] {
        const char *fn = "mgl_score";
        require_same_model(model, state, fn);
        require(sum_nll, fn, "sum_nll");
        require(n_scored, fn, "n_scored");
        *sum_nll = 0;
        *n_scored = 0;
        check_tokens(*model->impl, tokens, n, fn);
        mgl::RunRequest request;
        request.score = true;
        request.keep_last_heads = 1;
        request.progress = progress;
        request.progress_user = user;
        const bool finished = mgl::run_tokens(*model->impl, *state->impl, tokens, int64_t(n), request);
        *sum_nll = request.sum_nll;
        *n_scored = request.n_scored;
        if (!finished)
            fail(MGL_ERR_CANCELLED, std::string(fn) + ": cancelled by the progress callback after " +
                                        std::to_string(request.n_scored) + " scored tokens");
    });
}

mgl_sampling_params mgl_sampling_default_params(void) { return default_sampling(); }

mgl_generate_params mgl_generate_default_params(void) {
    mgl_generate_params p;
    p.max_tokens = 256;
    p.sampling = default_sampling();
    p.stop = nullptr;
    p.n_stop = 0;
    p.stop_at_eos = 1;
    p.speculative = 0;
    p.draft = 0;
    return p;
}

mgl_status mgl_generate(mgl_model *model, mgl_state *state, const int32_t *prompt, size_t n_prompt,
                        const mgl_generate_params *params, mgl_token_fn on_token, void *user,
                        mgl_generate_result *result) {
    if (result) std::memset(result, 0, sizeof *result);
    return guarded([&] {
        const char *fn = "mgl_generate";
        require_same_model(model, state, fn);
        const mgl_generate_params p = params ? *params : mgl_generate_default_params();
        if (p.max_tokens < 0)
            fail(MGL_ERR_INVALID_ARG, std::string(fn) + ": max_tokens = " + std::to_string(p.max_tokens) + " is negative");
        if (p.n_stop > 0) require(p.stop, fn, "stop");
        std::vector<std::string> stops;
        for (size_t i = 0; i < p.n_stop; ++i) {
            if (!p.stop[i]) fail(MGL_ERR_INVALID_ARG, std::string(fn) + ": stop[" + std::to_string(i) + "] is null");
            if (*p.stop[i]) stops.emplace_back(p.stop[i]);
        }
        if (p.speculative != 0 && p.speculative != 1)
            fail(MGL_ERR_INVALID_ARG, std::string(fn) + ": speculative = " + std::to_string(p.speculative) +
                                          " (expected 0 or 1)");
        if (p.speculative) mgl::speculative_heads(model->impl->config(), p);
        check_tokens(*model->impl, prompt, n_prompt, fn);
        mgl::generate(*model->impl, *state->impl, prompt, n_prompt, p, std::move(stops), on_token, user, result);
    });
}

mgl_status mgl_sampler_create(const mgl_sampling_params *params, mgl_sampler **out) {
    return guarded([&] {
        require(out, "mgl_sampler_create", "out");
        *out = nullptr;
        require(params, "mgl_sampler_create", "params");
        *out = new mgl_sampler{mgl::Sampler(*params)};
    });
}

void mgl_sampler_free(mgl_sampler *sampler) { delete sampler; }

int32_t mgl_sampler_sample(mgl_sampler *sampler, const float *logits, int32_t n_vocab, const int32_t *history,
                           size_t n_history) {
    int32_t token = -1;
    guarded([&] {
        require(sampler, "mgl_sampler_sample", "sampler");
        token = sampler->impl.sample(logits, n_vocab, history, n_history);
    });
    return token;
}

}  // extern "C"
