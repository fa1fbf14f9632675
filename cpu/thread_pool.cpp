// Persistent compute pool. Decode calls parallel_for ~10x per layer on regions that take
// tens of microseconds, so waking the workers must cost a few microseconds, not the
// ~50-100 us of a futex round trip through the scheduler on a busy machine. Hence a hybrid:
// after finishing a job a worker spins (with pause) for a short while watching the
// generation counter, and only then blocks on the condition variable. The caller likewise
// spins briefly for the workers to finish before blocking. Spinning is time-bounded so an
// idle pool does not burn cores.
//
// generation_ and pending_ are plain integers in the header (to keep it free of <atomic>
// details); every access here goes through std::atomic_ref so the lock-free fast paths
// are race-free. Writes that a sleeping thread must observe are made under mu_ before the
// notify, so no wake-up can be lost.
#include "cpu/thread_pool.h"

#include <atomic>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TROUPE_CPU_RELAX() _mm_pause()
#else
#define TROUPE_CPU_RELAX() ((void)0)
#endif

namespace troupe::cpu {
namespace {

// How long a thread spins before blocking. Long enough to bridge the gap between two
// parallel regions of one decode step (a few elementwise ops on the caller), short enough
// that a pool left idle yields the CPU almost at once.
constexpr auto kSpinFor = std::chrono::microseconds(100);
// After this long, each spin round also yields: when threads outnumber free cores (other
// processes, or a pool larger than the machine) the thread we wait for may be queued
// behind us, and pure spinning would hold it off for a whole scheduler tick (~ms).
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
  num_threads_ = num_threads < 1 ? 1 : num_threads;
  workers_.reserve(num_threads_ - 1);
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    std::atomic_ref<uint64_t>(generation_).fetch_add(1, std::memory_order_release);
  }
  cv_start_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int index) {
  std::atomic_ref<uint64_t> gen(generation_);
  std::atomic_ref<int> pending(pending_);
  uint64_t seen = 0;  // the pool starts at generation 0 with no job
  for (;;) {
    if (!spin_until([&] { return gen.load(std::memory_order_acquire) != seen; })) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_start_.wait(lock, [&] { return gen.load(std::memory_order_acquire) != seen; });
    }
    // The acquire load above pairs with the release increment in run_on_all, so job_ and
    // stop_ written before it are visible here.
    seen = gen.load(std::memory_order_acquire);
    if (stop_) return;
    (*job_)(index);
    if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // Last one out: wake the caller if it gave up spinning. Taking the lock orders this
      // notify after the caller's predicate check, so the wake-up cannot be missed.
      std::lock_guard<std::mutex> lock(mu_);
      cv_done_.notify_one();
    }
  }
}

void ThreadPool::run_on_all(const std::function<void(int)>& fn) {
  if (num_threads_ == 1) {
    fn(0);
    return;
  }
  std::atomic_ref<uint64_t> gen(generation_);
  std::atomic_ref<int> pending(pending_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    pending.store(num_threads_ - 1, std::memory_order_relaxed);
    gen.fetch_add(1, std::memory_order_release);
  }
  // glibc's notify is a few atomics when nobody waits, so always notifying costs nothing
  // while workers are still spinning.
  cv_start_.notify_all();
  fn(0);
  auto done = [&] { return pending.load(std::memory_order_acquire) == 0; };
  if (!spin_until(done)) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_done_.wait(lock, done);
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int, int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  const int64_t blocks = (n + grain - 1) / grain;
  const int64_t nt = num_threads_;
  // Too little work to split: run it on the caller without waking anyone.
  if (blocks == 1 || nt == 1) {
    fn(0, 0, n);
    return;
  }
  // Thread i takes blocks [i*blocks/nt, (i+1)*blocks/nt): sizes differ by at most one block.
  run_on_all([&](int i) {
    const int64_t b0 = blocks * i / nt, b1 = blocks * (i + 1) / nt;
    const int64_t begin = b0 * grain, end = b1 * grain < n ? b1 * grain : n;
    if (begin < end) fn(i, begin, end);
  });
}

}  // namespace troupe::cpu
