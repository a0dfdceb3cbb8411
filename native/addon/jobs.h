// Long calls of the binding: each runs on a libuv worker thread (Napi::AsyncWorker) and
// settles a promise. Streaming jobs send progress or tokens to JS through a thread-safe
// function and settle only after every queued event was delivered.
#pragma once

#include "addon.h"

namespace mgl_node {

// Two-call helpers of the C API (throw Failure).
std::vector<int32_t> TokenizeNow(const mgl_model *model, const std::string &text, int flags);
std::string DetokenizeNow(const mgl_model *model, const std::vector<int32_t> &tokens, bool render_special);

struct GenerateRequest {
    bool has_text_prompt = false;
    std::string prompt_text;   // tokenized on the worker thread with tokenize_flags
    int tokenize_flags = 0;
    std::vector<int32_t> prompt_tokens;
    mgl_generate_params params{};
    std::vector<std::string> stop;  // storage behind params.stop
};

// Each returns the job's promise. Argument checks are done by the caller; a Lease marks the
// model/state in use until the job completes.
Napi::Promise StartLoadModel(Napi::Env env, std::string path, mgl_model_params params);
Napi::Promise StartTokenize(Napi::Env env, Lease lease, std::string text, int flags);
Napi::Promise StartLoadState(Napi::Env env, Lease lease, std::string path);
Napi::Promise StartSaveState(Napi::Env env, Lease lease, std::string path);
Napi::Promise StartIngest(Napi::Env env, Lease lease, std::vector<int32_t> tokens,
                          Napi::Function on_progress, std::shared_ptr<std::atomic<bool>> cancel);
Napi::Promise StartScore(Napi::Env env, Lease lease, std::vector<int32_t> tokens,
                         Napi::Function on_progress, std::shared_ptr<std::atomic<bool>> cancel);
Napi::Promise StartEval(Napi::Env env, Lease lease, std::vector<int32_t> tokens, size_t rows, int heads);
Napi::Promise StartGenerate(Napi::Env env, Lease lease, GenerateRequest request, Napi::Function on_token,
                            std::shared_ptr<std::atomic<bool>> cancel);

}  // namespace mgl_node
