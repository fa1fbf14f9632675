// Persistent compute pool. Decode calls parallel_for ~10x per layer on regions that take
// tens of microseconds, so starting one must cost a few microseconds at most, and must not
// stall when the machine is busy.
//
// Waking: after a job a worker spins (pause, then pause + yield) for ~100 us watching the
// job word, and only then blocks on the condition variable, so back-to-back regions of
// one decode step find the workers awake (sub-microsecond dispatch) while an idle pool
// stops burning CPU almost at once.
//
// Busy machines: if a worker has been preempted (other processes, more threads than
// cores) waiting for it would cost a scheduler tick. So parallel_for chunks are claimed,
// not assigned: every pool thread, the caller included, claims unclaimed chunks from the
// job word until none are left, and the caller only waits for chunks already running. A
// worker that wakes up late finds nothing to claim and never touches the job.
//
// The job word packs (generation, all-threads flag, chunk count, next chunk) so claiming
// is one CAS that fails if the job has changed under a late worker.
#include "cpu/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TROUPE_CPU_RELAX() _mm_pause()
#else
#define TROUPE_CPU_RELAX() ((void)0)
#endif

namespace troupe::cpu {
namespace {

constexpr uint64_t kAllThreads = uint64_t(1) << 31;
constexpr int kMaxThreads = 0x7fff;  // chunk count and index are 15/16-bit fields

uint32_t gen_of(uint64_t s) { return static_cast<uint32_t>(s >> 32); }
int chunks_of(uint64_t s) { return static_cast<int>((s >> 16) & 0x7fff); }
int next_of(uint64_t s) { return static_cast<int>(s & 0xffff); }

// How long a thread spins before blocking: long enough to bridge the gap between two
// parallel regions of one decode step (a few elementwise ops on the caller).
constexpr auto kSpinFor = std::chrono::microseconds(100);
// After this long each spin round also yields: if the thread we wait for is queued behind
// us on a busy core, pure spinning would hold it off for a whole scheduler tick.
constexpr auto kPureSpinFor = std::chrono::microseconds(5);

// Spins until pred() holds or the spin budget is used up; returns pred().
template <typename Pred>
bool spin_until(Pred pred) {
  if (pred()) return true;
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    // Check the clock only every 64 iterations: now() costs ~20 ns, pause ~10-40 ns.
    for (int i = 0; i < 64; ++i) {
      TROUPE_CPU_RELAX();
      if (pred()) return true;
    }
    const auto spun = std::chrono::steady_clock::now() - start;
    if (spun >= kSpinFor) return pred();
    if (spun >= kPureSpinFor) std::this_thread::yield();
  }
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::thread::hardware_concurrency());
  num_threads_ = std::clamp(num_threads, 1, kMaxThreads);
  workers_.reserve(num_threads_ - 1);
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_relaxed);
    const uint64_t gen = gen_of(state_.load(std::memory_order_relaxed)) + 1;
    state_.store(gen << 32, std::memory_order_release);  // a job of no chunks
  }
  cv_start_.notify_all();
  for (auto& t : workers_) t.join();
}

uint32_t ThreadPool::start_job(const std::function<void(int)>& fn, int chunks, bool all_threads) {
  uint32_t gen;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    pending_.store(all_threads ? num_threads_ - 1 : chunks, std::memory_order_relaxed);
    gen = gen_of(state_.load(std::memory_order_relaxed)) + 1;
    // Release: job_ and pending_ are visible to whoever observes the new generation.
    state_.store(uint64_t(gen) << 32 | (all_threads ? kAllThreads : 0) | uint64_t(chunks) << 16,
                 std::memory_order_release);
  }
  // glibc's notify is a few atomics when nobody waits, so notifying while the workers are
  // still spinning costs nothing.
  cv_start_.notify_all();
  return gen;
}

// Claims the next chunk of job `generation` and runs it; false if there is none.
bool ThreadPool::run_one_chunk(uint32_t generation) {
  uint64_t s = state_.load(std::memory_order_acquire);
  do {
    if (gen_of(s) != generation || (s & kAllThreads) || next_of(s) >= chunks_of(s)) return false;
  } while (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel,
                                         std::memory_order_acquire));
  // The job cannot finish (nor job_ change) before this chunk is done.
  (*job_)(next_of(s));
  if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    // Last chunk done: wake the caller if it gave up spinning. Taking the lock orders this
    // notify after the caller's predicate check, so the wake-up cannot be missed.
    std::lock_guard<std::mutex> lock(mu_);
    cv_done_.notify_one();
  }
  return true;
}

void ThreadPool::wait_done() {
  auto done = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(done)) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_done_.wait(lock, done);
  }
}

void ThreadPool::worker_loop(int index) {
  uint32_t seen = 0;  // the pool starts at generation 0 with no job
  auto changed = [&] { return gen_of(state_.load(std::memory_order_acquire)) != seen; };
  for (;;) {
    if (!spin_until(changed)) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_start_.wait(lock, changed);
    }
    const uint64_t s = state_.load(std::memory_order_acquire);
    seen = gen_of(s);
    if (stop_.load(std::memory_order_relaxed)) return;
    if (s & kAllThreads) {
      // run_on_all: the caller waits for every worker, so the job is still current.
      (*job_)(index);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mu_);
        cv_done_.notify_one();
      }
    } else {
      while (run_one_chunk(seen)) {
      }
    }
  }
}

void ThreadPool::run_on_all(const std::function<void(int)>& fn) {
  if (num_threads_ == 1) {
    fn(0);
    return;
  }
  barriers_.fetch_add(1, std::memory_order_relaxed);
  start_job(fn, 0, true);
  fn(0);
  wait_done();
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int, int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  const int64_t blocks = (n + grain - 1) / grain;
  // Too little work to split: run it on the caller without waking anyone.
  if (blocks == 1 || num_threads_ == 1) {
    fn(0, 0, n);
    return;
  }
  // Chunk c takes blocks [c*blocks/nc, (c+1)*blocks/nc): sizes differ by at most one
  // block, and none is empty.
  const int64_t nc = std::min<int64_t>(num_threads_, blocks);
  const std::function<void(int)> chunk = [&](int c) {
    const int64_t b0 = blocks * c / nc, b1 = blocks * (c + 1) / nc;
    fn(c, b0 * grain, std::min(n, b1 * grain));
  };
  barriers_.fetch_add(1, std::memory_order_relaxed);
  const uint32_t gen = start_job(chunk, static_cast<int>(nc), false);
  while (run_one_chunk(gen)) {
  }
  wait_done();
}

}  // namespace troupe::cpu
