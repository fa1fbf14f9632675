// Using troupe as a library: start an Engine, submit many requests at once, stream their
// tokens through callbacks, cancel one, and print what the pipeline did.
//
//   build/examples/concurrent_requests ../shared/models/tinystories-656k [num_requests]
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>

#include "actors/engine.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL [NUM_REQUESTS]\n", argv[0]);
    return 2;
  }
  const int n = argc > 2 ? std::atoi(argv[2]) : 16;

  troupe::EngineConfig cfg;
  cfg.model = argv[1];
  cfg.scheduler.max_num_seqs = 8;  // more requests than slots: continuous batching refills them
  troupe::Engine engine(cfg);

  std::mutex mu;
  std::condition_variable cv;
  std::map<int64_t, std::string> text;
  int finished = 0;
  const char* openings[] = {"Once upon a time", "Tom and his dog", "The sun was shining", "Lily had a red ball"};

  int64_t to_cancel = -1;
  for (int i = 0; i < n; ++i) {
    troupe::GenerateRequest req;
    req.prompt = openings[i % 4];
    req.params.temperature = 0.8f;
    req.params.seed = uint64_t(i);
    req.params.max_tokens = 48 + 8 * (i % 5);
    const int64_t id = engine.submit(req, [&](const troupe::TokenEvent& ev) {
      // Runs on a pipeline thread: only record, never block.
      std::lock_guard lk(mu);
      text[ev.request_id] += ev.text;
      if (ev.finished) {
        text[ev.request_id] += " [" + std::string(to_string(ev.finish_reason)) + ", " + std::to_string(ev.usage.completion_tokens) +
                               " tokens, TTFT " + std::to_string(int(ev.timings.ttft_ms)) + " ms]";
        ++finished;
        cv.notify_all();
      }
    });
    if (i == n - 1) to_cancel = id;
  }
  engine.cancel(to_cancel);

  std::unique_lock lk(mu);
  cv.wait(lk, [&] { return finished == n; });
  for (auto& [id, t] : text) std::printf("#%lld %s\n\n", (long long)id, t.c_str());
  lk.unlock();
  auto st = engine.stats();
  std::printf("steps %lld, generated %lld tokens, finished %lld, cancelled %lld, prefix-cache hit rate %.1f%%\n",
              (long long)st.steps, (long long)st.generated_tokens, (long long)st.finished,
              (long long)st.cancelled, 100 * st.kv.prefix_hit_rate());
  return 0;
}
