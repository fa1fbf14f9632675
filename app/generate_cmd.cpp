// `troupe generate`: one prompt through the Engine (the same actor pipeline the daemon
// uses), streamed to stdout - or one JSON object with --json.
#include <boost/json.hpp>

#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>

#include "actors/engine.h"
#include "app/commands.h"
#include "config/flags.h"
#include "core/error.h"

namespace troupe::app {

namespace {

struct GenerateOpts {
  std::string prompt;
  SamplingParams params;
  uint64_t seed = 0;
  bool json = false;
  EngineConfig engine;  // one sequence at a time (max_num_seqs 1)
};

boost::json::array to_json(const std::vector<int32_t>& ids) {
  boost::json::array a;
  for (auto id : ids) a.push_back(id);
  return a;
}

}  // namespace

void register_generate(CLI::App& app) {
  auto o = std::make_shared<GenerateOpts>();
  o->params.max_tokens = 128;
  auto* cmd = app.add_subcommand("generate", "Generate a completion for one prompt");
  auto f = std::make_shared<config::FlagSet>(cmd);
  add_engine_flags(*f, o->engine);
  f->add_config_flags();
  f->require(f->option("--prompt", o->prompt, "Prompt text"));
  f->option("--max-tokens", o->params.max_tokens, "Maximum new tokens")->capture_default_str();
  f->option("--temperature", o->params.temperature, "0 = greedy")->capture_default_str();
  f->option("--top-p", o->params.top_p)->capture_default_str();
  f->option("--top-k", o->params.top_k, "0 = disabled")->capture_default_str();
  f->option("--min-p", o->params.min_p)->capture_default_str();
  f->option("--repetition-penalty", o->params.repetition_penalty)->capture_default_str();
  f->option("--presence-penalty", o->params.presence_penalty)->capture_default_str();
  f->option("--frequency-penalty", o->params.frequency_penalty)->capture_default_str();
  auto* seed = cmd->add_option("--seed", o->seed, "Random seed (same seed, same output; unset: random)");
  f->remember(seed, [p = o.get(), seed] { return seed->count() > 0 ? boost::json::value(p->seed) : boost::json::value(""); });
  f->option("--stop", o->params.stop, "Stop string (repeatable)");
  f->option("--stop-token-id", o->params.stop_token_ids, "Stop token id (repeatable)");
  f->flag("--ignore-eos", o->params.ignore_eos, "Keep generating past EOS");
  f->flag("--json", o->json, "Print one JSON object instead of streaming text");
  add_speculative_flags(*f, o->engine.speculative);
  cmd->callback([o, f, seed] {
    if (f->finish()) return;
    if (seed->count() > 0) o->params.seed = o->seed;
    o->params.validate();
    EngineConfig cfg = o->engine;
    cfg.scheduler.max_num_seqs = 1;
    Engine engine(cfg);

    GenerateRequest req;
    req.prompt = o->prompt;
    req.params = o->params;
    std::mutex mu;
    std::condition_variable cv;
    std::vector<int32_t> ids;
    std::string text;
    TokenEvent final_ev;
    bool done = false;
    if (!o->json) std::fputs(o->prompt.c_str(), stdout);
    const bool stream = !o->json;
    engine.submit(req, [&](const TokenEvent& ev) {
      std::lock_guard lk(mu);
      ids.insert(ids.end(), ev.token_ids.begin(), ev.token_ids.end());
      text += ev.text;
      if (stream && !ev.text.empty()) {
        std::fputs(ev.text.c_str(), stdout);
        std::fflush(stdout);
      }
      if (ev.finished) {
        final_ev = ev;
        done = true;
        cv.notify_all();
      }
    });
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return done; });
    if (final_ev.finish_reason == FinishReason::Error) fail("{}", final_ev.error);

    const auto& u = final_ev.usage;
    const auto& t = final_ev.timings;
    const double prefill_tps = t.ttft_ms > 0 ? double(u.computed_prompt_tokens) / (t.ttft_ms / 1e3) : 0;
    const double decode_tps = t.tpot_ms > 0 ? 1e3 / t.tpot_ms : 0;
    const auto prompt_ids = engine.tokenizer().encode(o->prompt, true);
    if (o->json) {
      boost::json::object obj{
          {"model", o->engine.model},
          {"prompt", o->prompt},
          {"prompt_token_ids", to_json(prompt_ids)},
          {"token_ids", to_json(ids)},
          {"text", text},
          {"finish_reason", to_string(final_ev.finish_reason)},
          {"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"ttft_ms", t.ttft_ms},
          {"e2e_ms", t.e2e_ms},
          {"prefill_tokens_per_s", prefill_tps},
          {"decode_tokens_per_s", decode_tps},
      };
      if (!engine.speculation().empty()) {
        obj["speculative"] = boost::json::object{
            {"method", engine.speculation()},
            {"num_drafts", u.spec_num_drafts},
            {"num_draft_tokens", u.spec_num_draft_tokens},
            {"num_accepted_tokens", u.spec_num_accepted_tokens},
            {"acceptance_rate", u.spec_num_draft_tokens ? double(u.spec_num_accepted_tokens) / double(u.spec_num_draft_tokens) : 0.0},
        };
      }
      std::printf("%s\n", boost::json::serialize(obj).c_str());
    } else {
      std::printf("\n");
      std::fprintf(stderr, "[%lld prompt tokens, %lld generated, finish: %s | TTFT %.1f ms, prefill %.1f tok/s, decode %.1f tok/s]\n",
                   (long long)u.prompt_tokens, (long long)u.completion_tokens, to_string(final_ev.finish_reason),
                   t.ttft_ms, prefill_tps, decode_tps);
      if (!engine.speculation().empty())
        std::fprintf(stderr, "[speculative: %s | %lld verifications, %lld/%lld drafts accepted, %.2f tokens per step]\n",
                     engine.speculation().c_str(), (long long)u.spec_num_drafts, (long long)u.spec_num_accepted_tokens,
                     (long long)u.spec_num_draft_tokens,
                     u.spec_num_drafts ? 1.0 + double(u.spec_num_accepted_tokens) / double(u.spec_num_drafts) : 0.0);
    }
  });
}

}  // namespace troupe::app
