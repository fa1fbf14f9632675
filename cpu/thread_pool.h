#pragma once
// One persistent pool of compute threads per backend: workers are created once and woken
// for each parallel region (no per-op thread creation). The calling thread takes part as
// worker 0, so a pool of N uses N threads in total.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
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
  // select per-thread scratch. Chunk c is pool thread c's (the caller is 0), but one whose
  // worker has not claimed it within a few microseconds (machine busy) is run by the caller.
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
  // Publishes the job whose fields (all_fn_, or range_fn_ and its split) the caller set.
  uint64_t start_job(int chunks, bool all_threads);
  // Runs chunk c of the current parallel_for.
  void run_chunk(int c) const;
  // Takes chunk c of job `generation` for the calling thread; false if someone has.
  bool claim(int c, uint64_t generation);
  // A worker finished its chunk (or its run_on_all call): count it, wake a blocked caller.
  void worker_done();
  // The caller waits until the workers have finished `runs` more chunks or calls.
  void wait_for_workers(uint64_t runs);
  // parallel_for's wait for chunks 1..chunks-1 of job `generation`: those still unclaimed
  // after kClaimAfter the caller runs itself.
  void finish_chunks(uint64_t generation, int chunks);

  // Groups of fields, each on cache lines of its own: at a parallel region's start and end
  // each line that changes hands costs a transfer between cores (~0.2 us at the far
  // placement of the host measured, docs/benchmarks.md session 32). What the workers spin
  // on (the job), what each worker owns (its claim), what they count (done_), and what only
  // the caller or a sleeping thread touches.
  //
  // The job: (generation << 16) | (all-threads job << 15) | chunks. One word, so a worker
  // learns the chunk count of the very job it claims in. Beside it on the same line, read
  // with it in one transfer, the job's function and split: a worker follows one pointer
  // from here to the caller's function (until session 32 it went through a wrapper on the
  // caller's stack, two more lines to fetch from the caller's core before any work).
  alignas(64) std::atomic<uint64_t> state_{0};
  const std::function<void(int)>* all_fn_ = nullptr;                     // run_on_all
  const std::function<void(int, int64_t, int64_t)>* range_fn_ = nullptr;  // parallel_for
  int64_t range_n_ = 0, range_grain_ = 0, range_blocks_ = 0;
  int range_chunks_ = 0;
  std::atomic<bool> stop_{false};
  // claims_[c]: the last generation whose chunk c was taken, by worker c (a compare-exchange
  // on a line it keeps in its cache) or by the caller for a late worker. Until session 32
  // the chunks were claimed from the job word, which its write made the caller's: every
  // worker's claim moved it, and the caller's next look at it moved it back.
  struct alignas(64) Claim {
    std::atomic<uint64_t> generation{0};
  };
  std::unique_ptr<Claim[]> claims_;
  // Chunks and run_on_all calls that workers have finished, ever: the caller, which knows how
  // many it ran itself, waits for the count to reach its target. Only workers write it.
  alignas(64) std::atomic<uint64_t> done_{0};
  // Set by a caller that stops spinning and blocks on cv_done_ (see worker_done).
  std::atomic<bool> caller_blocked_{false};
  // The caller's: the workers' count it has waited for so far, and the regions (barriers).
  alignas(64) uint64_t done_seen_ = 0;
  std::atomic<uint64_t> barriers_{0};
  // Workers blocked (or about to block) on cv_start_: only then does a start notify.
  std::atomic<int> sleepers_{0};
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  int num_threads_;
  std::vector<std::thread> workers_;
};

}  // namespace troupe::cpu
