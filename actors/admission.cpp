#include "actors/admission.h"

#include <algorithm>

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
