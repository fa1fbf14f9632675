#include <atomic>
#include <catch2/catch.hpp>
#include <vector>

#include "cpu/thread_pool.h"

using troupe::cpu::ThreadPool;

namespace {

// Runs parallel_for(n, grain) and checks every index is visited exactly once, chunks are
// grain-aligned, and thread indices are in range and used at most once.
void check_cover(ThreadPool& pool, int64_t n, int64_t grain) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  std::vector<std::atomic<int>> calls(static_cast<size_t>(pool.size()));
  std::atomic<bool> ok{true};
  pool.parallel_for(n, grain, [&](int th, int64_t b, int64_t e) {
    if (th < 0 || th >= pool.size() || b >= e || b < 0 || e > n || b % grain != 0) ok = false;
    if (th >= 0 && th < pool.size()) calls[th]++;
    for (int64_t i = b; i < e; ++i) hits[i]++;
  });
  REQUIRE(ok);
  for (int64_t i = 0; i < n; ++i) REQUIRE(hits[i] == 1);
  for (auto& c : calls) REQUIRE(c <= 1);
}

}  // namespace

TEST_CASE("ThreadPool: size", "[cpu][pool]") {
  ThreadPool one(1), three(3), hw(0);
  CHECK(one.size() == 1);
  CHECK(three.size() == 3);
  CHECK(hw.size() >= 1);
}

TEST_CASE("ThreadPool: parallel_for covers every index once", "[cpu][pool]") {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 3, 4, 7, 64, 1000, 100003})
      for (int64_t grain : {1, 3, 16, 4096}) {
        INFO("threads " << threads << " n " << n << " grain " << grain);
        check_cover(pool, n, grain);
      }
  }
}

TEST_CASE("ThreadPool: size 0 calls nothing, small sizes run inline", "[cpu][pool]") {
  ThreadPool pool(4);
  int calls = 0;
  pool.parallel_for(0, 1, [&](int, int64_t, int64_t) { ++calls; });
  CHECK(calls == 0);
  pool.parallel_for(5, 16, [&](int th, int64_t b, int64_t e) {
    ++calls;
    CHECK(th == 0);
    CHECK(b == 0);
    CHECK(e == 5);
  });
  CHECK(calls == 1);
}

TEST_CASE("ThreadPool: run_on_all runs once per thread", "[cpu][pool]") {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    for (int rep = 0; rep < 100; ++rep) {
      std::vector<std::atomic<int>> seen(threads);
      pool.run_on_all([&](int i) { seen[i]++; });
      for (auto& s : seen) REQUIRE(s == 1);
    }
  }
}

TEST_CASE("ThreadPool: many back-to-back calls", "[cpu][pool]") {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  int64_t expect = 0;
  for (int rep = 0; rep < 20000; ++rep) {
    const int64_t n = rep % 37;
    expect += n * (n - 1) / 2;
    pool.parallel_for(n, 1, [&](int, int64_t b, int64_t e) {
      int64_t s = 0;
      for (int64_t i = b; i < e; ++i) s += i;
      total += s;
    });
  }
  CHECK(total == expect);
}

TEST_CASE("ThreadPool: results visible after return; workers sleep and wake", "[cpu][pool]") {
  ThreadPool pool(2);
  std::vector<int64_t> v(1 << 16, 0);
  for (int rep = 0; rep < 3; ++rep) {
    pool.parallel_for(int64_t(v.size()), 64, [&](int, int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) v[i] += i;
    });
    // Long enough for the workers to stop spinning and block on the condition variable.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (int64_t i = 0; i < int64_t(v.size()); ++i) REQUIRE(v[i] == 3 * i);
}

TEST_CASE("ThreadPool: barriers counts the regions that wake the workers", "[cpu][pool]") {
  ThreadPool pool(2);
  const uint64_t b0 = pool.barriers();
  pool.parallel_for(100, 10, [](int, int64_t, int64_t) {});   // 10 blocks: dispatched
  CHECK(pool.barriers() == b0 + 1);
  pool.parallel_for(100, 100, [](int, int64_t, int64_t) {});  // one block: caller alone
  pool.parallel_for(0, 1, [](int, int64_t, int64_t) {});      // nothing to do
  CHECK(pool.barriers() == b0 + 1);
  pool.run_on_all([](int) {});
  CHECK(pool.barriers() == b0 + 2);
  ThreadPool one(1);
  one.parallel_for(100, 1, [](int, int64_t, int64_t) {});
  one.run_on_all([](int) {});
  CHECK(one.barriers() == 0);
}

// The slow paths of both sides: a caller that waits longer than it spins (~100 us; here a
// chunk or a run_on_all call that sleeps 300-650 us) blocks and must be woken by the worker
// that finishes, and workers idle for longer than they spin block and must be woken by the
// next region, in every order, many times.
TEST_CASE("ThreadPool: a blocked caller and blocked workers are always woken", "[cpu][pool]") {
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    for (int rep = 0; rep < 60; ++rep) {
      std::atomic<int> ran{0};
      const int slow = 1 + rep % (threads - 1);  // the chunk that sleeps
      pool.parallel_for(threads, 1, [&](int, int64_t b, int64_t) {
        if (b == slow) std::this_thread::sleep_for(std::chrono::microseconds(300 + 50 * (rep % 7)));
        ran++;
      });
      REQUIRE(ran == threads);
      std::atomic<int> all{0};
      pool.run_on_all([&](int i) {
        if (i == threads - 1 && rep % 2) std::this_thread::sleep_for(std::chrono::microseconds(400));
        all++;
      });
      REQUIRE(all == threads);
      if (rep % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));  // workers block
    }
  }
}

// A chunk whose worker is asleep (idle longer than it spins) is claimed by the caller a few
// microseconds after its own, not waited for: waking a blocked thread takes longer than
// that, so in some of these regions the caller must have run chunk 1 itself.
TEST_CASE("ThreadPool: the caller runs a chunk its sleeping worker has not claimed", "[cpu][pool]") {
  ThreadPool pool(2);
  const auto caller = std::this_thread::get_id();
  int by_caller = 0;
  for (int rep = 0; rep < 20; ++rep) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // the worker blocks
    std::thread::id ran_by;
    pool.parallel_for(2, 1, [&](int, int64_t b, int64_t) {
      if (b == 1) ran_by = std::this_thread::get_id();
    });
    by_caller += ran_by == caller;
  }
  CHECK(by_caller > 0);
}
