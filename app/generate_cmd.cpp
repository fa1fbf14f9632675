// `troupe generate`: one prompt, streamed to stdout (or one JSON object with --json).
#include <boost/json.hpp>

#include <cstdio>
#include <memory>

#include "app/commands.h"
#include "app/loaded_model.h"
#include "app/sequence_loop.h"

namespace troupe::app {

namespace {

struct GenerateOpts {
  std::string model, prompt;
  SamplingParams params;
  uint64_t seed = 0;
  bool json = false;
  int threads = 0;
  int64_t block_size = 16;
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
  cmd->add_option("--model", o->model, "Model: Hugging Face directory or .gguf file")->required();
  cmd->add_option("--prompt", o->prompt, "Prompt text")->required();
  cmd->add_option("--max-tokens", o->params.max_tokens, "Maximum new tokens")->capture_default_str();
  cmd->add_option("--temperature", o->params.temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-p", o->params.top_p)->capture_default_str();
  cmd->add_option("--top-k", o->params.top_k, "0 = disabled")->capture_default_str();
  cmd->add_option("--min-p", o->params.min_p)->capture_default_str();
  cmd->add_option("--repetition-penalty", o->params.repetition_penalty)->capture_default_str();
  cmd->add_option("--presence-penalty", o->params.presence_penalty)->capture_default_str();
  cmd->add_option("--frequency-penalty", o->params.frequency_penalty)->capture_default_str();
  auto* seed = cmd->add_option("--seed", o->seed, "Random seed (same seed, same output)");
  cmd->add_option("--stop", o->params.stop, "Stop string (repeatable)");
  cmd->add_option("--stop-token-id", o->params.stop_token_ids, "Stop token id (repeatable)");
  cmd->add_flag("--ignore-eos", o->params.ignore_eos, "Keep generating past EOS");
  cmd->add_flag("--json", o->json, "Print one JSON object instead of streaming text");
  cmd->add_option("--threads", o->threads, "Compute threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--block-size", o->block_size, "KV block size in tokens")->capture_default_str();
  cmd->callback([o, seed] {
    if (seed->count() > 0) o->params.seed = o->seed;
    o->params.validate();
    cpu::CpuBackendOptions bo;
    bo.num_threads = o->threads;
    bo.block_size = o->block_size;
    LoadedModel m = load_cpu_model(o->model, bo);
    auto prompt_ids = m.tokenizer->encode(o->prompt, /*add_special=*/true);
    std::function<void(const std::string&)> stream;
    if (!o->json) {
      std::fputs(o->prompt.c_str(), stdout);
      stream = [](const std::string& s) {
        std::fputs(s.c_str(), stdout);
        std::fflush(stdout);
      };
    }
    SequenceResult r = run_sequence(*m.backend, *m.tokenizer, prompt_ids, o->params, stream);
    const double prefill_tps = r.prefill_s > 0 ? double(r.prompt_ids.size()) / r.prefill_s : 0;
    const double decode_tps = r.decode_s > 0 ? double(r.decode_steps) / r.decode_s : 0;
    if (o->json) {
      boost::json::object obj{
          {"model", o->model},
          {"prompt", o->prompt},
          {"prompt_token_ids", to_json(r.prompt_ids)},
          {"token_ids", to_json(r.token_ids)},
          {"text", r.text},
          {"finish_reason", r.finish_reason},
          {"prompt_tokens", r.prompt_ids.size()},
          {"completion_tokens", r.token_ids.size()},
          {"ttft_ms", r.ttft_s * 1e3},
          {"prefill_tokens_per_s", prefill_tps},
          {"decode_tokens_per_s", decode_tps},
      };
      std::printf("%s\n", boost::json::serialize(obj).c_str());
    } else {
      std::printf("\n");
      std::fprintf(stderr, "[%zu prompt tokens, %zu generated, finish: %s | prefill %.1f tok/s, decode %.1f tok/s]\n",
                   r.prompt_ids.size(), r.token_ids.size(), r.finish_reason.c_str(), prefill_tps, decode_tps);
    }
  });
}

}  // namespace troupe::app
