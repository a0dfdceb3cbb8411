// A fixed pool of worker threads for data-parallel loops (the calling thread takes part).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
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
    // Runs fn(task, thread_index) for task in [0, n_tasks), spread over the threads; blocks until
    // all are done. thread_index is in [0, size()); the calling thread is 0. An exception thrown
    // by fn stops further tasks from starting and is rethrown here. Not reentrant: calling
    // parallel_for on a pool that is already running one (from fn or from another thread) throws
    // mgl::Error(MGL_ERR_INTERNAL).
    void parallel_for(int64_t n_tasks, const std::function<void(int64_t task, int thread)> &fn);

private:
    void worker(int index);
    void run_tasks(uint64_t generation, int thread);
    void finish_tasks(int64_t count, int64_t n_tasks);
    int n_threads_;
    std::vector<std::thread> threads_;
    std::mutex mu_;  // for sleeping on the condition variables and for error_
    std::condition_variable cv_start_, cv_done_;
    // The current job; written by the caller before claim_ publishes it.
    const std::function<void(int64_t, int)> *job_ = nullptr;
    int64_t n_tasks_ = 0;
    uint64_t generation_ = 0;  // of the last job; only the caller touches it
    // Generation (top 24 bits) and number of tasks not yet claimed (low 40 bits): a thread can
    // claim a task only of the generation it woke up for, so a late one never runs a stale job.
    std::atomic<uint64_t> claim_{0};
    std::atomic<int64_t> done_{0};  // tasks of the current job finished (or skipped)
    std::atomic<int> sleeping_workers_{0};
    std::atomic<bool> caller_sleeping_{false};
    std::atomic<bool> busy_{false};  // a parallel_for is in progress
    std::atomic<bool> stop_{false};
    std::exception_ptr error_;  // first exception thrown by a task
};

}  // namespace mgl
