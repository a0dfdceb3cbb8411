// Async workers behind every promise-returning call.
#include "jobs.h"

#include <algorithm>

#include <chrono>
#include <cmath>
#include <limits>
#include <new>

namespace mgl_node {

std::vector<int32_t> TokenizeNow(const mgl_model *model, const std::string &text, int flags) {
    // Byte-level and byte-fallback tokenizers give at most one token per byte plus specials,
    // so the first call nearly always fits.
    std::vector<int32_t> tokens(text.size() + 8);
    size_t n = 0;
    Check(mgl_tokenize(model, text.data(), text.size(), flags, tokens.data(), tokens.size(), &n));
    if (n > tokens.size()) {
        tokens.resize(n);
        Check(mgl_tokenize(model, text.data(), text.size(), flags, tokens.data(), tokens.size(), &n));
    }
    tokens.resize(n);
    return tokens;
}

std::string DetokenizeNow(const mgl_model *model, const std::vector<int32_t> &tokens, bool render_special) {
    std::string text(tokens.size() * 8 + 16, '\0');
    size_t n = 0;
    Check(mgl_detokenize(model, tokens.data(), tokens.size(), render_special ? 1 : 0, text.data(), text.size(), &n));
    if (n > text.size()) {
        text.resize(n);
        Check(mgl_detokenize(model, tokens.data(), tokens.size(), render_special ? 1 : 0, text.data(), text.size(),
                             &n));
    }
    text.resize(n);
    return text;
}

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

Napi::Int32Array ToInt32Array(Napi::Env env, const std::vector<int32_t> &values) {
    Napi::Int32Array array = Napi::Int32Array::New(env, values.size());
    std::copy(values.begin(), values.end(), array.Data());
    return array;
}

// ------------------------------------------------------------------------------------------
// Base classes

class Job : public Napi::AsyncWorker {
public:
    Napi::Promise Start() {
        Napi::Promise promise = deferred_.Promise();
        Queue();
        return promise;
    }

protected:
    Job(Napi::Env env, const char *name, Lease lease)
        : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), lease_(std::move(lease)) {}

    // Worker thread. Throws Failure (see Check) on error.
    virtual void Run() = 0;
    // JS thread, after Run succeeded.
    virtual Napi::Value Result(Napi::Env env) = 0;

    void Execute() final {
        try {
            Run();
        } catch (const Failure &f) {
            failure_ = f;
        } catch (const std::bad_alloc &) {
            failure_ = {MGL_ERR_OUT_OF_MEMORY, "out of memory"};
        } catch (const std::exception &e) {
            failure_ = {MGL_ERR_INTERNAL, e.what()};
        }
    }

    void OnOK() override {
        Settle(Env());
        lease_.Release();
    }

    void Settle(Napi::Env env) {
        if (failure_.status != MGL_OK) {
            deferred_.Reject(MakeError(env, mgl_status_name(failure_.status), failure_.message).Value());
            return;
        }
        try {
            deferred_.Resolve(Result(env));
        } catch (const Napi::Error &e) {
            deferred_.Reject(e.Value());
        }
    }

    Napi::Promise::Deferred deferred_;
    Lease lease_;
    Failure failure_;
};

// One event from a worker thread: ingest/score progress or a generated token.
struct Event {
    int64_t done = 0;
    int64_t total = 0;
    double tokens_per_second = 0;
    int32_t token = -1;
    std::string text;
};

class StreamJob : public Job {
protected:
    StreamJob(Napi::Env env, const char *name, Lease lease, Napi::Function callback,
              std::shared_ptr<std::atomic<bool>> cancel)
        : Job(env, name, std::move(lease)), cancel_(std::move(cancel)), has_callback_(!callback.IsEmpty()) {
        tsfn_ = Tsfn::New(env, callback, name, 0, 1, this, &StreamJob::Finalize, static_cast<void *>(nullptr));
        // The job must outlive OnOK: the thread-safe function's finalizer settles and deletes it.
        SuppressDestruct();
    }

    // JS thread: turns one event into a call of the user's callback.
    virtual void Deliver(Napi::Function callback, const Event &event) = 0;

    // Worker thread.
    void Post(Event event) {
        if (!has_callback_ || tsfn_gone_.load()) return;
        Event *copy = new Event(std::move(event));
        if (tsfn_.NonBlockingCall(copy) != napi_ok) delete copy;
    }
    bool Cancelled() const { return cancel_->load(); }

    void OnOK() override {
        completed_ = true;
        lease_.Release();
        tsfn_.Release();
    }

private:
    static void CallJs(Napi::Env env, Napi::Function callback, StreamJob *job, Event *event) {
        std::unique_ptr<Event> owned(event);
        if (env == nullptr || callback.IsEmpty() || !job->callback_error_.IsEmpty()) return;
        try {
            job->Deliver(callback, *owned);
        } catch (const Napi::Error &e) {
            // A throwing callback stops the job; its promise rejects with that exception.
            job->callback_error_ = Napi::Reference<Napi::Value>::New(e.Value(), 1);
            job->cancel_->store(true);
        }
    }

    static void Finalize(Napi::Env env, void *, StreamJob *job) {
        if (!job->completed_) {
            // The environment is shutting down under a running job: stop it at the next check
            // and leave the job object to the worker thread (it is not deleted).
            job->tsfn_gone_.store(true);
            job->cancel_->store(true);
            return;
        }
        if (!job->callback_error_.IsEmpty())
            job->deferred_.Reject(job->callback_error_.Value());
        else
            job->Settle(env);
        delete job;
    }

    using Tsfn = Napi::TypedThreadSafeFunction<StreamJob, Event, &StreamJob::CallJs>;
    Tsfn tsfn_;
    std::shared_ptr<std::atomic<bool>> cancel_;
    bool has_callback_;
    bool completed_ = false;  // OnOK ran (JS thread)
    std::atomic<bool> tsfn_gone_{false};
    Napi::Reference<Napi::Value> callback_error_;
};

// ------------------------------------------------------------------------------------------
// Jobs

class LoadModelJob : public Job {
public:
    LoadModelJob(Napi::Env env, std::string path, mgl_model_params params)
        : Job(env, "megalodon.load", Lease()), path_(std::move(path)), params_(params) {}
    ~LoadModelJob() override {
        if (model_ != nullptr) mgl_model_free(model_);
    }

protected:
    void Run() override { Check(mgl_model_load(path_.c_str(), &params_, &model_)); }
    Napi::Value Result(Napi::Env env) override {
        mgl_model *model = model_;
        model_ = nullptr;
        return NewModelObject(env, model);
    }

private:
    std::string path_;
    mgl_model_params params_;
    mgl_model *model_ = nullptr;
};

class TokenizeJob : public Job {
public:
    TokenizeJob(Napi::Env env, Lease lease, std::string text, int flags)
        : Job(env, "megalodon.tokenize", std::move(lease)), text_(std::move(text)), flags_(flags) {}

protected:
    void Run() override {
        tokens_ = TokenizeNow(lease_.model()->model, text_, flags_);
        std::string().swap(text_);
    }
    Napi::Value Result(Napi::Env env) override { return ToInt32Array(env, tokens_); }

private:
    std::string text_;
    int flags_;
    std::vector<int32_t> tokens_;
};

class LoadStateJob : public Job {
public:
    LoadStateJob(Napi::Env env, Lease lease, std::string path)
        : Job(env, "megalodon.loadState", std::move(lease)), path_(std::move(path)) {}
    ~LoadStateJob() override {
        if (state_ != nullptr) mgl_state_free(state_);
    }

protected:
    void Run() override { Check(mgl_state_load(lease_.model()->model, path_.c_str(), &state_)); }
    Napi::Value Result(Napi::Env env) override {
        ModelCore *model = lease_.model();
        if (model->closed) Throw(env, kCodeClosed, "model was closed while the state was loading");
        mgl_state *state = state_;
        state_ = nullptr;
        return StateWrap::Create(env, lease_.shared_model(), state);
    }

private:
    std::string path_;
    mgl_state *state_ = nullptr;
};

class SaveStateJob : public Job {
public:
    SaveStateJob(Napi::Env env, Lease lease, std::string path)
        : Job(env, "megalodon.save", std::move(lease)), path_(std::move(path)) {}

protected:
    void Run() override { Check(mgl_state_save(lease_.state()->state, path_.c_str())); }
    Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

private:
    std::string path_;
};

// Ingest and score share the progress plumbing.
class ProgressJob : public StreamJob {
protected:
    ProgressJob(Napi::Env env, const char *name, Lease lease, std::vector<int32_t> tokens, Napi::Function on_progress,
                std::shared_ptr<std::atomic<bool>> cancel)
        : StreamJob(env, name, std::move(lease), on_progress, std::move(cancel)), tokens_(std::move(tokens)) {}

    static int OnProgress(int64_t done, int64_t total, void *user) {
        ProgressJob *job = static_cast<ProgressJob *>(user);
        const double elapsed = SecondsSince(job->start_);
        Event event;
        event.done = done;
        event.total = total;
        event.tokens_per_second = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
        job->Post(std::move(event));
        return job->Cancelled() ? 1 : 0;
    }

    void Deliver(Napi::Function callback, const Event &event) override {
        Napi::Env env = callback.Env();
        callback.Call({Napi::Number::New(env, static_cast<double>(event.done)),
                       Napi::Number::New(env, static_cast<double>(event.total)),
                       Napi::Number::New(env, event.tokens_per_second)});
    }

    std::vector<int32_t> tokens_;
    Clock::time_point start_;
    double seconds_ = 0;
};

class IngestJob : public ProgressJob {
public:
    IngestJob(Napi::Env env, Lease lease, std::vector<int32_t> tokens, Napi::Function on_progress,
              std::shared_ptr<std::atomic<bool>> cancel)
        : ProgressJob(env, "megalodon.ingest", std::move(lease), std::move(tokens), on_progress, std::move(cancel)) {}

protected:
    void Run() override {
        start_ = Clock::now();
        const mgl_status status = mgl_ingest(lease_.model()->model, lease_.state()->state, tokens_.data(),
                                             tokens_.size(), &ProgressJob::OnProgress, this);
        seconds_ = SecondsSince(start_);
        Check(status);
    }
    Napi::Value Result(Napi::Env env) override {
        Napi::Object result = Napi::Object::New(env);
        result.Set("tokens", Napi::Number::New(env, static_cast<double>(tokens_.size())));
        result.Set("seconds", Napi::Number::New(env, seconds_));
        return result;
    }
};

class ScoreJob : public ProgressJob {
public:
    ScoreJob(Napi::Env env, Lease lease, std::vector<int32_t> tokens, Napi::Function on_progress,
             std::shared_ptr<std::atomic<bool>> cancel)
        : ProgressJob(env, "megalodon.score", std::move(lease), std::move(tokens), on_progress, std::move(cancel)) {}

protected:
    void Run() override {
        start_ = Clock::now();
        const mgl_status status = mgl_score(lease_.model()->model, lease_.state()->state, tokens_.data(),
                                            tokens_.size(), &sum_nll_, &n_scored_, &ProgressJob::OnProgress, this);
        seconds_ = SecondsSince(start_);
        Check(status);
    }
    Napi::Value Result(Napi::Env env) override {
        const double mean = n_scored_ > 0 ? sum_nll_ / static_cast<double>(n_scored_)
                                          : std::numeric_limits<double>::quiet_NaN();
        Napi::Object result = Napi::Object::New(env);
        result.Set("tokens", Napi::Number::New(env, static_cast<double>(tokens_.size())));
        result.Set("scored", Napi::Number::New(env, static_cast<double>(n_scored_)));
        result.Set("sumNll", Napi::Number::New(env, sum_nll_));
        result.Set("meanNll", Napi::Number::New(env, mean));
        result.Set("perplexity", Napi::Number::New(env, std::exp(mean)));
        result.Set("seconds", Napi::Number::New(env, seconds_));
        return result;
    }

private:
    double sum_nll_ = 0;
    int64_t n_scored_ = 0;
};

class EvalJob : public Job {
public:
    EvalJob(Napi::Env env, Lease lease, std::vector<int32_t> tokens, size_t rows, int heads)
        : Job(env, "megalodon.eval", std::move(lease)), tokens_(std::move(tokens)), rows_(rows), heads_(heads) {}

protected:
    void Run() override {
        logits_.resize(rows_ * static_cast<size_t>(heads_) * static_cast<size_t>(lease_.model()->info.n_vocab));
        Check(mgl_eval(lease_.model()->model, lease_.state()->state, tokens_.data(), tokens_.size(), rows_, heads_,
                       logits_.data()));
    }
    Napi::Value Result(Napi::Env env) override {
        Napi::Float32Array array = Napi::Float32Array::New(env, logits_.size());
        std::copy(logits_.begin(), logits_.end(), array.Data());
        return array;
    }

private:
    std::vector<int32_t> tokens_;
    size_t rows_;
    int heads_;
    std::vector<float> logits_;
};

class GenerateJob : public StreamJob {
public:
    GenerateJob(Napi::Env env, Lease lease, GenerateRequest request, Napi::Function on_token,
                std::shared_ptr<std::atomic<bool>> cancel)
        : StreamJob(env, "megalodon.generate", std::move(lease), on_token, std::move(cancel)),
          request_(std::move(request)) {
        for (const std::string &s : request_.stop) stop_ptrs_.push_back(s.c_str());
        request_.params.stop = stop_ptrs_.empty() ? nullptr : stop_ptrs_.data();
        request_.params.n_stop = stop_ptrs_.size();
    }

protected:
    void Run() override {
        mgl_model *model = lease_.model()->model;
        if (request_.has_text_prompt)
            request_.prompt_tokens = TokenizeNow(model, request_.prompt_text, request_.tokenize_flags);
        Check(mgl_generate(model, lease_.state()->state, request_.prompt_tokens.data(), request_.prompt_tokens.size(),
                           &request_.params, &GenerateJob::OnToken, this, &result_));
    }

    static int OnToken(int32_t token, const char *text, size_t text_len, void *user) {
        GenerateJob *job = static_cast<GenerateJob *>(user);
        Event event;
        event.token = token;
        event.text.assign(text, text_len);
        job->Post(std::move(event));
        return job->Cancelled() ? 1 : 0;
    }

    void Deliver(Napi::Function callback, const Event &event) override {
        Napi::Env env = callback.Env();
        callback.Call({Napi::Number::New(env, event.token), Napi::String::New(env, event.text)});
    }

    Napi::Value Result(Napi::Env env) override {
        static const char *const kStopReasons[] = {"max_tokens", "eos", "stop_string", "cancelled"};
        const int reason = static_cast<int>(result_.stop_reason);
        Napi::Object result = Napi::Object::New(env);
        result.Set("nTokens", Napi::Number::New(env, result_.n_tokens));
        result.Set("stopReason", Napi::String::New(env, reason >= 0 && reason < 4 ? kStopReasons[reason] : "unknown"));
        result.Set("promptTokens", Napi::Number::New(env, static_cast<double>(request_.prompt_tokens.size())));
        result.Set("promptSeconds", Napi::Number::New(env, result_.prompt_seconds));
        result.Set("generateSeconds", Napi::Number::New(env, result_.generate_seconds));
        Napi::Object speculative = Napi::Object::New(env);
        speculative.Set("draftHeads", Napi::Number::New(env, result_.draft_heads));
        speculative.Set("forwardPasses", Napi::Number::New(env, result_.forward_passes));
        speculative.Set("tokensPerForward", Napi::Number::New(env, result_.tokens_per_forward));
        const int n_drafts = std::max(0, result_.draft_heads - 1);
        Napi::Array drafted = Napi::Array::New(env, n_drafts), accepted = Napi::Array::New(env, n_drafts);
        for (int j = 0; j < n_drafts; ++j) {
            drafted.Set(uint32_t(j), Napi::Number::New(env, result_.drafted[j]));
            accepted.Set(uint32_t(j), Napi::Number::New(env, result_.accepted[j]));
        }
        speculative.Set("draftedPerHead", drafted);
        speculative.Set("acceptedPerHead", accepted);
        const int n_lengths = std::max(1, result_.draft_heads);
        Napi::Array windows = Napi::Array::New(env, n_lengths);
        for (int r = 0; r < n_lengths; ++r) windows.Set(uint32_t(r), Napi::Number::New(env, result_.windows[r]));
        speculative.Set("windowsByRows", windows);
        result.Set("speculative", speculative);
        return result;
    }

private:
    GenerateRequest request_;
    std::vector<const char *> stop_ptrs_;
    mgl_generate_result result_{};
};

template <class J, class... Args> Napi::Promise StartJob(Napi::Env env, Args &&...args) {
    J *job = new J(env, std::forward<Args>(args)...);
    return job->Start();
}

}  // namespace

Napi::Promise StartLoadModel(Napi::Env env, std::string path, mgl_model_params params) {
    return StartJob<LoadModelJob>(env, std::move(path), params);
}
Napi::Promise StartTokenize(Napi::Env env, Lease lease, std::string text, int flags) {
    return StartJob<TokenizeJob>(env, std::move(lease), std::move(text), flags);
}
Napi::Promise StartLoadState(Napi::Env env, Lease lease, std::string path) {
    return StartJob<LoadStateJob>(env, std::move(lease), std::move(path));
}
Napi::Promise StartSaveState(Napi::Env env, Lease lease, std::string path) {
    return StartJob<SaveStateJob>(env, std::move(lease), std::move(path));
}
Napi::Promise StartIngest(Napi::Env env, Lease lease, std::vector<int32_t> tokens, Napi::Function on_progress,
                          std::shared_ptr<std::atomic<bool>> cancel) {
    return StartJob<IngestJob>(env, std::move(lease), std::move(tokens), on_progress, std::move(cancel));
}
Napi::Promise StartScore(Napi::Env env, Lease lease, std::vector<int32_t> tokens, Napi::Function on_progress,
                         std::shared_ptr<std::atomic<bool>> cancel) {
    return StartJob<ScoreJob>(env, std::move(lease), std::move(tokens), on_progress, std::move(cancel));
}
Napi::Promise StartEval(Napi::Env env, Lease lease, std::vector<int32_t> tokens, size_t rows, int heads) {
    return StartJob<EvalJob>(env, std::move(lease), std::move(tokens), rows, heads);
}
Napi::Promise StartGenerate(Napi::Env env, Lease lease, GenerateRequest request, Napi::Function on_token,
                            std::shared_ptr<std::atomic<bool>> cancel) {
    return StartJob<GenerateJob>(env, std::move(lease), std::move(request), on_token, std::move(cancel));
}

}  // namespace mgl_node
