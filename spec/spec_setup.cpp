#include "spec/spec_setup.h"

#include <fmt/format.h>

#include <algorithm>

#include "backends/backend_factory.h"
#include "core/error.h"
#include "model/quantized_checkpoint.h"
#include "model/tokenizer_loader.h"
#include "model/weights.h"
#include "spec/calibrate.h"
#include "spec/draft_model.h"
#include "spec/ngram.h"

namespace troupe::spec {

namespace {

// Same ids must mean the same text, or the target would verify nonsense: compare sizes
// and every token's bytes.
void check_same_vocabulary(const std::string& draft_path, const ModelConfig& draft, const ModelConfig& target,
                           const Tokenizer& target_tok) {
  if (draft.vocab_size != target.vocab_size)
    fail("--speculative-model {}: its vocabulary has {} tokens, the target's {}; a draft model must "
         "share the target's tokenizer", draft_path, draft.vocab_size, target.vocab_size);
  std::unique_ptr<Tokenizer> tok;
  try {
    tok = load_tokenizer(draft_path);
  } catch (const Error&) {
    return;  // weights without a tokenizer: the vocabulary size is all we can check
  }
  if (tok->vocab_size() != target_tok.vocab_size())
    fail("--speculative-model {}: its tokenizer has {} tokens, the target's {}", draft_path, tok->vocab_size(),
         target_tok.vocab_size());
  for (int32_t id = 0; id < tok->vocab_size(); ++id)
    if (tok->token_bytes(id) != target_tok.token_bytes(id))
      fail("--speculative-model {}: token {} is '{}' in the draft's vocabulary but '{}' in the target's; "
           "a draft model must share the target's tokenizer", draft_path, id, tok->token_bytes(id),
           target_tok.token_bytes(id));
}

std::shared_ptr<Backend> load_draft_backend(const EngineConfig& cfg, const Backend& target,
                                            const Tokenizer& target_tok) {
  const auto& sp = cfg.speculative;
  BackendOptions bo;
  bo.num_threads = sp.draft_threads > 0 ? sp.draft_threads : cfg.threads;
  bo.block_size = target.kv_shape().block_size;
  // As many blocks as the target: every sequence holding target KV fits in the draft's too.
  bo.num_blocks = target.kv_shape().num_blocks;
  bo.kv_dtype = target.kv_shape().dtype;  // the draft's KV in the element type asked for the target's
  if (sp.model.rfind("self:", 0) == 0) {
    // Self-drafting: the target's own weights, quantized round-to-nearest at load. Same
    // tokenizer by construction; cheaper passes where weight streaming dominates.
    const std::string q = sp.model.substr(5);
    if (q == "int8") bo.quantization.method = quant::Method::Int8;
    else if (q == "int4") bo.quantization.method = quant::Method::Int4;
    else fail("--speculative-model {}: the self-draft must be self:int8 or self:int4", sp.model);
    bo.quantization.group_size = cfg.quantization.group_size;
    return make_backend(load_checkpoint(cfg.model), bo);
  }
  Checkpoint ck = load_checkpoint(sp.model);
  check_same_vocabulary(sp.model, ck.weights.config, target.config(), target_tok);
  return make_backend(std::move(ck), bo);
}

}  // namespace

SpecSetup setup_speculation(const EngineConfig& cfg, Backend& target, const Tokenizer& target_tok) {
  const auto& sp = cfg.speculative;
  const std::string method = sp.method.empty() ? "draft" : sp.method;
  if (sp.num_speculative_tokens < 1) fail("--num-speculative-tokens must be at least 1 with speculation");
  if (sp.num_speculative_tokens > 32) fail("--num-speculative-tokens {} is more than 32", sp.num_speculative_tokens);
  if (cfg.scheduler.scheduling != Scheduling::Continuous)
    fail("speculative decoding needs continuous batching (--scheduling continuous)");
  SpecSetup out;
  auto& cc = out.controller;
  cc.num_speculative_tokens = sp.num_speculative_tokens;
  cc.adaptive = sp.adaptive;
  cc.min_gain = sp.min_gain;
  const int64_t K = sp.num_speculative_tokens;
  const int64_t max_step = std::min<int64_t>(cfg.scheduler.max_num_batched_tokens,
                                             cfg.scheduler.max_num_seqs * (K + 1));
  std::shared_ptr<Backend> draft;
  if (method == "ngram") {
    if (!sp.model.empty()) fail("--speculative-model is for --speculative-method draft, not ngram");
    out.proposer = std::make_shared<NgramProposer>(sp.ngram_min, sp.ngram_max);
    cc.model_drafts = false;
    out.description = fmt::format("n-gram prompt lookup (n {}..{})", sp.ngram_min, sp.ngram_max);
  } else if (method == "draft") {
    if (sp.model.empty()) fail("--speculative-method draft needs --speculative-model PATH|self:int8|self:int4");
    draft = load_draft_backend(cfg, target, target_tok);
    cc.model_drafts = true;
    cc.static_cost_ratio = double(draft->weight_bytes_per_token()) / double(target.weight_bytes_per_token());
    out.description = fmt::format("draft model {} ({} layers, {:.3g} of the target's weight bytes)", sp.model,
                                  draft->config().num_layers, cc.static_cost_ratio);
  } else {
    fail("--speculative-method must be draft or ngram, got '{}'", sp.method);
  }
  if (sp.calibrate) {
    out.target_calibration = calibrate_backend(target, calibration_sizes(max_step));
    if (draft) {
      // Draft passes carry one token per drafting sequence, plus catch-up in the first.
      const int64_t max_pass = std::min<int64_t>(cfg.scheduler.max_num_batched_tokens,
                                                 std::max<int64_t>(2 * cfg.scheduler.max_num_seqs, 16));
      out.draft_calibration = calibrate_backend(*draft, calibration_sizes(max_pass));
    }
  }
  if (draft) out.proposer = std::make_shared<DraftModelProposer>(draft);
  out.description += fmt::format(", K={}{}", K, sp.adaptive ? ", adaptive" : ", fixed k");
  return out;
}

}  // namespace troupe::spec
