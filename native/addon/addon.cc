// Module entry, errors, argument validation and the native ownership objects.
#include "addon.h"

#include <cmath>
#include <limits>

namespace mgl_node {

// ------------------------------------------------------------------------------------------
// Errors

Napi::Error MakeError(Napi::Env env, const char *code, const std::string &message, ErrorKind kind) {
    Napi::Error error;
    switch (kind) {
    case ErrorKind::TypeError: error = Napi::TypeError::New(env, message); break;
    case ErrorKind::RangeError: error = Napi::RangeError::New(env, message); break;
    case ErrorKind::Error: error = Napi::Error::New(env, message); break;
    }
    error.Set("code", Napi::String::New(env, code));
    return error;
}

void Throw(Napi::Env env, const char *code, const std::string &message, ErrorKind kind) {
    throw MakeError(env, code, message, kind);
}

void ThrowStatus(Napi::Env env, mgl_status status) {
    std::string message = mgl_last_error();
    if (message.empty()) message = mgl_status_name(status);
    Throw(env, mgl_status_name(status), message);
}

void Check(mgl_status status) {
    if (status == MGL_OK) return;
    std::string message = mgl_last_error();
    if (message.empty()) message = mgl_status_name(status);
    throw Failure{status, message};
}

// ------------------------------------------------------------------------------------------
// Argument validation

namespace {

[[noreturn]] void ThrowType(Napi::Env env, const std::string &message) {
    Throw(env, kCodeInvalidArg, message, ErrorKind::TypeError);
}
[[noreturn]] void ThrowRange(Napi::Env env, const std::string &message) {
    Throw(env, kCodeInvalidArg, message, ErrorKind::RangeError);
}

std::string Describe(double d) {
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", d);
    return buf;
}

}  // namespace

std::string ArgString(const Napi::Value &v, const char *name) {
    if (!v.IsString()) ThrowType(v.Env(), std::string(name) + " must be a string");
    return v.As<Napi::String>().Utf8Value();
}

int64_t ArgInteger(const Napi::Value &v, const char *name, int64_t lo, int64_t hi) {
    if (!v.IsNumber()) ThrowType(v.Env(), std::string(name) + " must be a number");
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || std::floor(d) != d)
        ThrowRange(v.Env(), std::string(name) + " must be an integer, got " + Describe(d));
    if (d < static_cast<double>(lo) || d > static_cast<double>(hi))
        ThrowRange(v.Env(), std::string(name) + " must be in [" + std::to_string(lo) + ", " +
                                std::to_string(hi) + "], got " + Describe(d));
    return static_cast<int64_t>(d);
}

double ArgNumber(const Napi::Value &v, const char *name, double lo, double hi) {
    if (!v.IsNumber()) ThrowType(v.Env(), std::string(name) + " must be a number");
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= lo && d <= hi))  // also rejects NaN
        ThrowRange(v.Env(), std::string(name) + " must be in [" + Describe(lo) + ", " + Describe(hi) +
                                "], got " + Describe(d));
    return d;
}

bool ArgBool(const Napi::Value &v, const char *name) {
    if (!v.IsBoolean()) ThrowType(v.Env(), std::string(name) + " must be a boolean");
    return v.As<Napi::Boolean>().Value();
}

std::string ArgText(const Napi::Value &v, const char *name) {
    if (v.IsString()) return v.As<Napi::String>().Utf8Value();
    if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
        Napi::Uint8Array bytes = v.As<Napi::Uint8Array>();
        return std::string(reinterpret_cast<const char *>(bytes.Data()), bytes.ElementLength());
    }
    ThrowType(v.Env(), std::string(name) + " must be a string or a Uint8Array");
}

std::vector<int32_t> ArgTokens(const Napi::Value &v, const char *name, int32_t n_vocab) {
    Napi::Env env = v.Env();
    auto out_of_range = [&](size_t i, double value) {
        ThrowRange(env, std::string(name) + "[" + std::to_string(i) + "] = " + Describe(value) +
                            " is not a token id in [0, " + std::to_string(n_vocab) + ")");
    };
    std::vector<int32_t> tokens;
    if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
        Napi::Int32Array array = v.As<Napi::Int32Array>();
        const int32_t *data = array.Data();
        const size_t n = array.ElementLength();
        for (size_t i = 0; i < n; ++i)
            if (data[i] < 0 || data[i] >= n_vocab) out_of_range(i, data[i]);
        tokens.assign(data, data + n);
        return tokens;
    }
    if (v.IsArray()) {
        Napi::Array array = v.As<Napi::Array>();
        const uint32_t n = array.Length();
        tokens.resize(n);
        for (uint32_t i = 0; i < n; ++i) {
            Napi::Value item = array.Get(i);
            if (!item.IsNumber())
                ThrowType(env, std::string(name) + "[" + std::to_string(i) + "] must be a number");
            const double d = item.As<Napi::Number>().DoubleValue();
            if (!(d >= 0 && d < n_vocab) || std::floor(d) != d) out_of_range(i, d);
            tokens[i] = static_cast<int32_t>(d);
        }
        return tokens;
    }
    ThrowType(env, std::string(name) + " must be an Int32Array or an array of token ids");
}

Napi::Function ArgOptionalFunction(const Napi::Value &v, const char *name) {
    if (v.IsUndefined() || v.IsNull()) return Napi::Function();
    if (!v.IsFunction()) ThrowType(v.Env(), std::string(name) + " must be a function");
    return v.As<Napi::Function>();
}

// ------------------------------------------------------------------------------------------
// Native objects

ModelCore::ModelCore(mgl_model *m) : model(m) { Check(mgl_model_get_info(m, &info)); }

ModelCore::~ModelCore() { FreeNative(); }

void ModelCore::CheckOpen(Napi::Env env) const {
    if (closed || model == nullptr) Throw(env, kCodeClosed, "model is closed");
}

void ModelCore::FreeNative() {
    // States may point into the model, so they go first.
    for (StateCore *s : states) s->FreeNative();
    if (model != nullptr) mgl_model_free(model);
    model = nullptr;
}

StateCore::StateCore(std::shared_ptr<ModelCore> m, mgl_state *s) : model(std::move(m)), state(s) {
    model->states.insert(this);
    Refresh();
}

StateCore::~StateCore() {
    FreeNative();
    model->states.erase(this);
}

void StateCore::CheckUsable(Napi::Env env) const {
    if (model->closed || model->model == nullptr) Throw(env, kCodeClosed, "the state's model is closed");
    if (state == nullptr) Throw(env, kCodeClosed, "state is closed");
    if (busy) Throw(env, kCodeBusy, "state is busy: another call is using it");
}

void StateCore::FreeNative() {
    if (state != nullptr) mgl_state_free(state);
    state = nullptr;
}

void StateCore::Refresh() {
    if (state == nullptr) return;
    position = mgl_state_position(state);
    size_bytes = mgl_state_size(state);
}

Lease::Lease(std::shared_ptr<ModelCore> model, std::shared_ptr<StateCore> state, bool runs_model)
    : model_(std::move(model)), state_(std::move(state)), runs_model_(runs_model), held_(true) {
    ++model_->active_jobs;
    if (runs_model_) ++model_->running_jobs;
    if (state_) state_->busy = true;
}

Lease::Lease(Lease &&other) noexcept
    : model_(std::move(other.model_)), state_(std::move(other.state_)), runs_model_(other.runs_model_),
      held_(other.held_) {
    other.held_ = false;
}

Lease::~Lease() { Release(); }

void Lease::Release() {
    if (!held_) return;
    held_ = false;
    if (state_) {
        state_->busy = false;
        state_->Refresh();
    }
    --model_->active_jobs;
    if (runs_model_) --model_->running_jobs;
    if (model_->closed && model_->active_jobs == 0) model_->FreeNative();
}

AddonData &GetAddonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

const napi_type_tag kModelTag = {0x6d676c5f6d6f6465ull, 0x6c5f5f666f6c696full};
const napi_type_tag kStateTag = {0x6d676c5f73746174ull, 0x655f5f666f6c696full};
const napi_type_tag kCancelFlagTag = {0x6d676c5f63616e63ull, 0x656c5f666f6c696full};

bool HasTag(const Napi::Value &v, const napi_type_tag &tag) {
    return v.IsObject() && v.As<Napi::Object>().CheckTypeTag(&tag);
}

// ------------------------------------------------------------------------------------------
// CancelFlag

Napi::Function CancelFlag::Define(Napi::Env env) {
    Napi::Function ctor = DefineClass(env, "CancelFlag",
                                      {InstanceMethod<&CancelFlag::Cancel>("cancel"),
                                       InstanceAccessor<&CancelFlag::Cancelled>("cancelled")});
    return ctor;
}

CancelFlag::CancelFlag(const Napi::CallbackInfo &info)
    : Napi::ObjectWrap<CancelFlag>(info), flag_(std::make_shared<std::atomic<bool>>(false)) {
    info.This().As<Napi::Object>().TypeTag(&kCancelFlagTag);
}

void CancelFlag::Cancel(const Napi::CallbackInfo &) { flag_->store(true); }

Napi::Value CancelFlag::Cancelled(const Napi::CallbackInfo &info) {
    return Napi::Boolean::New(info.Env(), flag_->load());
}

std::shared_ptr<std::atomic<bool>> ArgCancelFlag(Napi::Env env, const Napi::Value &v) {
    if (v.IsUndefined() || v.IsNull()) return std::make_shared<std::atomic<bool>>(false);
    if (!HasTag(v, kCancelFlagTag))
        Throw(env, kCodeInvalidArg, "cancel must be a CancelFlag", ErrorKind::TypeError);
    return CancelFlag::Unwrap(v.As<Napi::Object>())->flag();
}

// ------------------------------------------------------------------------------------------
// Module

Napi::Object Init(Napi::Env env, Napi::Object exports) {
    env.SetInstanceData(new AddonData());
    exports.Set("Model", ModelWrap::Define(env));
    exports.Set("State", StateWrap::Define(env));
    exports.Set("CancelFlag", CancelFlag::Define(env));
    exports.Set("version", Napi::String::New(env, mgl_version()));
    return exports;
}

}  // namespace mgl_node

static Napi::Object InitMegalodon(Napi::Env env, Napi::Object exports) { return mgl_node::Init(env, exports); }

NODE_API_MODULE(megalodon, InitMegalodon)
