#include "actors/output.h"

#include <unordered_map>

#include "actors/text_stream.h"

namespace troupe {

namespace {

struct Stream {
  Stream(const Tokenizer& tok, OpenStream& o)
      : sink(std::move(o.sink)), text(tok, std::move(o.stop)), arrival(from_ns(o.arrival_ns)) {}
  TokenSink sink;
  TextStream text;
  Clock::time_point arrival, first_token{}, last_token{};
  int64_t delivered = 0;  // tokens streamed to the client
};

struct OutputState {
  std::shared_ptr<const Tokenizer> tok;
  std::unordered_map<int64_t, Stream> streams;
  OutputLinks links;
  static inline const char* name = "output";
};

using OutputSelf = output_actor::stateful_pointer<OutputState>;

void on_tokens(OutputSelf self, int64_t id, Stream& s, const SeqUpdate& u, Clock::time_point now) {
  for (size_t i = 0; i < u.token_ids.size(); ++i) {
    const int32_t token = u.token_ids[i];
    if (s.text.stopped()) return;  // produced before the scheduler heard of the stop string
    if (s.first_token == Clock::time_point{}) s.first_token = now;
    s.last_token = now;
    ++s.delivered;
    TokenEvent ev;
    ev.request_id = id;
    ev.token_ids = {token};
    if (i < u.logprobs.size()) ev.logprobs = {u.logprobs[i]};
    if (i == 0) ev.prompt_logprobs = u.prompt_logprobs;  // (the scheduler sends them once)
    ev.text = s.text.push(token);
    if (s.sink) s.sink(ev);
    if (s.text.stopped() && !u.finished && self->state.links.scheduler)
      self->send(self->state.links.scheduler, FinishRequest{id, FinishReason::Stop});
  }
}

void on_finished(Stream& s, int64_t id, const SeqUpdate& u, Clock::time_point now) {
  TokenEvent ev;
  ev.request_id = id;
  ev.finished = true;
  ev.finish_reason = s.text.stopped() ? FinishReason::Stop : u.reason;
  ev.error = u.error;
  ev.error_kind = u.error_kind;
  if (u.token_ids.empty()) ev.prompt_logprobs = u.prompt_logprobs;  // no token event carried them
  if (ev.finish_reason == FinishReason::Stop || ev.finish_reason == FinishReason::Length) ev.text = s.text.finish();
  ev.usage = u.usage;
  ev.usage.completion_tokens = s.delivered;  // not the tokens computed after a stop string
  auto& T = ev.timings;
  T.queue_ms = u.queue_ms;
  ev.slo = u.slo;
  if (s.first_token != Clock::time_point{}) T.ttft_ms = ms_between(s.arrival, s.first_token);
  T.e2e_ms = ms_between(s.arrival, now);
  if (s.delivered > 1) T.tpot_ms = ms_between(s.first_token, s.last_token) / double(s.delivered - 1);
  if (s.sink) s.sink(ev);
}

output_actor::behavior_type output_behavior(OutputSelf self, std::shared_ptr<const Tokenizer> tok) {
  self->state.tok = std::move(tok);
  return {
      [self](OpenStream& o) {
        const int64_t id = o.request_id;
        self->state.streams.try_emplace(id, *self->state.tok, o);
      },
      [self](StepUpdates& batch) {
        const auto now = Clock::now();
        for (const SeqUpdate& u : batch.updates) {
          auto it = self->state.streams.find(u.request_id);
          if (it == self->state.streams.end()) continue;  // nobody listens (already finished)
          on_tokens(self, u.request_id, it->second, u, now);
          if (u.finished) {
            on_finished(it->second, u.request_id, u, now);
            self->state.streams.erase(it);
          }
        }
      },
      [self](OutputLinks& l) { self->state.links = std::move(l); },
  };
}

}  // namespace

output_actor spawn_output(caf::actor_system& sys, std::shared_ptr<const Tokenizer> tokenizer) {
  return sys.spawn(output_behavior, std::move(tokenizer));
}

}  // namespace troupe
