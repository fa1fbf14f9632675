// An observer stage: after every step the scheduler sends each observer a StepObservation
// (batch size, tokens computed, prefill tokens, tokens generated, queue lengths, timings).
// This one writes them to a CSV file, one row per step; the engine runs a small burst of
// requests meanwhile.
//
//   build/examples/step_observer_csv MODEL OUT.csv [NUM_REQUESTS]
// Prints "steps <n>, generated <tokens>" (the engine's own counters) when done.
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "actors/engine.h"

namespace {

struct CsvState {
  std::FILE* f = nullptr;
  ~CsvState() {
    if (f) std::fclose(f);
  }
  static inline const char* name = "step_csv";
};

troupe::observer_actor::behavior_type csv_writer(troupe::observer_actor::stateful_pointer<CsvState> self,
                                                 std::string path) {
  self->state.f = std::fopen(path.c_str(), "w");
  if (!self->state.f) {
    std::perror(path.c_str());
    self->quit();
    return {[](troupe::StepObservation&) {}};
  }
  std::fprintf(self->state.f,
               "step,seqs,tokens,prefill_tokens,outputs,generated,draft_tokens,accepted,waiting,running,"
               "wall_ms,forward_ms,sample_ms\n");
  return {
      [self](troupe::StepObservation& o) {
        std::fprintf(self->state.f, "%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%.3f,%.3f,%.3f\n",
                     (long long)o.step_id, (long long)o.num_seqs, (long long)o.num_tokens,
                     (long long)o.num_prefill_tokens, (long long)o.num_outputs, (long long)o.num_generated,
                     (long long)o.num_draft_tokens, (long long)o.num_accepted, (long long)o.waiting,
                     (long long)o.running, o.wall_ms, o.forward_ms, o.sample_ms);
        std::fflush(self->state.f);
      },
  };
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL OUT.csv [NUM_REQUESTS]\n", argv[0]);
    return 2;
  }
  const int n = argc > 3 ? std::atoi(argv[3]) : 8;
  troupe::EngineConfig cfg;
  cfg.model = argv[1];
  cfg.scheduler.max_num_seqs = 4;
  const std::string path = argv[2];
  troupe::EngineHooks hooks;
  hooks.customize = [path](troupe::PipelineBuilder& b, caf::actor_system& sys) {
    b.observer(sys.spawn(csv_writer, path));
  };
  troupe::Engine engine(cfg, hooks);

  std::mutex mu;
  std::condition_variable cv;
  int finished = 0;
  for (int i = 0; i < n; ++i) {
    troupe::GenerateRequest req;
    req.prompt = "Once upon a time";
    req.params.temperature = 0;
    // Long enough that the first request is still running when the last is submitted,
    // even on a loaded machine, so the batch fills to max_num_seqs.
    req.params.max_tokens = 48 + 4 * i;
    req.params.ignore_eos = true;
    engine.submit(req, [&](const troupe::TokenEvent& ev) {
      if (!ev.finished) return;
      std::lock_guard lk(mu);
      ++finished;
      cv.notify_all();
    });
  }
  {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return finished == n; });
  }
  const auto st = engine.stats();
  engine.stop();  // the observer has written every step once the pipeline has stopped
  std::printf("steps %lld, generated %lld\n", (long long)st.steps, (long long)st.generated_tokens);
  return 0;
}
