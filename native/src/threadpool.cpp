// Thread pool with persistent workers. Dispatch is meant to be cheap because the model calls it
// several times per layer and per decoded token: a job is published with one atomic store, idle
// workers spin on it for a short while before sleeping on a condition variable, and tasks are
// claimed with one compare-and-swap each. The caller runs tasks too and returns as soon as every
// task is finished, without waiting for workers that were not scheduled in time (the machine may
// be busy with other processes).
#include "threadpool.h"

#include <chrono>
#include <string>
#include <system_error>

#include "common.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#endif

namespace mgl {

namespace {

// How long an idle thread polls before it sleeps. Long enough to bridge the serial work between
// two matrix products of a layer, short enough not to burn a core when the model is idle.
constexpr std::chrono::microseconds kSpinTime{200};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
    _mm_pause();
#else
    std::this_thread::yield();
#endif
}

// Polls done() until it returns true or kSpinTime has passed; returns the last result.
template <class Pred> bool spin_until(Pred done) {
    auto start = std::chrono::steady_clock::now();
    for (;;) {
        for (int i = 0; i < 64; ++i) {
            if (done()) return true;
            cpu_relax();
        }
        if (std::chrono::steady_clock::now() - start > kSpinTime) return done();
    }
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads) {
    if (n_threads < 1)
        fail(MGL_ERR_INVALID_ARG, "ThreadPool: thread count must be >= 1, got " + std::to_string(n_threads));
    threads_.reserve(static_cast<size_t>(n_threads - 1));
    try {
        for (int i = 1; i < n_threads; ++i) threads_.emplace_back(&ThreadPool::worker, this, i);
    } catch (const std::system_error &e) {
        stop_.store(true);
        { std::lock_guard<std::mutex> lock(mu_); }
        cv_start_.notify_all();
        for (std::thread &t : threads_) t.join();
        fail(MGL_ERR_INTERNAL, std::string("ThreadPool: cannot start a worker thread: ") + e.what());
    }
}

ThreadPool::~ThreadPool() {
    stop_.store(true);
    { std::lock_guard<std::mutex> lock(mu_); }
    cv_start_.notify_all();
    for (std::thread &t : threads_) t.join();
}

namespace {
constexpr int kCountBits = 40;
constexpr uint64_t kCountMask = (uint64_t(1) << kCountBits) - 1;
constexpr uint64_t kGenerationMask = (uint64_t(1) << (64 - kCountBits)) - 1;
}  // namespace

// Marks `count` tasks as finished; whoever completes the job wakes a sleeping caller. The
// seq_cst pair (done_ here, caller_sleeping_ in parallel_for) guarantees that one side sees the
// other, so the caller never waits for a wake-up that was already sent.
void ThreadPool::finish_tasks(int64_t count, int64_t n_tasks) {
    if (done_.fetch_add(count) + count == n_tasks && caller_sleeping_.load()) {
        { std::lock_guard<std::mutex> lock(mu_); }
        cv_done_.notify_one();
    }
}

void ThreadPool::run_tasks(uint64_t generation, int thread) {
    uint64_t state = claim_.load(std::memory_order_acquire);
    for (;;) {
        if ((state >> kCountBits) != generation || (state & kCountMask) == 0) return;
        if (!claim_.compare_exchange_weak(state, state - 1, std::memory_order_acq_rel, std::memory_order_acquire))
            continue;
        // A claimed task keeps the job alive, so job_ and n_tasks_ are stable until it is finished.
        const int64_t n_tasks = n_tasks_;
        const int64_t task = n_tasks - static_cast<int64_t>(state & kCountMask);
        try {
            (*job_)(task, thread);
        } catch (...) {
            {
                std::lock_guard<std::mutex> lock(mu_);
                if (!error_) error_ = std::current_exception();
            }
            // Skip the tasks nobody has claimed yet.
            uint64_t rest = claim_.load(std::memory_order_acquire);
            while ((rest >> kCountBits) == generation && (rest & kCountMask) != 0 &&
                   !claim_.compare_exchange_weak(rest, rest & ~kCountMask, std::memory_order_acq_rel)) {
            }
            const int64_t skipped = (rest >> kCountBits) == generation ? static_cast<int64_t>(rest & kCountMask) : 0;
            finish_tasks(skipped + 1, n_tasks);
            return;
        }
        finish_tasks(1, n_tasks);
        state = claim_.load(std::memory_order_acquire);
    }
}

void ThreadPool::worker(int index) {
    uint64_t seen = 0;
    auto started = [&] {
        return (claim_.load(std::memory_order_acquire) >> kCountBits) != seen || stop_.load(std::memory_order_relaxed);
    };
    for (;;) {
        if (!spin_until(started)) {
            std::unique_lock<std::mutex> lock(mu_);
            sleeping_workers_.fetch_add(1);
            cv_start_.wait(lock, [&] { return (claim_.load() >> kCountBits) != seen || stop_.load(); });
            sleeping_workers_.fetch_sub(1);
        }
        if (stop_.load()) return;
        seen = claim_.load(std::memory_order_acquire) >> kCountBits;
        run_tasks(seen, index);
    }
}

void ThreadPool::parallel_for(int64_t n_tasks, const std::function<void(int64_t task, int thread)> &fn) {
    if (busy_.exchange(true, std::memory_order_acquire))
        fail(MGL_ERR_INTERNAL, "ThreadPool::parallel_for: the pool is already running a parallel_for "
                               "(nested or concurrent use)");
    struct Release {
        std::atomic<bool> &flag;
        ~Release() { flag.store(false, std::memory_order_release); }
    } release{busy_};

    if (n_tasks <= 0) return;
    if (static_cast<uint64_t>(n_tasks) > kCountMask)
        fail(MGL_ERR_INVALID_ARG, "ThreadPool::parallel_for: too many tasks (" + std::to_string(n_tasks) + ")");
    if (n_threads_ == 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
        return;
    }

    job_ = &fn;
    n_tasks_ = n_tasks;
    error_ = nullptr;
    done_.store(0, std::memory_order_relaxed);
    generation_ = (generation_ + 1) & kGenerationMask;
    if (generation_ == 0) generation_ = 1;  // 0 is what the workers start out having seen
    // Publishes the job. A worker that decided to sleep has registered in sleeping_workers_
    // before re-checking claim_ under mu_; taking mu_ here orders the notify after that.
    claim_.store((generation_ << kCountBits) | static_cast<uint64_t>(n_tasks));
    if (sleeping_workers_.load() > 0) {
        { std::lock_guard<std::mutex> lock(mu_); }
        cv_start_.notify_all();
    }

    run_tasks(generation_, 0);

    // Only tasks that were claimed are waited for: a worker that has not woken up yet is not.
    auto all_done = [&] { return done_.load(std::memory_order_acquire) == n_tasks; };
    if (!spin_until(all_done)) {
        std::unique_lock<std::mutex> lock(mu_);
        caller_sleeping_.store(true);
        cv_done_.wait(lock, [&] { return done_.load() == n_tasks; });
        caller_sleeping_.store(false);
    }
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
}

}  // namespace mgl
