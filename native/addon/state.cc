// The native State class.
#include "jobs.h"

namespace mgl_node {

Napi::Function StateWrap::Define(Napi::Env env) {
    Napi::Function ctor = DefineClass(env, "State",
                                      {InstanceMethod<&StateWrap::Clone>("clone"),
                                       InstanceMethod<&StateWrap::Reset>("reset"),
                                       InstanceMethod<&StateWrap::Save>("save"),
                                       InstanceMethod<&StateWrap::Logits>("logits"),
                                       InstanceMethod<&StateWrap::Close>("close"),
                                       InstanceAccessor<&StateWrap::Position>("position"),
                                       InstanceAccessor<&StateWrap::SizeBytes>("sizeBytes"),
                                       InstanceAccessor<&StateWrap::Flags>("flags"),
                                       InstanceAccessor<&StateWrap::Busy>("busy"),
                                       InstanceAccessor<&StateWrap::Closed>("closed")});
    GetAddonData(env).state_ctor = Napi::Persistent(ctor);
    return ctor;
}

Napi::Object StateWrap::Create(Napi::Env env, const std::shared_ptr<ModelCore> &model, mgl_state *state) {
    auto core = std::make_shared<StateCore>(model, state);
    return GetAddonData(env).state_ctor.New({Napi::External<std::shared_ptr<StateCore>>::New(env, &core)});
}

std::shared_ptr<StateCore> StateWrap::FromValue(Napi::Env env, const Napi::Value &v, const char *name) {
    if (!HasTag(v, kStateTag)) Throw(env, kCodeInvalidArg, std::string(name) + " must be a State", ErrorKind::TypeError);
    return Unwrap(v.As<Napi::Object>())->core_;
}

StateWrap::StateWrap(const Napi::CallbackInfo &info) : Napi::ObjectWrap<StateWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsExternal())
        Throw(env, kCodeInvalidArg, "State cannot be constructed directly: use model.createState()",
              ErrorKind::TypeError);
    core_ = *info[0].As<Napi::External<std::shared_ptr<StateCore>>>().Data();
    info.This().As<Napi::Object>().TypeTag(&kStateTag);
    // Lets the garbage collector weigh the native memory a state holds.
    external_bytes_ = core_->size_bytes;
    Napi::MemoryManagement::AdjustExternalMemory(env, external_bytes_);
}

void StateWrap::Finalize(Napi::Env env) { ReleaseMemoryHint(env); }

void StateWrap::ReleaseMemoryHint(Napi::Env env) {
    if (external_bytes_ == 0) return;
    Napi::MemoryManagement::AdjustExternalMemory(env, -external_bytes_);
    external_bytes_ = 0;
}

Napi::Value StateWrap::Clone(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    core_->CheckUsable(env);
    mgl_state *copy = nullptr;
    const mgl_status status = mgl_state_clone(core_->state, &copy);
    if (status != MGL_OK) ThrowStatus(env, status);
    return Create(env, core_->model, copy);
}

void StateWrap::Reset(const Napi::CallbackInfo &info) {
    core_->CheckUsable(info.Env());
    mgl_state_reset(core_->state);
    core_->Refresh();
}

Napi::Value StateWrap::Save(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    core_->CheckUsable(env);
    std::string path = ArgString(info[0], "path");
    return StartSaveState(env, Lease(core_->model, core_, false), std::move(path));
}

Napi::Value StateWrap::Logits(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    core_->CheckUsable(env);
    const mgl_model_info &m = core_->model->info;
    const int head = static_cast<int>(ArgInteger(info[0], "head", 0, m.n_predict_heads - 1));
    const float *logits = mgl_state_logits(core_->state, head);
    if (logits == nullptr) return env.Null();
    Napi::Float32Array array = Napi::Float32Array::New(env, static_cast<size_t>(m.n_vocab));
    std::copy(logits, logits + m.n_vocab, array.Data());
    return array;
}

void StateWrap::Close(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (core_->busy) Throw(env, kCodeBusy, "state is busy: another call is using it");
    core_->FreeNative();
    ReleaseMemoryHint(env);
}

Napi::Value StateWrap::Position(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (core_->state == nullptr) Throw(env, kCodeClosed, "state is closed");
    if (!core_->busy) core_->Refresh();
    return Napi::Number::New(env, static_cast<double>(core_->position));
}

Napi::Value StateWrap::SizeBytes(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (core_->state == nullptr) Throw(env, kCodeClosed, "state is closed");
    if (!core_->busy) core_->Refresh();
    return Napi::Number::New(env, static_cast<double>(core_->size_bytes));
}

Napi::Value StateWrap::Flags(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (core_->state == nullptr) Throw(env, kCodeClosed, "state is closed");
    return Napi::Number::New(env, mgl_state_flags(core_->state));
}

Napi::Value StateWrap::Busy(const Napi::CallbackInfo &info) { return Napi::Boolean::New(info.Env(), core_->busy); }

Napi::Value StateWrap::Closed(const Napi::CallbackInfo &info) {
    return Napi::Boolean::New(info.Env(), core_->state == nullptr);
}

}  // namespace mgl_node
