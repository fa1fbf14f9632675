#pragma once
// Drives a troupe::Engine from a test: submits requests, collects their streamed events,
// waits for every final event (with a timeout so a hung pipeline fails instead of hanging).
#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "actors/engine.h"

namespace troupe::test {

struct Outcome {
  std::vector<int32_t> ids;
  std::string text;
  TokenEvent final_event;
  int events = 0;
  bool done = false;
};

class Collector {
 public:
  TokenSink sink() {
    return [this](const TokenEvent& ev) {
      std::lock_guard lk(mu_);
      auto& o = out_[ev.request_id];
      o.events++;
      o.ids.insert(o.ids.end(), ev.token_ids.begin(), ev.token_ids.end());
      o.text += ev.text;
      if (ev.finished) {
        o.final_event = ev;
        o.done = true;
        ++done_;
        cv_.notify_all();
      }
    };
  }
  // Waits until `n` requests have finished (fails the test after `timeout`).
  void wait_done(size_t n, std::chrono::seconds timeout = std::chrono::seconds(600)) {
    std::unique_lock lk(mu_);
    const bool ok = cv_.wait_for(lk, timeout, [&] { return done_ >= n; });
    REQUIRE(ok);
  }
  Outcome get(int64_t id) {
    std::lock_guard lk(mu_);
    return out_[id];
  }
  // Waits until request `id` has at least `n` tokens.
  void wait_tokens(int64_t id, size_t n, std::chrono::seconds timeout = std::chrono::seconds(300)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard lk(mu_);
        if (out_[id].ids.size() >= n || out_[id].done) return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    FAIL("request " << id << " did not reach " << n << " tokens");
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, Outcome> out_;
  size_t done_ = 0;
};

inline GenerateRequest greedy_request(std::vector<int32_t> prompt_ids, int max_tokens) {
  GenerateRequest r;
  r.prompt_ids = std::move(prompt_ids);
  r.params.temperature = 0;
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  return r;
}

// Each request alone on one engine, one after the other: the reference outputs
// tests compare batched or speculative runs with. Every request must run to max_tokens.
inline std::vector<std::vector<int32_t>> run_alone(const EngineConfig& cfg, const std::vector<GenerateRequest>& reqs) {
  Engine engine(cfg);
  Collector col;
  std::vector<std::vector<int32_t>> out;
  for (size_t i = 0; i < reqs.size(); ++i) {
    const int64_t id = engine.submit(reqs[i], col.sink());
    col.wait_done(i + 1);
    auto o = col.get(id);
    REQUIRE(o.final_event.finish_reason == FinishReason::Length);
    out.push_back(o.ids);
  }
  return out;
}

}  // namespace troupe::test
