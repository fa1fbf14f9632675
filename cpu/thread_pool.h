#pragma once
// One persistent pool of compute threads per backend: workers are created once and woken
// for each parallel region (no per-op thread creation). The calling thread takes part as
// worker 0, so a pool of N uses N threads in total.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace troupe::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);  // <= 0: hardware concurrency
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return num_threads_; }
  // Calls fn(thread_index, begin, end) over a static split of [0, n) into size() chunks
  // (aligned to `grain`), and returns when all are done. Not re-entrant.
  // thread_index is the chunk's index: each index is used by exactly one call, so it can
  // select per-thread scratch, but a chunk whose worker has not woken up yet (machine
  // busy) is run by whichever pool thread is free first, possibly the caller.
  void parallel_for(int64_t n, int64_t grain,
                    const std::function<void(int, int64_t, int64_t)>& fn);
  // Runs fn(thread_index) once on every thread.
  void run_on_all(const std::function<void(int)>& fn);
  // Parallel regions so far that woke the workers and waited for them (a parallel_for of
  // more than one chunk, or a run_on_all): each is one barrier. A decode step's count is
  // the difference across it; regions that ran on the caller alone are not counted.
  uint64_t barriers() const { return barriers_.load(std::memory_order_relaxed); }

 private:
  void worker_loop(int index);
  uint32_t start_job(const std::function<void(int)>& fn, int chunks, bool all_threads);
  bool run_one_chunk(uint32_t generation);
  void wait_done();
  int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  const std::function<void(int)>* job_ = nullptr;
  // (generation << 32) | (all-threads job << 31) | (chunks << 16) | next chunk to claim.
  // One word, so a late worker can claim a chunk only of the job it woke up for.
  std::atomic<uint64_t> state_{0};
  std::atomic<int> pending_{0};  // chunks (or threads) of the current job not yet done
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> barriers_{0};
};

}  // namespace troupe::cpu
