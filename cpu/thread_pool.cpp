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
// cores) waiting for it would cost a scheduler tick. So a parallel_for chunk is claimed,
// not just assigned: chunk c is worker c's, but a worker claims it (a compare-exchange on
// its own line, claims_) before running it, and a chunk still unclaimed kClaimAfter after
// the caller finished its own is claimed and run by the caller. A worker that wakes up late
// finds its chunk taken and never touches the job.
//
// What a region costs is mostly cache lines moving between the cores: the job word to the
// workers, and their "done" back. At the far placement of sessions 28-32's host a line
// takes ~0.2 us each way, and a decode token crosses ~61 regions. So the fast path takes no
// lock, and writes no line that another thread is watching except the job word (the
// caller) and the done count (the workers; monotonic, the caller knows how many chunks it
// ran itself). The mutex and condition variables are touched only by a thread that blocks,
// and by the one that would wake it, which sees that it did (sleepers_, caller_blocked_).
// Until session 32 every region locked the mutex and notified, every thread claimed from
// and counted down on the job word's line, and the last chunk's finisher took the mutex: a
// region with 10 us of work a thread cost 1.08-1.26 us over those 10 us at the far placement
// (parallel_for; run_on_all 0.85-1.03) and 0.27-0.38 at the near one, now 0.63-0.69 and
// 0.17-0.22 (`test_cpu "[.pool-bench]"`; batch-1 decode of 110M Q4_0 at the fast level
// +4%, docs/benchmarks.md, session 32).
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

constexpr uint64_t kAllThreads = uint64_t(1) << 15;
constexpr int kMaxThreads = 0x7fff;  // the chunk count is a 15-bit field

uint64_t gen_of(uint64_t s) { return s >> 16; }
int chunks_of(uint64_t s) { return static_cast<int>(s & 0x7fff); }

// How long a thread spins before blocking: long enough to bridge the gap between two
// parallel regions of one decode step (a few elementwise ops on the caller).
constexpr auto kSpinFor = std::chrono::microseconds(100);
// After this long each spin round also yields: if the thread we wait for is queued behind
// us on a busy core, pure spinning would hold it off for a whole scheduler tick.
constexpr auto kPureSpinFor = std::chrono::microseconds(5);
// How long the caller, done with its own chunk, waits before it claims the chunks that
// workers have not: a worker that spins claims within a microsecond of the job's start, so
// this only ever catches one that sleeps or was preempted (and costs a region at most this
// much). The caller does not look sooner because looking moves the worker's claim line.
constexpr auto kClaimAfter = std::chrono::microseconds(3);

// Spins until pred() holds or `budget` is used up; returns pred().
template <typename Pred>
bool spin_until(Pred pred, std::chrono::microseconds budget = kSpinFor) {
  if (pred()) return true;
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    // Check the clock only every 64 iterations: now() costs ~20 ns, pause ~10-40 ns.
    for (int i = 0; i < 64; ++i) {
      TROUPE_CPU_RELAX();
      if (pred()) return true;
    }
    const auto spun = std::chrono::steady_clock::now() - start;
    if (spun >= budget) return pred();
    if (spun >= kPureSpinFor) std::this_thread::yield();
  }
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::thread::hardware_concurrency());
  num_threads_ = std::clamp(num_threads, 1, kMaxThreads);
  claims_ = std::make_unique<Claim[]>(static_cast<size_t>(num_threads_));
  workers_.reserve(num_threads_ - 1);
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_relaxed);
    const uint64_t gen = gen_of(state_.load(std::memory_order_relaxed)) + 1;
    state_.store(gen << 16, std::memory_order_seq_cst);  // a job of no chunks
  }
  cv_start_.notify_all();
  for (auto& t : workers_) t.join();
}

uint64_t ThreadPool::start_job(int chunks, bool all_threads) {
  // 48 bits of generation: at a region a microsecond, they last nine years.
  const uint64_t gen = gen_of(state_.load(std::memory_order_relaxed)) + 1;
  // Publishes the job's fields with the new generation. seq_cst, and sleepers_ read after
  // it: a worker that blocks increments sleepers_ before it checks state_ (both under mu_),
  // so either it sees this job or this sees it and notifies, after taking mu_, which it holds
  // until it waits. Workers that still spin (the usual case within a decode step) cost no
  // lock and no notify.
  state_.store(gen << 16 | (all_threads ? kAllThreads : 0) | uint64_t(chunks),
               std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    { std::lock_guard<std::mutex> lock(mu_); }
    cv_start_.notify_all();
  }
  return gen;
}

bool ThreadPool::claim(int c, uint64_t generation) {
  std::atomic<uint64_t>& g = claims_[static_cast<size_t>(c)].generation;
  uint64_t seen = g.load(std::memory_order_relaxed);
  // Generations only grow, so a claim for this one is final: neither side retries then.
  while (seen < generation)
    if (g.compare_exchange_weak(seen, generation, std::memory_order_acq_rel, std::memory_order_relaxed))
      return true;
  return false;
}

void ThreadPool::run_chunk(int c) const {
  // Chunk c takes blocks [c*blocks/nc, (c+1)*blocks/nc): sizes differ by at most one
  // block, and none is empty.
  const int64_t b0 = range_blocks_ * c / range_chunks_, b1 = range_blocks_ * (c + 1) / range_chunks_;
  (*range_fn_)(c, b0 * range_grain_, std::min(range_n_, b1 * range_grain_));
}

void ThreadPool::worker_done() {
  // seq_cst, then caller_blocked_: the caller sets caller_blocked_ before it checks done_
  // (under mu_), so either it sees this count or this sees it blocked and notifies, under
  // mu_, which the caller holds from its check until it waits.
  done_.fetch_add(1, std::memory_order_seq_cst);
  if (caller_blocked_.load(std::memory_order_seq_cst)) {
    std::lock_guard<std::mutex> lock(mu_);
    cv_done_.notify_one();
  }
}

void ThreadPool::wait_for_workers(uint64_t runs) {
  const uint64_t target = done_seen_ + runs;
  done_seen_ = target;
  auto done = [&] { return done_.load(std::memory_order_acquire) >= target; };
  if (spin_until(done)) return;
  std::unique_lock<std::mutex> lock(mu_);
  caller_blocked_.store(true, std::memory_order_seq_cst);
  cv_done_.wait(lock, [&] { return done_.load(std::memory_order_seq_cst) >= target; });
  caller_blocked_.store(false, std::memory_order_relaxed);
}

void ThreadPool::finish_chunks(uint64_t generation, int chunks) {
  // First the workers' own time to claim: most regions end here, with no look at a claim.
  const uint64_t all = done_seen_ + uint64_t(chunks - 1);
  if (spin_until([&] { return done_.load(std::memory_order_acquire) >= all; }, kClaimAfter)) {
    done_seen_ = all;
    return;
  }
  // Then the chunks no worker has claimed, on this thread; the others it waits for.
  int mine = 0;
  for (int c = 1; c < chunks; ++c)
    if (claim(c, generation)) {
      run_chunk(c);
      ++mine;
    }
  wait_for_workers(uint64_t(chunks - 1 - mine));
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;  // the pool starts at generation 0 with no job
  auto changed = [&] { return gen_of(state_.load(std::memory_order_seq_cst)) != seen; };
  for (;;) {
    if (!spin_until(changed)) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1, std::memory_order_seq_cst);  // before the check: see start_job
      cv_start_.wait(lock, changed);
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
    }
    const uint64_t s = state_.load(std::memory_order_acquire);
    seen = gen_of(s);
    if (stop_.load(std::memory_order_relaxed)) return;
    if (s & kAllThreads) {
      // run_on_all: the caller waits for every worker, so the job is still current.
      (*all_fn_)(index);
      worker_done();
    } else if (index < chunks_of(s) && claim(index, seen)) {
      // The job cannot finish (nor its fields change) before this chunk is done.
      run_chunk(index);
      worker_done();
    }
  }
}

void ThreadPool::run_on_all(const std::function<void(int)>& fn) {
  if (num_threads_ == 1) {
    fn(0);
    return;
  }
  // Only the caller writes barriers_: a load and a store, not a locked read-modify-write.
  barriers_.store(barriers_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  all_fn_ = &fn;
  start_job(0, true);
  fn(0);
  wait_for_workers(static_cast<uint64_t>(num_threads_ - 1));
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
  const int64_t nc = std::min<int64_t>(num_threads_, blocks);
  range_fn_ = &fn;
  range_n_ = n;
  range_grain_ = grain;
  range_blocks_ = blocks;
  range_chunks_ = static_cast<int>(nc);
  barriers_.store(barriers_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  const uint64_t gen = start_job(static_cast<int>(nc), false);
  run_chunk(0);  // chunk 0 is the caller's: no one else claims it
  finish_chunks(gen, static_cast<int>(nc));
}

}  // namespace troupe::cpu
