#include "actors/admission.h"

#include <algorithm>

#include "core/error.h"

namespace troupe {

namespace {

TokenEvent error_event(int64_t id, std::string type, std::string message) {
  TokenEvent ev;
  ev.request_id = id;
  ev.finished = true;
  ev.finish_reason = "error";
  ev.error_type = std::move(type);
  ev.error = std::move(message);
  return ev;
}

SequencePtr admit(AdmitRequest& a, const Tokenizer& tok, const AdmissionConfig& cfg) {
  auto& req = a.req;
  req.params.validate();
  if (req.prompt_ids.empty() && req.prompt.empty()) fail("the prompt is empty");
  std::vector<int32_t> ids = req.prompt_ids.empty() ? tok.encode(req.prompt, /*add_special=*/true)
                                                    : req.prompt_ids;
  if (ids.empty()) fail("the prompt is empty");
  for (int32_t id : ids)
    if (id < 0 || id >= cfg.vocab_size)
      fail("prompt token id {} is outside the vocabulary of {}", id, cfg.vocab_size);
  if (int64_t(ids.size()) >= cfg.max_model_len)
    fail("the prompt has {} tokens; this model accepts at most {} tokens in total (prompt + "
         "completion), so the prompt must be shorter than that", ids.size(), cfg.max_model_len);
  // max_tokens is capped by what is left of the model length.
  req.params.max_tokens = int32_t(std::min<int64_t>(req.params.max_tokens,
                                                    cfg.max_model_len - int64_t(ids.size())));
  auto seq = std::make_shared<Sequence>(a.request_id, std::move(req), std::move(ids), std::move(a.sink),
                                        tok, a.arrival);
  seq->eos_ids = tok.eos_ids();
  seq->max_model_len = cfg.max_model_len;
  return seq;
}

caf::behavior admission_actor(caf::event_based_actor* self, caf::actor scheduler,
                              std::shared_ptr<const Tokenizer> tok, AdmissionConfig cfg,
                              std::shared_ptr<std::atomic<int64_t>> waiting) {
  return {
      [self, scheduler, tok, cfg, waiting](AdmitRequest& a) {
        // The gauge counts sequences sent to the scheduler and not yet running, so a burst
        // of admissions is limited before the scheduler has seen any of them.
        if (waiting->load() >= cfg.max_waiting) {
          if (a.sink)
            a.sink(error_event(a.request_id, "overloaded",
                               "server overloaded: " + std::to_string(waiting->load()) +
                                   " requests are already waiting; retry later"));
          return;
        }
        TokenSink sink = a.sink;
        try {
          auto seq = admit(a, *tok, cfg);
          waiting->fetch_add(1);
          self->send(scheduler, EnqueueSeq{std::move(seq)});
        } catch (const Error& e) {
          if (sink) sink(error_event(a.request_id, "invalid_request", e.what()));
        } catch (const std::exception& e) {
          if (sink) sink(error_event(a.request_id, "internal", e.what()));
        }
      },
      // Cancels travel the same path as admissions, so one can never overtake its request.
      [self, scheduler](CancelRequest c) { self->send(scheduler, c); },
  };
}

}  // namespace

caf::actor spawn_admission(caf::actor_system& sys, caf::actor scheduler,
                           std::shared_ptr<const Tokenizer> tokenizer, AdmissionConfig cfg,
                           std::shared_ptr<std::atomic<int64_t>> waiting_gauge) {
  return sys.spawn(admission_actor, std::move(scheduler), std::move(tokenizer), cfg,
                   std::move(waiting_gauge));
}

}  // namespace troupe
