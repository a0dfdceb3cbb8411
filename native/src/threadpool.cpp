// Thread pool with persistent workers. Dispatch is meant to be cheap because the model calls it
// several times per layer and per decoded token: a job is published with one atomic store, idle
// workers spin on it for a short while before sleeping on a condition variable, and tasks are
// claimed with one compare-and-swap each, from the thread's own share first. The caller runs tasks too and returns as soon as every
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
    shares_.reset(new Share[static_cast<size_t>(n_threads)]);
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
constexpr int kIndexBits = 20;
constexpr uint64_t kIndexMask = (uint64_t(1) << kIndexBits) - 1;
constexpr int kGenerationShift = 2 * kIndexBits;
constexpr uint64_t kGenerationMask = (uint64_t(1) << (64 - kGenerationShift)) - 1;

// A share's word: generation, next task, end.
inline uint64_t share_word(uint64_t generation, int64_t next, int64_t end) {
    return (generation << kGenerationShift) | (static_cast<uint64_t>(next) << kIndexBits) | static_cast<uint64_t>(end);
}
inline uint64_t word_generation(uint64_t w) { return w >> kGenerationShift; }
inline int64_t word_next(uint64_t w) { return static_cast<int64_t>((w >> kIndexBits) & kIndexMask); }
inline int64_t word_end(uint64_t w) { return static_cast<int64_t>(w & kIndexMask); }
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

bool ThreadPool::claim(int share, uint64_t generation, int64_t &task) {
    std::atomic<uint64_t> &word = shares_[static_cast<size_t>(share)].word;
    uint64_t w = word.load(std::memory_order_acquire);
    for (;;) {
        if (word_generation(w) != generation || word_next(w) >= word_end(w)) return false;
        if (word.compare_exchange_weak(w, w + (uint64_t(1) << kIndexBits), std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
            task = word_next(w);
            return true;
        }
    }
}

void ThreadPool::run_tasks(uint64_t generation, int thread) {
    for (int k = 0; k < n_threads_; ++k) {
        const int share = (thread + k) % n_threads_;
        int64_t task;
        while (claim(share, generation, task)) {
            // A claimed task keeps the job alive, so job_ and n_tasks_ are stable until it is finished.
            const int64_t n_tasks = n_tasks_;
            try {
                (*job_)(task, thread);
            } catch (...) {
                {
                    std::lock_guard<std::mutex> lock(mu_);
                    if (!error_) error_ = std::current_exception();
                }
                // Skip the tasks nobody has claimed yet.
                int64_t skipped = 0;
                for (int i = 0; i < n_threads_; ++i) {
                    std::atomic<uint64_t> &word = shares_[static_cast<size_t>(i)].word;
                    uint64_t w = word.load(std::memory_order_acquire);
                    while (word_generation(w) == generation && word_next(w) < word_end(w) &&
                           !word.compare_exchange_weak(w, share_word(generation, word_end(w), word_end(w)),
                                                       std::memory_order_acq_rel, std::memory_order_acquire)) {
                    }
                    if (word_generation(w) == generation && word_next(w) < word_end(w))
                        skipped += word_end(w) - word_next(w);
                }
                finish_tasks(skipped + 1, n_tasks);
                return;
            }
            finish_tasks(1, n_tasks);
        }
    }
}

void ThreadPool::worker(int index) {
    uint64_t seen = 0;
    auto started = [&] {
        return job_generation_.load(std::memory_order_acquire) != seen || stop_.load(std::memory_order_relaxed);
    };
    for (;;) {
        if (!spin_until(started)) {
            std::unique_lock<std::mutex> lock(mu_);
            sleeping_workers_.fetch_add(1);
            cv_start_.wait(lock, [&] { return job_generation_.load() != seen || stop_.load(); });
            sleeping_workers_.fetch_sub(1);
        }
        if (stop_.load()) return;
        seen = job_generation_.load(std::memory_order_acquire);
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
    if (static_cast<uint64_t>(n_tasks) > kIndexMask)
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
    for (int i = 0; i < n_threads_; ++i)
        shares_[static_cast<size_t>(i)].word.store(
            share_word(generation_, n_tasks * i / n_threads_, n_tasks * (i + 1) / n_threads_), std::memory_order_relaxed);
    // Publishes the job (the release store orders the shares before it). A worker that decided to
    // sleep has registered in sleeping_workers_ before re-checking job_generation_ under mu_;
    // taking mu_ here orders the notify after that.
    job_generation_.store(generation_);
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
