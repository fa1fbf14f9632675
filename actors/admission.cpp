#include "actors/admission.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace troupe {

SeqUpdate rejection(int64_t request_id, ErrorKind kind, std::string message) {
  SeqUpdate u;
  u.request_id = request_id;
  u.finished = true;
  u.reason = FinishReason::Error;
  u.error_kind = kind;
  u.error = std::move(message);
  return u;
}

namespace {

// A request's own latency target, checked against the server's floor (the tightest target
// the server lets one request impose on the steps every request shares).
double request_slo(double asked, double server, double floor, const char* name, const char* flag) {
  if (asked < 0 || !std::isfinite(asked)) fail("slo.{} must be a non-negative number of milliseconds", name);
  if (asked == 0) return server;
  const double min = floor > 0 ? floor : server;
  if (min <= 0)
    fail("this server takes no per-request slo.{} (start it with {} or the matching server-wide target)", name, flag);
  if (asked < min) fail("slo.{} must be at least {} ms on this server, got {}", name, min, asked);
  return asked;
}

}  // namespace

EnqueueSeq admit(AdmitRequest& a, const Tokenizer& tok, const AdmissionConfig& cfg) {
  auto& req = a.req;
  req.params.validate();
  if (req.prompt_ids.empty() && req.prompt.empty()) fail("the prompt is empty");
  // The one place a prompt is tokenized and checked (net/ renders chat templates to text).
  std::vector<int32_t> ids = req.prompt_ids.empty() ? tok.encode(req.prompt, req.add_special_tokens)
                                                    : std::move(req.prompt_ids);
  if (ids.empty()) fail("the prompt is empty");
  for (int32_t id : ids)
    if (id < 0 || id >= cfg.vocab_size)
      fail("prompt token id {} is outside the vocabulary of {}", id, cfg.vocab_size);
  if (int64_t(ids.size()) >= cfg.max_model_len)
    fail("This model's maximum context length is {} tokens. However, your prompt resulted in {} tokens "
         "(the prompt must leave room for at least one completion token).", cfg.max_model_len, ids.size());
  const int64_t room = cfg.max_model_len - int64_t(ids.size());
  if (req.strict_max_tokens && req.params.max_tokens > room)
    fail("This model's maximum context length is {} tokens. However, you requested {} tokens ({} in the prompt, "
         "{} in the completion). Please reduce the length of the prompt or max_tokens.",
         cfg.max_model_len, int64_t(ids.size()) + req.params.max_tokens, ids.size(), req.params.max_tokens);
  EnqueueSeq e;
  e.request_id = a.request_id;
  e.prompt_ids = std::move(ids);
  e.params = std::move(req.params);
  // max_tokens is capped by what is left of the model length.
  e.params.max_tokens = int32_t(std::min<int64_t>(e.params.max_tokens, room));
  e.priority = req.priority;
  e.num_speculative_tokens = req.num_speculative_tokens;
  // Verification picks tokens without a logprob for each: a request that wants them
  // decodes one token per step (its output is the same either way).
  if (e.params.return_logprobs || e.params.prompt_logprobs >= 0) e.num_speculative_tokens = 0;
  e.eos_ids = tok.eos_ids();
  if (e.params.min_tokens > 0) {
    auto& ban = e.params.min_tokens_stop_ids;
    ban = e.params.stop_token_ids;
    if (!e.params.ignore_eos) ban.insert(ban.end(), e.eos_ids.begin(), e.eos_ids.end());
  }
  e.max_model_len = cfg.max_model_len;
  e.slo_ttft_ms = request_slo(req.slo_ttft_ms, cfg.slo_ttft_ms, cfg.slo_min_ttft_ms, "ttft_ms", "--slo-min-ttft-ms");
  e.slo_tpot_ms = request_slo(req.slo_tpot_ms, cfg.slo_tpot_ms, cfg.slo_min_tpot_ms, "tpot_ms", "--slo-min-tpot-ms");
  return e;
}

namespace {

struct AdmissionState {
  AdmissionLinks links;
  QueueDepth depth;   // the scheduler's last report
  int64_t sent = 0;   // EnqueueSeq sent in all
  static inline const char* name = "admission";
};

admission_actor::behavior_type admission_behavior(admission_actor::stateful_pointer<AdmissionState> self,
                                                  std::shared_ptr<const Tokenizer> tok, AdmissionConfig cfg) {
  auto reject = [self](int64_t id, ErrorKind kind, std::string msg) {
    StepUpdates u;
    u.updates.push_back(rejection(id, kind, std::move(msg)));
    self->send(self->state.links.output, std::move(u));
  };
  return {
      [self, tok, cfg, reject](AdmitRequest& a) {
        auto& st = self->state;
        // Waiting = what the scheduler reported plus what we sent that it had not counted
        // yet, so a burst of admissions is limited before the scheduler has seen any.
        const int64_t waiting = st.depth.waiting + (st.sent - st.depth.received);
        if (waiting >= cfg.max_waiting) {
          reject(a.request_id, ErrorKind::Overloaded,
                 "server overloaded: " + std::to_string(waiting) + " requests are already waiting; retry later");
          return;
        }
        try {
          EnqueueSeq e = admit(a, *tok, cfg);
          e.admit_ms = std::max(0.0, ms_between(from_ns(a.arrival_ns), Clock::now()));
          ++st.sent;
          self->send(st.links.scheduler, std::move(e));
        } catch (const Error& e) {
          reject(a.request_id, ErrorKind::InvalidRequest, e.what());
        } catch (const std::exception& e) {
          reject(a.request_id, ErrorKind::Internal, e.what());
        }
      },
      // Cancels travel the same path as admissions, so one can never overtake its request.
      [self](FinishRequest f) { self->send(self->state.links.scheduler, f); },
      [self](QueueDepth d) { self->state.depth = d; },
      [self](AdmissionLinks& l) { self->state.links = std::move(l); },
  };
}

}  // namespace

admission_actor spawn_admission(caf::actor_system& sys, std::shared_ptr<const Tokenizer> tokenizer,
                                AdmissionConfig cfg) {
  return sys.spawn(admission_behavior, std::move(tokenizer), cfg);
}

}  // namespace troupe
