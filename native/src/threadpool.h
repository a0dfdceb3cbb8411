// A fixed pool of worker threads for data-parallel loops (the calling thread takes part).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace mgl {

class ThreadPool {
public:
    explicit ThreadPool(int n_threads);  // n_threads >= 1 (includes the calling thread)
    ~ThreadPool();
    ThreadPool(const ThreadPool &) = delete;
    ThreadPool &operator=(const ThreadPool &) = delete;

    int size() const { return n_threads_; }
    // Runs fn(task, thread_index) for task in [0, n_tasks), n_tasks < 2^20, spread over the
    // threads in contiguous shares (see Share); blocks until all are done. thread_index is in [0, size()); the calling thread is 0. An exception thrown
    // by fn stops further tasks from starting and is rethrown here. Not reentrant: calling
    // parallel_for on a pool that is already running one (from fn or from another thread) throws
    // mgl::Error(MGL_ERR_INTERNAL).
    void parallel_for(int64_t n_tasks, const std::function<void(int64_t task, int thread)> &fn);

private:
    // Task shares: thread i first runs tasks [i n / T, (i + 1) n / T) of a job, then takes what
    // is left of the others' shares. The same thread thus gets the same part of every product
    // (its weights stay in its core's cache), and a worker that is not scheduled in time holds
    // nobody up. Each share is one word: generation (24 bits), next task and end (20 bits each),
    // so a thread claims a task only of the job it woke up for.
    struct alignas(64) Share {
        std::atomic<uint64_t> word{0};
    };
    void worker(int index);
    void run_tasks(uint64_t generation, int thread);
    // Claims the next task of share i for `generation`; false when the share is used up.
    bool claim(int share, uint64_t generation, int64_t &task);
    void finish_tasks(int64_t count, int64_t n_tasks);
    int n_threads_;
    std::vector<std::thread> threads_;
    std::unique_ptr<Share[]> shares_;  // [n_threads_]
    std::mutex mu_;  // for sleeping on the condition variables and for error_
    std::condition_variable cv_start_, cv_done_;
    // The current job; written by the caller before job_generation_ publishes it.
    const std::function<void(int64_t, int)> *job_ = nullptr;
    int64_t n_tasks_ = 0;
    uint64_t generation_ = 0;  // of the last job; only the caller touches it
    alignas(64) std::atomic<uint64_t> job_generation_{0};  // what the workers wait for
    alignas(64) std::atomic<int64_t> done_{0};  // tasks of the current job finished (or skipped)
    std::atomic<int> sleeping_workers_{0};
    std::atomic<bool> caller_sleeping_{false};
    std::atomic<bool> busy_{false};  // a parallel_for is in progress
    std::atomic<bool> stop_{false};
    std::exception_ptr error_;  // first exception thrown by a task
};

}  // namespace mgl
