// A custom proposer plugged into the drafter stage. "Echo" drafting guesses that the text
// continues the way it did after the last earlier occurrence of the current token (a
// one-token lookback; troupe's own n-gram proposer matches longer suffixes). Speculation
// is lossless, so the output must equal plain greedy decoding; the program prints both
// and how many drafts the target accepted.
//
//   build/examples/custom_proposer MODEL [PROMPT]
// Prints one JSON object: {"tokens": [...], "plain": [...], "drafted": N, "accepted": M}
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "actors/engine.h"
#include "spec/proposer.h"

namespace {

class EchoProposer : public troupe::spec::Proposer {
 public:
  std::string name() const override { return "echo"; }
  void propose(std::span<const troupe::spec::ProposeRequest> reqs, std::vector<troupe::spec::Proposal>& out,
               troupe::spec::ProposeStats& stats) override {
    (void)stats;
    out.assign(reqs.size(), {});
    for (size_t i = 0; i < reqs.size(); ++i) {
      const auto& t = reqs[i].tokens;
      if (t.size() < 2) continue;
      // The latest earlier position holding the last token: copy what followed it.
      for (size_t j = t.size() - 1; j-- > 0;) {
        if (t[j] != t.back()) continue;
        for (size_t k = j + 1; k < t.size() - 1 && int32_t(out[i].tokens.size()) < reqs[i].k; ++k)
          out[i].tokens.push_back(t[k]);
        break;
      }
    }
  }
};

struct Result {
  std::vector<int32_t> tokens;
  troupe::Usage usage;
};

Result run(troupe::Engine& engine, const std::string& prompt) {
  troupe::GenerateRequest req;
  req.prompt = prompt;
  req.params.temperature = 0;
  req.params.max_tokens = 64;
  req.params.ignore_eos = true;
  std::mutex mu;
  std::condition_variable cv;
  Result r;
  bool done = false;
  engine.submit(req, [&](const troupe::TokenEvent& ev) {
    std::lock_guard lk(mu);
    r.tokens.insert(r.tokens.end(), ev.token_ids.begin(), ev.token_ids.end());
    if (ev.finished) {
      r.usage = ev.usage;
      done = true;
      cv.notify_all();
    }
  });
  std::unique_lock lk(mu);
  cv.wait(lk, [&] { return done; });
  return r;
}

std::string json_ids(const std::vector<int32_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) s += ',';
    s += std::to_string(v[i]);
  }
  return s + "]";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL [PROMPT]\n", argv[0]);
    return 2;
  }
  const std::string prompt = argc > 2 ? argv[2] : "Tom had a red ball. Tom had a red ball. Tom had a";
  troupe::EngineConfig cfg;
  cfg.model = argv[1];

  troupe::Engine plain(cfg);
  const Result reference = run(plain, prompt);
  plain.stop();

  troupe::EngineHooks hooks;
  hooks.customize = [](troupe::PipelineBuilder& b, caf::actor_system&) {
    troupe::SpecSchedule schedule;
    schedule.controller.num_speculative_tokens = 4;
    schedule.controller.adaptive = false;  // draft every step (the controller would learn when it pays)
    b.speculation(std::make_shared<EchoProposer>(), schedule);
  };
  troupe::Engine engine(cfg, hooks);
  const Result r = run(engine, prompt);
  std::printf("{\"tokens\": %s, \"plain\": %s, \"drafted\": %lld, \"accepted\": %lld}\n", json_ids(r.tokens).c_str(),
              json_ids(reference.tokens).c_str(), (long long)r.usage.spec_num_draft_tokens,
              (long long)r.usage.spec_num_accepted_tokens);
  return r.tokens == reference.tokens ? 0 : 1;
}
