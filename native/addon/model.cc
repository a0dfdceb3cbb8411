// The native Model class.
#include <cinttypes>
#include <cstdio>
#include <limits>

#include "jobs.h"

namespace mgl_node {

namespace {

constexpr int64_t kMaxThreads = 4096;
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

// Reads options.<key> when present; `read` validates it.
template <class F> void Option(const Napi::Object &options, const char *key, F &&read) {
    Napi::Value v = options.Get(key);
    if (v.IsUndefined()) return;
    read(v, (std::string("options.") + key).c_str());
}

uint64_t ArgSeed(const Napi::Value &v, const char *name) {
    if (v.IsBigInt()) {
        bool lossless = false;
        const uint64_t seed = v.As<Napi::BigInt>().Uint64Value(&lossless);
        if (!lossless)
            Throw(v.Env(), kCodeInvalidArg, std::string(name) + " must fit in 64 unsigned bits", ErrorKind::RangeError);
        return seed;
    }
    return static_cast<uint64_t>(ArgInteger(v, name, 0, (int64_t{1} << 53) - 1));
}

GenerateRequest ParseGenerateRequest(Napi::Env env, const Napi::Value &prompt, const Napi::Value &options_value,
                                     int32_t n_vocab) {
    GenerateRequest request;
    if (prompt.IsString()) {
        request.has_text_prompt = true;
        request.prompt_text = prompt.As<Napi::String>().Utf8Value();
    } else if (!prompt.IsUndefined() && !prompt.IsNull()) {
        request.prompt_tokens = ArgTokens(prompt, "prompt", n_vocab);
    }
    if (!options_value.IsObject())
        Throw(env, kCodeInvalidArg, "options must be an object", ErrorKind::TypeError);
    const Napi::Object options = options_value.As<Napi::Object>();

    mgl_generate_params &p = request.params;
    p = mgl_generate_default_params();
    Option(options, "maxTokens", [&](const Napi::Value &v, const char *name) {
        p.max_tokens = static_cast<int32_t>(ArgInteger(v, name, 0, kInt32Max));
    });
    Option(options, "temperature", [&](const Napi::Value &v, const char *name) {
        p.sampling.temperature = static_cast<float>(ArgNumber(v, name, 0, 100));
    });
    Option(options, "topK", [&](const Napi::Value &v, const char *name) {
        p.sampling.top_k = static_cast<int32_t>(ArgInteger(v, name, 0, kInt32Max));
    });
    Option(options, "topP", [&](const Napi::Value &v, const char *name) {
        p.sampling.top_p = static_cast<float>(ArgNumber(v, name, 0, 1));
    });
    Option(options, "minP", [&](const Napi::Value &v, const char *name) {
        p.sampling.min_p = static_cast<float>(ArgNumber(v, name, 0, 1));
    });
    Option(options, "repeatPenalty", [&](const Napi::Value &v, const char *name) {
        p.sampling.repeat_penalty = static_cast<float>(ArgNumber(v, name, 1e-3, 100));
    });
    Option(options, "repeatLastN", [&](const Napi::Value &v, const char *name) {
        p.sampling.repeat_last_n = static_cast<int32_t>(ArgInteger(v, name, 0, kInt32Max));
    });
    Option(options, "seed", [&](const Napi::Value &v, const char *name) { p.sampling.seed = ArgSeed(v, name); });
    Option(options, "stopAtEos", [&](const Napi::Value &v, const char *name) { p.stop_at_eos = ArgBool(v, name); });
    Option(options, "speculative", [&](const Napi::Value &v, const char *name) { p.speculative = ArgBool(v, name); });
    Option(options, "draft", [&](const Napi::Value &v, const char *name) {
        p.draft = static_cast<int32_t>(ArgInteger(v, name, 0, MGL_MAX_DRAFT_HEADS));
    });
    Option(options, "tokenizeFlags", [&](const Napi::Value &v, const char *name) {
        request.tokenize_flags = static_cast<int>(
            ArgInteger(v, name, 0, MGL_TOKENIZE_ADD_BOS | MGL_TOKENIZE_PARSE_SPECIAL));
    });
    Option(options, "stop", [&](const Napi::Value &v, const char *name) {
        if (!v.IsArray()) Throw(env, kCodeInvalidArg, std::string(name) + " must be an array of strings",
                                ErrorKind::TypeError);
        Napi::Array array = v.As<Napi::Array>();
        for (uint32_t i = 0; i < array.Length(); ++i) {
            const std::string item_name = std::string(name) + "[" + std::to_string(i) + "]";
            std::string s = ArgString(array.Get(i), item_name.c_str());
            if (s.empty() || s.find('\0') != std::string::npos)
                Throw(env, kCodeInvalidArg, item_name + " must be a non-empty string without NUL characters",
                      ErrorKind::RangeError);
            request.stop.push_back(std::move(s));
        }
    });
    return request;
}

std::string FingerprintHex(uint64_t fingerprint) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016" PRIx64, fingerprint);
    return buf;
}

}  // namespace

Napi::Function ModelWrap::Define(Napi::Env env) {
    Napi::Function ctor =
        DefineClass(env, "Model",
                    {StaticMethod<&ModelWrap::Load>("load"),
                     InstanceMethod<&ModelWrap::Info>("info"),
                     InstanceMethod<&ModelWrap::InfoJson>("infoJson"),
                     InstanceMethod<&ModelWrap::Tokenize>("tokenize"),
                     InstanceMethod<&ModelWrap::TokenizeSync>("tokenizeSync"),
                     InstanceMethod<&ModelWrap::Detokenize>("detokenize"),
                     InstanceMethod<&ModelWrap::TokenPiece>("tokenPiece"),
                     InstanceMethod<&ModelWrap::CreateState>("createState"),
                     InstanceMethod<&ModelWrap::LoadState>("loadState"),
                     InstanceMethod<&ModelWrap::Ingest>("ingest"),
                     InstanceMethod<&ModelWrap::Score>("score"),
                     InstanceMethod<&ModelWrap::Eval>("eval"),
                     InstanceMethod<&ModelWrap::Generate>("generate"),
                     InstanceMethod<&ModelWrap::SetThreads>("setThreads"),
                     InstanceMethod<&ModelWrap::Close>("close"),
                     InstanceAccessor<&ModelWrap::Closed>("closed")});
    GetAddonData(env).model_ctor = Napi::Persistent(ctor);
    return ctor;
}

Napi::Object NewModelObject(Napi::Env env, mgl_model *model) {
    std::shared_ptr<ModelCore> core;
    try {
        core = std::make_shared<ModelCore>(model);
    } catch (const Failure &f) {
        mgl_model_free(model);
        Throw(env, mgl_status_name(f.status), f.message);
    }
    return GetAddonData(env).model_ctor.New({Napi::External<std::shared_ptr<ModelCore>>::New(env, &core)});
}

ModelWrap::ModelWrap(const Napi::CallbackInfo &info) : Napi::ObjectWrap<ModelWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
        Throw(info.Env(), kCodeInvalidArg, "Model cannot be constructed directly: use Model.load()",
              ErrorKind::TypeError);
    core_ = *info[0].As<Napi::External<std::shared_ptr<ModelCore>>>().Data();
    info.This().As<Napi::Object>().TypeTag(&kModelTag);
}

Napi::Value ModelWrap::Load(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::string path = ArgString(info[0], "path");
    mgl_model_params params = mgl_model_default_params();
    if (!info[1].IsUndefined()) params.n_threads = static_cast<int>(ArgInteger(info[1], "options.threads", 0, kMaxThreads));
    if (!info[2].IsUndefined()) params.use_mmap = ArgBool(info[2], "options.useMmap") ? 1 : 0;
    return StartLoadModel(env, std::move(path), params);
}

Napi::Value ModelWrap::Info(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    core_->CheckOpen(env);
    const mgl_model_info &m = core_->info;
    Napi::Object o = Napi::Object::New(env);
    auto set_int = [&](const char *key, int64_t v) { o.Set(key, Napi::Number::New(env, static_cast<double>(v))); };
    set_int("nLayers", m.n_layers);
    set_int("dModel", m.d_model);
    set_int("cemaNdim", m.cema_ndim);
    set_int("nAttnHeads", m.n_attn_heads);
    set_int("zDim", m.z_dim);
    set_int("valueDim", m.value_dim);
    set_int("ffnDim", m.ffn_dim);
    set_int("chunkSize", m.chunk_size);
    set_int("normGroups", m.norm_groups);
    set_int("nVocab", m.n_vocab);
    set_int("nPredictHeads", m.n_predict_heads);
    set_int("mtpHiddenDim", m.mtp_hidden_dim);
    o.Set("swiglu", Napi::Boolean::New(env, m.swiglu != 0));
    o.Set("tiedEmbedding", Napi::Boolean::New(env, m.tied_embedding != 0));
    set_int("bosToken", m.bos_token);
    set_int("eosToken", m.eos_token);
    set_int("nThreads", m.n_threads);
    set_int("nParams", m.n_params);
    set_int("stateBytes", m.state_bytes);
    o.Set("fingerprint", Napi::String::New(env, FingerprintHex(m.fingerprint)));
    return o;
}

Napi::Value ModelWrap::InfoJson(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    core_->CheckOpen(env);
    const char *json = mgl_model_info_json(core_->model);
    if (json == nullptr) ThrowStatus(env, MGL_ERR_INTERNAL);
    return Napi::String::New(env, json);
}

Napi::Value ModelWrap::Tokenize(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    core_->CheckOpen(env);
    std::string text = ArgText(info[0], "text");
    const int flags = static_cast<int>(ArgInteger(info[1], "flags", 0, MGL_TOKENIZE_ADD_BOS | MGL_TOKENIZE_PARSE_SPECIAL));
    return StartTokenize(env, Lease(core_, nullptr, false), std::move(text), flags);
}

Napi::Value ModelWrap::TokenizeSync(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    core_->CheckOpen(env);
    const std::string text = ArgText(info[0], "text");
    const int flags = static_cast<int>(ArgInteger(info[1], "flags", 0, MGL_TOKENIZE_ADD_BOS | MGL_TOKENIZE_PARSE_SPECIAL));
    std::vector<int32_t> tokens;
    try {
        tokens = TokenizeNow(core_->model, text, flags);
    } catch (const Failure &f) {
        Throw(env, mgl_status_name(f.status), f.message);
    }
    Napi::Int32Array array = Napi::Int32Array::New(env, tokens.size());
    std::copy(tokens.begin(), tokens.end(), array.Data());
    return array;
}

Napi::Value ModelWrap::Detokenize(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    core_->CheckOpen(env);
    const std::vector<int32_t> tokens = ArgTokens(info[0], "tokens", core_->info.n_vocab);
    const bool render_special = ArgBool(info[1], "options.renderSpecial");
    try {
        const std::string text = DetokenizeNow(core_->model, tokens, render_special);
        return Napi::String::New(env, text.data(), text.size());
    } catch (const Failure &f) {
        Throw(env, mgl_status_name(f.status), f.message);
    }
}

Napi::Value ModelWrap::TokenPiece(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    core_->CheckOpen(env);
    const int32_t token = static_cast<int32_t>(ArgInteger(info[0], "token", 0, core_->info.n_vocab - 1));
    const char *piece = mgl_token_piece(core_->model, token);
    if (piece == nullptr) ThrowStatus(env, MGL_ERR_INVALID_ARG);
    return Napi::String::New(env, piece);
}

Napi::Value ModelWrap::CreateState(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    core_->CheckOpen(env);
    const int flags = static_cast<int>(ArgInteger(info[0], "flags", 0, MGL_STATE_TSN_REFRESH));
    mgl_state *state = nullptr;
    const mgl_status status = mgl_state_create(core_->model, flags, &state);
    if (status != MGL_OK) ThrowStatus(env, status);
    return StateWrap::Create(env, core_, state);
}

Napi::Value ModelWrap::LoadState(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    core_->CheckOpen(env);
    std::string path = ArgString(info[0], "path");
    return StartLoadState(env, Lease(core_, nullptr, false), std::move(path));
}

std::shared_ptr<StateCore> ModelWrap::UsableState(Napi::Env env, const Napi::Value &v) {
    std::shared_ptr<StateCore> state = StateWrap::FromValue(env, v, "state");
    if (state->model != core_) Throw(env, kCodeInvalidArg, "state belongs to another model");
    state->CheckUsable(env);
    return state;
}

Napi::Value ModelWrap::Ingest(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    core_->CheckOpen(env);
    std::shared_ptr<StateCore> state = UsableState(env, info[0]);
    std::vector<int32_t> tokens = ArgTokens(info[1], "tokens", core_->info.n_vocab);
    Napi::Function on_progress = ArgOptionalFunction(info[2], "options.onProgress");
    auto cancel = ArgCancelFlag(env, info[3]);
    return StartIngest(env, Lease(core_, state, true), std::move(tokens), on_progress, std::move(cancel));
}

Napi::Value ModelWrap::Score(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    core_->CheckOpen(env);
    std::shared_ptr<StateCore> state = UsableState(env, info[0]);
    std::vector<int32_t> tokens = ArgTokens(info[1], "tokens", core_->info.n_vocab);
    if (tokens.size() < 2)
        Throw(env, kCodeInvalidArg, "score needs at least 2 tokens", ErrorKind::RangeError);
    Napi::Function on_progress = ArgOptionalFunction(info[2], "options.onProgress");
    auto cancel = ArgCancelFlag(env, info[3]);
    return StartScore(env, Lease(core_, state, true), std::move(tokens), on_progress, std::move(cancel));
}

Napi::Value ModelWrap::Eval(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    core_->CheckOpen(env);
    std::shared_ptr<StateCore> state = UsableState(env, info[0]);
    std::vector<int32_t> tokens = ArgTokens(info[1], "tokens", core_->info.n_vocab);
    if (tokens.empty()) Throw(env, kCodeInvalidArg, "tokens must not be empty", ErrorKind::RangeError);
    const size_t rows =
        static_cast<size_t>(ArgInteger(info[2], "options.rows", 1, static_cast<int64_t>(tokens.size())));
    const int heads = static_cast<int>(ArgInteger(info[3], "options.heads", 1, core_->info.n_predict_heads));
    return StartEval(env, Lease(core_, state, true), std::move(tokens), rows, heads);
}

Napi::Value ModelWrap::Generate(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    core_->CheckOpen(env);
    std::shared_ptr<StateCore> state = UsableState(env, info[0]);
    GenerateRequest request = ParseGenerateRequest(env, info[1], info[2], core_->info.n_vocab);
    Napi::Function on_token = ArgOptionalFunction(info[3], "onToken");
    auto cancel = ArgCancelFlag(env, info[4]);
    return StartGenerate(env, Lease(core_, state, true), std::move(request), on_token, std::move(cancel));
}

void ModelWrap::SetThreads(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    core_->CheckOpen(env);
    const int n = static_cast<int>(ArgInteger(info[0], "threads", 0, kMaxThreads));
    if (core_->running_jobs > 0)
        Throw(env, kCodeBusy, "model is busy: the thread count can change only while no call runs the model");
    mgl_status status = mgl_model_set_threads(core_->model, n);
    if (status != MGL_OK) ThrowStatus(env, status);
    status = mgl_model_get_info(core_->model, &core_->info);
    if (status != MGL_OK) ThrowStatus(env, status);
}

void ModelWrap::Close(const Napi::CallbackInfo &) {
    if (core_->closed) return;
    core_->closed = true;
    if (core_->active_jobs == 0) core_->FreeNative();
}

Napi::Value ModelWrap::Closed(const Napi::CallbackInfo &info) { return Napi::Boolean::New(info.Env(), core_->closed); }

}  // namespace mgl_node
