/*
 * megalodon.h - C API of the MEGALODON runtime.
 *
 * Everything above the core (Node addon, CLI, C++ tests, Python ctypes tests) uses only this
 * header. Handles are opaque. Functions return an mgl_status; on failure a human-readable
 * message is available from mgl_last_error() (thread-local, valid until the next call on the
 * same thread).
 *
 * Threading: a model may be shared by several states, but calls that run the model
 * (mgl_eval, mgl_ingest, mgl_generate) on the same model are serialised internally.
 * A state must not be used by two calls at once.
 */
#ifndef MEGALODON_H
#define MEGALODON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(MGL_BUILD_SHARED)
#define MGL_API __declspec(dllexport)
#elif defined(__GNUC__)
#define MGL_API __attribute__((visibility("default")))
#else
#define MGL_API
#endif

#define MGL_STATE_FILE_VERSION 1

typedef enum mgl_status {
    MGL_OK = 0,
    MGL_ERR_IO = 1,            /* file missing, unreadable, disk full */
    MGL_ERR_FORMAT = 2,        /* corrupt or truncated model/state file */
    MGL_ERR_UNSUPPORTED = 3,   /* valid file, but an architecture/type this runtime lacks */
    MGL_ERR_INVALID_ARG = 4,   /* bad argument: token out of range, null pointer, ... */
    MGL_ERR_OUT_OF_MEMORY = 5,
    MGL_ERR_CANCELLED = 6,     /* a progress/token callback asked to stop */
    MGL_ERR_MISMATCH = 7,      /* state file made by another model */
    MGL_ERR_INTERNAL = 8
} mgl_status;

typedef struct mgl_model mgl_model;
typedef struct mgl_state mgl_state;

/* Message of the last failed call on this thread ("" if none). */
MGL_API const char *mgl_last_error(void);
MGL_API const char *mgl_status_name(mgl_status s);
/* Runtime build description, e.g. "megalodon 0.1.0 cpu avx2+fma". */
MGL_API const char *mgl_version(void);

/* ------------------------------------------------------------------------------------------ */
/* Model                                                                                       */

typedef struct mgl_model_params {
    int n_threads;  /* <= 0: number of hardware threads */
    int use_mmap;   /* 1 (default): memory-map the file; 0: read it into memory */
} mgl_model_params;

MGL_API mgl_model_params mgl_model_default_params(void);
MGL_API mgl_status mgl_model_load(const char *path, const mgl_model_params *params, mgl_model **out);
MGL_API void mgl_model_free(mgl_model *model);
MGL_API mgl_status mgl_model_set_threads(mgl_model *model, int n_threads);

typedef struct mgl_model_info {
    int32_t n_layers;        /* MEGALODON blocks, head-1 block included */
    int32_t d_model;         /* D */
    int32_t cema_ndim;       /* N */
    int32_t n_attn_heads;    /* H */
    int32_t z_dim;           /* Z */
    int32_t value_dim;       /* E */
    int32_t ffn_dim;         /* F */
    int32_t chunk_size;      /* C */
    int32_t norm_groups;     /* G */
    int32_t n_vocab;
    int32_t n_predict_heads; /* multi-token heads, head 1 (next token) included; >= 1 */
    int32_t mtp_hidden_dim;  /* hidden size of heads 2..n (0 if none) */
    int32_t swiglu;
    int32_t tied_embedding;
    int32_t bos_token;       /* -1 if none */
    int32_t eos_token;       /* -1 if none */
    int32_t n_threads;
    int64_t n_params;        /* all parameters, extra heads included */
    int64_t state_bytes;     /* size of a saved state at a chunk boundary */
    uint64_t fingerprint;    /* identifies the model's weights and config */
} mgl_model_info;

MGL_API mgl_status mgl_model_get_info(const mgl_model *model, mgl_model_info *out);
/* JSON object: config, parameter counts, tensor types, tokenizer, fingerprint. Owned by the model. */
MGL_API const char *mgl_model_info_json(const mgl_model *model);

/* ------------------------------------------------------------------------------------------ */
/* Tokenizer                                                                                   */

#define MGL_TOKENIZE_ADD_BOS 1        /* prepend BOS when the model has one */
#define MGL_TOKENIZE_PARSE_SPECIAL 2  /* recognise special tokens ("</s>", "<|endoftext|>") in text */

/* Tokenizes `len` bytes of UTF-8 (invalid bytes are encoded like any other byte, never fatal).
 * Writes the total count into *n_out and, if it fits in `cap`, the tokens into `out`; if
 * *n_out > cap nothing is written: call again with a big enough buffer. `out` may be NULL when
 * cap == 0. */
MGL_API mgl_status mgl_tokenize(const mgl_model *model, const char *text, size_t len, int flags,
                                int32_t *out, size_t cap, size_t *n_out);
/* Decodes tokens into bytes (UTF-8 for whole sequences). Same two-call convention as above.
 * Special tokens (BOS/EOS/...) are rendered as nothing unless render_special is non-zero. */
MGL_API mgl_status mgl_detokenize(const mgl_model *model, const int32_t *tokens, size_t n,
                                  int render_special, char *out, size_t cap, size_t *n_out);
/* The stored piece string of one token (e.g. "Ġthe", "▁the", "<0x0A>"), owned by the model. */
MGL_API const char *mgl_token_piece(const mgl_model *model, int32_t token);

/* ------------------------------------------------------------------------------------------ */
/* State: everything that persists between calls for one sequence                              */

#define MGL_STATE_TSN_REFRESH 1  /* reference-eval normalisation refresh (megalodon.md 6.4) */

MGL_API mgl_status mgl_state_create(const mgl_model *model, int flags, mgl_state **out);
MGL_API mgl_status mgl_state_clone(const mgl_state *state, mgl_state **out);
MGL_API void mgl_state_reset(mgl_state *state);
MGL_API void mgl_state_free(mgl_state *state);
MGL_API int64_t mgl_state_position(const mgl_state *state); /* tokens consumed so far */
MGL_API int mgl_state_flags(const mgl_state *state);
/* Bytes mgl_state_save would write now. At a chunk boundary it does not depend on the position. */
MGL_API int64_t mgl_state_size(const mgl_state *state);
/* Atomic: writes to a temporary file in the same folder, fsyncs, renames. */
MGL_API mgl_status mgl_state_save(const mgl_state *state, const char *path);
/* Fails with MGL_ERR_MISMATCH for a state of another model, MGL_ERR_FORMAT if corrupt. */
MGL_API mgl_status mgl_state_load(const mgl_model *model, const char *path, mgl_state **out);
/* Logits of the last position processed by mgl_eval / mgl_generate for head `head`
 * (0 = next token, i = token i+1 positions ahead); NULL if none are available. n_vocab floats. */
MGL_API const float *mgl_state_logits(const mgl_state *state, int head);

/* ------------------------------------------------------------------------------------------ */
/* Running the model                                                                           */

/* Return non-zero to cancel (checked between chunks). */
typedef int (*mgl_progress_fn)(int64_t done, int64_t total, void *user);

/* Streams tokens through the model without computing logits (chunk-parallel). Input of any
 * length; split at chunk boundaries internally; progress after every chunk. On cancel returns
 * MGL_ERR_CANCELLED and the state holds every token up to the last finished chunk
 * (mgl_state_position tells how many). */
MGL_API mgl_status mgl_ingest(mgl_model *model, mgl_state *state, const int32_t *tokens, size_t n,
                              mgl_progress_fn progress, void *user);

/* Consumes tokens and writes logits of the last `n_rows` positions (n_rows <= n) for the first
 * `n_heads` prediction heads (1..n_predict_heads) into `logits`, laid out
 * [n_rows][n_heads][n_vocab]. The state's last-position logits are updated for all heads. */
MGL_API mgl_status mgl_eval(mgl_model *model, mgl_state *state, const int32_t *tokens, size_t n,
                            size_t n_rows, int n_heads, float *logits);

/* Mean negative log-likelihood (nats) of tokens[1..n) given the state plus the tokens before
 * each; the state ends after all n tokens. */
MGL_API mgl_status mgl_score(mgl_model *model, mgl_state *state, const int32_t *tokens, size_t n,
                             double *sum_nll, int64_t *n_scored, mgl_progress_fn progress, void *user);

typedef struct mgl_sampling_params {
    float temperature;     /* <= 0: greedy */
    int32_t top_k;         /* <= 0: off */
    float top_p;           /* >= 1: off */
    float min_p;           /* <= 0: off */
    float repeat_penalty;  /* 1: off */
    int32_t repeat_last_n; /* window for the penalty (tokens of prompt + output) */
    uint64_t seed;
} mgl_sampling_params;

MGL_API mgl_sampling_params mgl_sampling_default_params(void);

typedef enum mgl_stop_reason {
    MGL_STOP_MAX_TOKENS = 0,
    MGL_STOP_EOS = 1,
    MGL_STOP_STRING = 2,
    MGL_STOP_CALLBACK = 3
} mgl_stop_reason;

/* Prediction heads one speculative step can use, head 1 included. */
#define MGL_MAX_DRAFT_HEADS 16

typedef struct mgl_generate_params {
    int32_t max_tokens;
    mgl_sampling_params sampling;
    const char *const *stop;  /* stop strings (not included in the output text) */
    size_t n_stop;
    int stop_at_eos;          /* default 1 */
    /* 1: self-speculative decoding with the model's multi-token heads: heads 2..k draft the
     * tokens after the next one and one forward pass verifies them. Greedy output (temperature
     * <= 0) is identical to plain decoding; with sampling the output follows the same
     * distribution as plain sampling (speculative sampling), but a seed gives other tokens.
     * 0 (default): plain decoding, one forward pass per token. */
    int32_t speculative;
    /* Heads k used per speculative step, head 1 included (a step verifies the next token plus
     * k - 1 drafts): 1..MGL_MAX_DRAFT_HEADS, or 0 (default) for up to all of the model's heads
     * with, in greedy decoding, the window length of each step chosen by the runtime: it
     * measures the speed of each length during the call and mostly uses the fastest (a length
     * of 1 is a plain step). More heads than the model has is MGL_ERR_INVALID_ARG. Ignored
     * when speculative is 0. */
    int32_t draft;
} mgl_generate_params;

/* max_tokens 256, the default sampling, no stop strings, stop at EOS, speculative off. */
MGL_API mgl_generate_params mgl_generate_default_params(void);

typedef struct mgl_generate_result {
    int32_t n_tokens;         /* tokens generated */
    mgl_stop_reason stop_reason;
    double prompt_seconds;
    double generate_seconds;
    /* Forward passes of the decode loop (the prompt's excluded): n_tokens when not speculative. */
    int32_t forward_passes;
    /* Heads used per step, head 1 included (1 when not speculative). */
    int32_t draft_heads;
    double tokens_per_forward;  /* n_tokens / forward_passes (0 if none) */
    /* Head j = 2..draft_heads at index j - 2: drafts of that head put into a verification
     * window, and how many of them were accepted (a draft counts as accepted only when every
     * draft before it in its window was too, so accepted/drafted is the cumulative acceptance). */
    int32_t drafted[MGL_MAX_DRAFT_HEADS - 1];
    int32_t accepted[MGL_MAX_DRAFT_HEADS - 1];
    /* Forward passes by rows: windows[r - 1] verified r - 1 drafts (r = 1: a plain step). */
    int32_t windows[MGL_MAX_DRAFT_HEADS];
} mgl_generate_result;

/* Called once per generated token. `text` holds the newly final UTF-8 text (may be empty while
 * a multi-byte character or a possible stop string is pending). Return non-zero to stop. */
typedef int (*mgl_token_fn)(int32_t token, const char *text, size_t text_len, void *user);

/* Feeds `prompt` (may be empty if the state already has logits), then samples up to max_tokens.
 * Every generated token is consumed into the state, so the state continues after the output. */
MGL_API mgl_status mgl_generate(mgl_model *model, mgl_state *state, const int32_t *prompt,
                                size_t n_prompt, const mgl_generate_params *params,
                                mgl_token_fn on_token, void *user, mgl_generate_result *result);

/* Sampler on its own (for callers that drive mgl_eval themselves). */
typedef struct mgl_sampler mgl_sampler;
MGL_API mgl_status mgl_sampler_create(const mgl_sampling_params *params, mgl_sampler **out);
MGL_API void mgl_sampler_free(mgl_sampler *sampler);
/* history: previous tokens, for the repetition penalty. */
MGL_API int32_t mgl_sampler_sample(mgl_sampler *sampler, const float *logits, int32_t n_vocab,
                                   const int32_t *history, size_t n_history);

#ifdef __cplusplus
}
#endif

#endif /* MEGALODON_H */
