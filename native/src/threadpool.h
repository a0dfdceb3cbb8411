// A fixed pool of worker threads for data-parallel loops (the calling thread takes part).
#pragma once

#include <condition_variable>
#include <cstdint>
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
    // all are done. Not reentrant: fn must not call parallel_for on the same pool.
    void parallel_for(int64_t n_tasks, const std::function<void(int64_t task, int thread)> &fn);

private:
    void worker(int index);
    int n_threads_;
    std::vector<std::thread> threads_;
    std::mutex mu_;
    std::condition_variable cv_start_, cv_done_;
    const std::function<void(int64_t, int)> *job_ = nullptr;
    int64_t n_tasks_ = 0;
    int64_t next_task_ = 0;  // guarded by mu_ (claimed in small batches)
    int active_ = 0;
    uint64_t generation_ = 0;
    bool stop_ = false;
};

}  // namespace mgl
