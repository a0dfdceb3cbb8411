// Node-API binding of the MEGALODON C API (megalodon.h).
//
// Native ownership is shared_ptr based, so the order in which the garbage collector (or the
// environment's teardown) finalizes JS objects never matters: a StateCore keeps its ModelCore
// alive, and a running job keeps both alive. Everything mutable below (busy flags, job counters,
// closed flags) is touched on the JS thread only; worker threads use just the mgl_* handles.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "megalodon.h"

namespace mgl_node {

// ------------------------------------------------------------------------------------------
// Errors

// Codes of errors raised by the binding itself (the runtime's own codes are mgl_status names).
constexpr const char *kCodeInvalidArg = "MGL_ERR_INVALID_ARG";
constexpr const char *kCodeBusy = "MGL_ERR_BUSY";
constexpr const char *kCodeClosed = "MGL_ERR_CLOSED";

enum class ErrorKind { Error, TypeError, RangeError };

// An Error (TypeError, RangeError) with a `code` property.
Napi::Error MakeError(Napi::Env env, const char *code, const std::string &message,
                      ErrorKind kind = ErrorKind::Error);
[[noreturn]] void Throw(Napi::Env env, const char *code, const std::string &message,
                        ErrorKind kind = ErrorKind::Error);
// Throws the error of a failed C API call made on this thread (message from mgl_last_error()).
[[noreturn]] void ThrowStatus(Napi::Env env, mgl_status status);

// A failed C API call captured on a worker thread (mgl_last_error() is thread-local).
struct Failure {
    mgl_status status = MGL_OK;
    std::string message;
};
// Throws Failure{status, mgl_last_error()} when status != MGL_OK.
void Check(mgl_status status);

// ------------------------------------------------------------------------------------------
// Argument validation (throws TypeError/RangeError with code MGL_ERR_INVALID_ARG)

std::string ArgString(const Napi::Value &v, const char *name);
int64_t ArgInteger(const Napi::Value &v, const char *name, int64_t lo, int64_t hi);
double ArgNumber(const Napi::Value &v, const char *name, double lo, double hi);
bool ArgBool(const Napi::Value &v, const char *name);
// A string (encoded as UTF-8) or a Uint8Array (taken as bytes).
std::string ArgText(const Napi::Value &v, const char *name);
// An Int32Array or an array of integers, each in [0, n_vocab).
std::vector<int32_t> ArgTokens(const Napi::Value &v, const char *name, int32_t n_vocab);
// A function, or undefined/null (returns an empty Function).
Napi::Function ArgOptionalFunction(const Napi::Value &v, const char *name);

// ------------------------------------------------------------------------------------------
// Native objects

struct StateCore;

struct ModelCore {
    explicit ModelCore(mgl_model *m);
    ~ModelCore();
    ModelCore(const ModelCore &) = delete;
    ModelCore &operator=(const ModelCore &) = delete;

    // Throws MGL_ERR_CLOSED after close().
    void CheckOpen(Napi::Env env) const;
    // Frees every state of the model, then the model; called once no job runs.
    void FreeNative();

    mgl_model *model;
    mgl_model_info info{};
    bool closed = false;   // close() was called; freed as soon as active_jobs reaches 0
    int active_jobs = 0;   // jobs holding the model (tokenize, load/save state, runs)
    int running_jobs = 0;  // jobs that run the model itself (ingest, eval, score, generate)
    std::set<StateCore *> states;
};

struct StateCore {
    StateCore(std::shared_ptr<ModelCore> m, mgl_state *s);
    ~StateCore();
    StateCore(const StateCore &) = delete;
    StateCore &operator=(const StateCore &) = delete;

    // Throws MGL_ERR_CLOSED when the state or its model was closed, MGL_ERR_BUSY while a job
    // uses the state.
    void CheckUsable(Napi::Env env) const;
    void FreeNative();

    std::shared_ptr<ModelCore> model;
    mgl_state *state;
    bool busy = false;
    // Last values read while the state was idle; reported while a job runs on it.
    int64_t position = 0;
    int64_t size_bytes = 0;
    void Refresh();
};

// Marks a model (and optionally a state) as used by a job, from creation to completion.
class Lease {
public:
    Lease() = default;
    Lease(std::shared_ptr<ModelCore> model, std::shared_ptr<StateCore> state, bool runs_model);
    Lease(Lease &&other) noexcept;
    Lease &operator=(Lease &&other) = delete;
    ~Lease();
    void Release();  // JS thread

    ModelCore *model() const { return model_.get(); }
    const std::shared_ptr<ModelCore> &shared_model() const { return model_; }
    StateCore *state() const { return state_.get(); }

private:
    std::shared_ptr<ModelCore> model_;
    std::shared_ptr<StateCore> state_;
    bool runs_model_ = false;
    bool held_ = false;
};

// Constructors kept per environment (one per Node/Electron context).
struct AddonData {
    Napi::FunctionReference model_ctor;
    Napi::FunctionReference state_ctor;
};
AddonData &GetAddonData(Napi::Env env);

// Type tags prove that an object handed back from JS was wrapped by the expected class (a
// prototype check alone can be fooled with Object.setPrototypeOf).
extern const napi_type_tag kModelTag;
extern const napi_type_tag kStateTag;
extern const napi_type_tag kCancelFlagTag;
// True when `v` is an object carrying `tag`.
bool HasTag(const Napi::Value &v, const napi_type_tag &tag);

// A cancellation flag shared between JS (cancel()) and a job's callbacks on a worker thread.
class CancelFlag : public Napi::ObjectWrap<CancelFlag> {
public:
    static Napi::Function Define(Napi::Env env);
    explicit CancelFlag(const Napi::CallbackInfo &info);
    std::shared_ptr<std::atomic<bool>> flag() const { return flag_; }

private:
    void Cancel(const Napi::CallbackInfo &info);
    Napi::Value Cancelled(const Napi::CallbackInfo &info);
    std::shared_ptr<std::atomic<bool>> flag_;
};
// The flag of a CancelFlag argument, or a fresh (never set) flag for undefined/null.
std::shared_ptr<std::atomic<bool>> ArgCancelFlag(Napi::Env env, const Napi::Value &v);

class StateWrap : public Napi::ObjectWrap<StateWrap> {
public:
    static Napi::Function Define(Napi::Env env);
    // Wraps a fresh native state (takes ownership of `state`).
    static Napi::Object Create(Napi::Env env, const std::shared_ptr<ModelCore> &model, mgl_state *state);
    // The state behind a JS value; TypeError if it is not a State.
    static std::shared_ptr<StateCore> FromValue(Napi::Env env, const Napi::Value &v, const char *name);

    explicit StateWrap(const Napi::CallbackInfo &info);
    void Finalize(Napi::Env env) override;

private:
    Napi::Value Clone(const Napi::CallbackInfo &info);
    void Reset(const Napi::CallbackInfo &info);
    Napi::Value Save(const Napi::CallbackInfo &info);
    Napi::Value Logits(const Napi::CallbackInfo &info);
    void Close(const Napi::CallbackInfo &info);
    Napi::Value Position(const Napi::CallbackInfo &info);
    Napi::Value SizeBytes(const Napi::CallbackInfo &info);
    Napi::Value Flags(const Napi::CallbackInfo &info);
    Napi::Value Busy(const Napi::CallbackInfo &info);
    Napi::Value Closed(const Napi::CallbackInfo &info);
    void ReleaseMemoryHint(Napi::Env env);

    std::shared_ptr<StateCore> core_;
    int64_t external_bytes_ = 0;  // reported to the GC through AdjustExternalMemory
};

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
public:
    static Napi::Function Define(Napi::Env env);
    explicit ModelWrap(const Napi::CallbackInfo &info);

private:
    static Napi::Value Load(const Napi::CallbackInfo &info);
    Napi::Value Info(const Napi::CallbackInfo &info);
    Napi::Value InfoJson(const Napi::CallbackInfo &info);
    Napi::Value Tokenize(const Napi::CallbackInfo &info);
    Napi::Value TokenizeSync(const Napi::CallbackInfo &info);
    Napi::Value Detokenize(const Napi::CallbackInfo &info);
    Napi::Value TokenPiece(const Napi::CallbackInfo &info);
    Napi::Value CreateState(const Napi::CallbackInfo &info);
    Napi::Value LoadState(const Napi::CallbackInfo &info);
    Napi::Value Ingest(const Napi::CallbackInfo &info);
    Napi::Value Score(const Napi::CallbackInfo &info);
    Napi::Value Eval(const Napi::CallbackInfo &info);
    Napi::Value Generate(const Napi::CallbackInfo &info);
    void SetThreads(const Napi::CallbackInfo &info);
    void Close(const Napi::CallbackInfo &info);
    Napi::Value Closed(const Napi::CallbackInfo &info);

    // The state argument: a State of this model that no job is using.
    std::shared_ptr<StateCore> UsableState(Napi::Env env, const Napi::Value &v);

    std::shared_ptr<ModelCore> core_;
};

// Wraps a freshly loaded model (takes ownership of `model`).
Napi::Object NewModelObject(Napi::Env env, mgl_model *model);

}  // namespace mgl_node
