#include "actors/scheduler_core.h"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include <cmath>

#include "core/error.h"

namespace troupe {

namespace {

constexpr double kNoTarget = std::numeric_limits<double>::infinity();

}  // namespace

void check_scheduler_config(const SchedulerConfig& cfg) {
  if (cfg.max_num_seqs < 1) fail("max-num-seqs must be at least 1");
  if (cfg.max_num_batched_tokens < 1) fail("max-num-batched-tokens must be at least 1");
  if (cfg.schedule_policy == SchedulePolicy::LongestOutputFirst && cfg.scheduling == Scheduling::Static)
    fail("--schedule-policy lof orders continuous batching's queue; static batching keeps arrival order (it is "
         "the baseline)");
  // Deadlines come before max_tokens in RunOrder, and a server-wide TTFT target gives every
  // request a deadline of its own: lof would order nothing.
  if (cfg.schedule_policy == SchedulePolicy::LongestOutputFirst && cfg.slo_ttft_ms > 0)
    fail("--schedule-policy lof does not combine with --slo-ttft-ms: with a TTFT target the queue runs earliest "
         "deadline first");
}

// Priority order: lower `priority` first, then the earlier TTFT deadline (with one target
// for all, that is arrival order), then (SchedulePolicy::LongestOutputFirst) the most
// max_tokens, then earlier arrival. A preempted sequence keeps its deadline, max_tokens
// and arrival, so it goes back ahead of newer requests that it ran before.
bool SchedulerCore::RunOrder::operator()(const SequencePtr& a, const SequencePtr& b) const {
  if (a->priority != b->priority) return a->priority < b->priority;
  if (a->deadline != b->deadline) return a->deadline < b->deadline;
  if (longest_output_first && a->params.max_tokens != b->params.max_tokens)
    return a->params.max_tokens > b->params.max_tokens;
  return a->arrival_order < b->arrival_order;
}

namespace {

// The step time a TPOT target allows. A request's time per token is the step's time plus
// the gap between steps (planning, the output stage), and the model's prediction errs both
// ways, so steps are sized to 90% of the target to keep the average within it.
constexpr double kTpotHeadroom = 0.9;
double target_or_none(double tpot_ms) { return tpot_ms > 0 ? tpot_ms * kTpotHeadroom : kNoTarget; }
// The mean a request's banked time is spent toward (SchedulerCore::tpot_allowance): well
// under the headroom, so spending the bank leaves room for the model's errors.
constexpr double kBankedMean = 0.75;
// The least a request that fell behind its target allows the next step (a share of the
// target): decodes alone still run, prefill chunks wait.
constexpr double kMinAllowance = 0.5;

// prompt_logprobs: the prompt positions this step computes whose entries are still missing
// (row r predicts prompt token start + r + 1; the last prompt position predicts the first
// generated token, which is sampled). Their rows go first, before the sampling row.
void plan_prompt_logprobs(PlannedSeq& p, const Sequence& s) {
  const int64_t start = p.step.start_pos, end = start + int64_t(p.step.tokens.size());
  std::vector<int32_t> rows;
  for (int64_t pos = std::max<int64_t>(start, int64_t(s.prompt_logprobs.size())); pos < std::min(end, s.prompt_len - 1);
       ++pos) {
    rows.push_back(int32_t(pos - start));
    p.prompt_targets.push_back(s.tokens[size_t(pos + 1)]);
  }
  if (rows.empty()) return;
  p.prompt_logprobs = s.params.prompt_logprobs;
  rows.insert(rows.end(), p.step.logit_rows.begin(), p.step.logit_rows.end());
  p.step.logit_rows = std::move(rows);
}

}  // namespace

SchedulerCore::SchedulerCore(SchedulerConfig cfg, KvCacheShape kv, SpecSchedule spec)
    : cfg_(cfg),
      blocks_(kv.num_blocks, kv.block_size, cfg.enable_prefix_caching),
      // Bounded so a burst of outliers cannot shut admission (at most 4x) or open it wide
      // (at least 0.5x).
      ttft_ratio_(cfg.slo_admission_quantile, 0.05, 0.5, 4.0, 1.0) {
  check_scheduler_config(cfg_);
  runs_before_.longest_output_first = cfg_.schedule_policy == SchedulePolicy::LongestOutputFirst;
  if (spec.step_timings.empty())
    step_time_.seed(spec.target_calibration);
  else
    step_time_.fit(spec.step_timings);
  const int32_t K = spec.controller.num_speculative_tokens;
  if (K < 0) fail("num-speculative-tokens must be at least 0, got {}", K);
  // Static batching is the naive baseline: it never speculates.
  if (K > 0 && cfg_.scheduling == Scheduling::Continuous) {
    spec_.emplace(spec.controller);
    spec_->target_cost().set_calibration(std::move(spec.target_calibration));
    spec_->draft_cost().set_calibration(std::move(spec.draft_calibration));
    stats_.spec = spec::SpecMetrics(K);
  }
  if (cfg_.max_steps_in_flight < 1) fail("pipeline depth must be at least 1, got {}", cfg_.max_steps_in_flight);
  // Static batching decodes its batch in lockstep, and speculation plans from the previous
  // step's acceptance: both keep one step in flight.
  const bool one_at_a_time = spec_.has_value() || cfg_.scheduling == Scheduling::Static;
  max_in_flight_ = one_at_a_time ? 1 : cfg_.max_steps_in_flight;
}

void SchedulerCore::add(EnqueueSeq e, Clock::time_point now) {
  auto seq = std::make_shared<Sequence>(std::move(e), now);
  seq->arrival_order = arrivals_++;
  if (spec_) {
    const int32_t K = spec_->config().num_speculative_tokens;
    const int32_t want = seq->num_speculative_tokens;
    seq->spec.k_max = want < 0 ? K : std::min(want, K);
    const auto& P = seq->params;
    seq->spec.deterministic = P.seed.has_value() && !P.greedy();
  }
  by_id_[seq->id] = seq;
  // Targets come resolved from admission; a caller that drives the core directly gets the
  // server's.
  if (seq->slo_ttft_ms <= 0) seq->slo_ttft_ms = cfg_.slo_ttft_ms;
  if (seq->slo_tpot_ms <= 0) seq->slo_tpot_ms = cfg_.slo_tpot_ms;
  if (seq->slo_ttft_ms > 0)
    seq->deadline = now + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double, std::milli>(seq->slo_ttft_ms - seq->admit_ms));
  seq->estimated_ttft_ms = seq->slo_ttft_ms > 0 && cfg_.scheduling == Scheduling::Continuous ? estimated_ttft(*seq) : 0;
  const double ttft = seq->estimated_ttft_ms * ttft_calibration();
  if (ttft > seq->slo_ttft_ms && seq->slo_ttft_ms > 0) {
    if (cfg_.slo_reject) {
      stats_.slo.rejected++;
      const auto c = step_time_.coefficients();
      finish(*seq, FinishReason::Error, ErrorKind::Overloaded,
             fmt::format("the server cannot meet the time-to-first-token target of {} ms at the current load "
                         "(estimated {:.0f} ms; steps of {:.2f} ms + {:.4f} ms per token + {:.4f} ms per 1K context)",
                         seq->slo_ttft_ms, ttft, c[0], c[1], c[2]));
      retire(seq);
      return;
    }
    seq->priority++;  // queued behind the requests that can still meet it
  }
  waiting_.insert(std::upper_bound(waiting_.begin(), waiting_.end(), seq, runs_before_), std::move(seq));
}

bool SchedulerCore::decoding(const Sequence& s) { return int64_t(s.tokens.size()) - s.num_computed == 1; }

StepShape SchedulerCore::decode_shape(bool skip_in_step) const {
  StepShape shape;
  for (const auto& s : running_)
    if (decoding(*s) && !(skip_in_step && s->in_step)) shape += chunk_shape(s->num_computed, 1);
  return shape;
}

// TPOT is a per-request mean, not a per-step bound, so each decoding request's allowance
// for the next step follows its own balance (wall time since its first token, as the client
// measures it, against the headroom per token so far):
//  - Ahead (steps ran below the target): the bank may pay for a bigger prefill chunk, as
//    much as keeps the request's mean at kBankedMean of the target even if the step
//    overruns its prediction by the model's observed overrun (the 95th percentile of
//    actual / predicted step time) and the request ends right after it. (Commit 334d76d
//    spent half the bank, aiming at the headroom: p95 TPOT 106.5 ms of 100 below
//    saturation. Aiming lower leaves room for the model's errors.)
//  - Behind (the model under-predicted its steps, or the machine slowed): the next step is
//    shortened by the overdraft, down to half the target, so the mean comes back to the
//    headroom instead of the error adding up over the request. Without this, p95 TPOT sat
//    at 99-105 ms of a 100 ms target wherever steps ran at the headroom.
// A clock that has not passed the first token (a caller driving the core by hand) gives
// the headroom.
double SchedulerCore::tpot_allowance(const Sequence& s, Clock::time_point now) const {
  const double base = target_or_none(s.slo_tpot_ms);
  if (base == kNoTarget || s.first_token == Clock::time_point{} || now <= s.first_token) return base;
  const double k = double(s.num_generated() - 1), elapsed = ms_between(s.first_token, now);
  const double balance = base * k - elapsed;
  if (balance < 0) return std::max(kMinAllowance * s.slo_tpot_ms, base + balance);
  const double mean = kBankedMean * s.slo_tpot_ms;
  return std::max(base, (mean * (k + 1) - elapsed) / step_time_.overrun());
}

double SchedulerCore::tightest_tpot(bool skip_in_step, Clock::time_point now) const {
  double t = kNoTarget;
  for (const auto& s : running_)
    if (decoding(*s) && !(skip_in_step && s->in_step)) t = std::min(t, tpot_allowance(*s, now));
  return t;
}

// Admission's estimate of a new request's time to first token at the current load, by
// playing the next steps forward as plan_continuous() would fill them: every prompt token
// ahead of it (sequences still prefilling, waiting ones that run before it) and its own,
// chunked into the room the step-time model leaves beside the decodes (with TPOT targets:
// each step's time stays within the tightest; without: the token budget). Decoding
// sequences leave after their expected remaining output (output_share_ of what they may
// still produce), so the room grows as they end; a prompt that finishes prefilling starts
// decoding. Newcomers need a free slot (max_num_seqs). Counting the decodes as permanent,
// as this estimate first did, turned away a quarter of the requests at the knee of a
// 32-1024-token prompt mix whose targets were being met.
double SchedulerCore::estimated_ttft(const Sequence& s) const {
  struct Decoder {
    double left;  // expected steps until it ends
    int64_t pos;  // its position (context) now
    double tpot;  // its step-time limit
  };
  struct Prefill {
    int64_t pos, left, end;  // next position, prompt tokens left, expected output tokens
    double tpot;
    bool running;
  };
  auto expected_output = [&](const Sequence& r) {
    const int64_t bound = std::max<int64_t>(
        0, std::min<int64_t>(r.params.max_tokens - r.num_generated(), r.max_model_len - int64_t(r.tokens.size())));
    const double expected = output_share_ * double(std::min<int64_t>(r.params.max_tokens, r.max_model_len - r.prompt_len));
    return std::clamp(expected - double(r.num_generated()), std::min(1.0, double(bound)), double(bound));
  };
  std::vector<Decoder> decoders;
  std::vector<Prefill> queue;
  for (const auto& r : running_) {
    if (decoding(*r))
      decoders.push_back({expected_output(*r), r->num_computed, target_or_none(r->slo_tpot_ms)});
    else
      queue.push_back({r->num_computed, int64_t(r->tokens.size()) - r->num_computed,
                       int64_t(std::ceil(expected_output(*r))), target_or_none(r->slo_tpot_ms), true});
  }
  const SequencePtr& self = by_id_.at(s.id);
  for (const auto& w : waiting_)
    if (runs_before_(w, self))
      queue.push_back({0, int64_t(w->tokens.size()), int64_t(std::ceil(expected_output(*w))), target_or_none(w->slo_tpot_ms), false});
  queue.push_back({0, int64_t(s.tokens.size()), 0, target_or_none(s.slo_tpot_ms), false});
  int64_t slots = cfg_.max_num_seqs - int64_t(running_.size());

  double t = s.admit_ms;
  size_t head = 0;
  std::vector<Decoder> next;  // (reused: admission runs this for every request)
  // Bounded: past this many steps the estimate is beyond any target anyway.
  for (int step = 0; step < 20000; ++step) {
    StepShape shape;
    double tpot = kNoTarget;
    for (const Decoder& d : decoders) {
      shape += chunk_shape(d.pos, 1);
      tpot = std::min(tpot, d.tpot);
    }
    double room = tpot == kNoTarget || decoders.empty() ? kNoTarget : tpot - step_time_.predict(shape);
    int64_t budget = cfg_.max_num_batched_tokens - int64_t(decoders.size());
    bool self_done = false;
    for (size_t i = head; i < queue.size() && budget > 0; ++i) {
      Prefill& q = queue[i];
      if (!q.running) {
        if (slots <= 0) break;
        // A newcomer decodes once it starts: its own target limits the step too.
        if (q.tpot != kNoTarget && !decoders.empty()) room = std::min(room, q.tpot - step_time_.predict(shape));
        --slots;
        q.running = true;
      }
      int64_t n = std::min(q.left, budget);
      if (room != kNoTarget) {
        n = step_time_.max_chunk_within(room, q.pos, n);
        if (n <= 0) break;
        room -= step_time_.chunk_ms(q.pos, n);
      }
      shape += chunk_shape(q.pos, n);
      q.pos += n;
      q.left -= n;
      budget -= n;
      if (q.left > 0) break;  // (the next one waits for this prompt, as in plan_continuous)
    }
    if (shape.tokens == 0) return kNoTarget;  // nothing fits beside the decodes
    t += step_time_.predict(shape);
    // The step's effects: decoders advance or leave (their slots free up), finished prompts
    // decode from the next step on.
    next.clear();
    for (Decoder d : decoders) {
      d.left -= 1;
      d.pos += 1;
      if (d.left > 0) next.push_back(d);
      else ++slots;
    }
    while (head < queue.size() && queue[head].running && queue[head].left == 0) {
      const Prefill& q = queue[head];
      if (head == queue.size() - 1) self_done = true;
      else if (q.end > 0) next.push_back({double(q.end), q.pos, q.tpot});
      else ++slots;
      ++head;
    }
    decoders.swap(next);
    if (self_done) return t;
  }
  return kNoTarget;
}

double SchedulerCore::ttft_calibration() const { return ttft_ratio_.value(); }

void SchedulerCore::observe_first_token(const Sequence& s) {
  if (s.estimated_ttft_ms <= 0) return;
  const double actual = s.admit_ms + ms_between(s.enqueued, s.first_token);
  ttft_ratio_.observe(std::max(actual, 1e-3) / s.estimated_ttft_ms);
}

Sequence* SchedulerCore::find(int64_t id) {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second.get();
}

const Sequence* SchedulerCore::sequence(int64_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second.get();
}

void SchedulerCore::finish_request(int64_t request_id, FinishReason reason) {
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if ((*it)->id == request_id) {
      auto s = *it;
      waiting_.erase(it);
      finish(*s, reason);
      retire(s);
      return;
    }
  }
  for (auto& s : running_)
    if (s->id == request_id && !s->aborted()) s->abort = reason;  // retired at the next step boundary
}

std::optional<StepPlan> SchedulerCore::plan(Clock::time_point now,
                                            std::optional<Clock::duration>* wait_hint) {
  // Step boundary: retire cancelled sequences and (continuous) finished ones first, so
  // their blocks are free for this very step.
  // (A sequence inside a step still in flight keeps its blocks until that step is back.)
  for (auto& s : running_)
    if (s->aborted() && !s->finished) finish(*s, *s->abort);
  const bool static_mode = cfg_.scheduling == Scheduling::Static;
  if (!static_mode || static_batch_done()) {
    std::erase_if(running_, [&](const SequencePtr& s) {
      if ((!s->finished && !s->aborted()) || s->in_step) return false;
      if (blocks_.has_sequence(s->id)) blocks_.free(s->id);
      retire(s);
      return true;
    });
  }
  if (steps_in_flight_ >= max_in_flight_) return std::nullopt;
  auto plan = static_mode ? plan_static(now, wait_hint) : plan_continuous(now);
  if (!plan) return std::nullopt;
  plan->step_id = next_step_id_++;
  plan->copies = blocks_.take_pending_copies();
  for (const auto& p : plan->seqs) find(p.seq_id())->in_step = true;
  steps_in_flight_++;
  return plan;
}

// With several steps in flight, each takes an even share of the sequences there are, so
// pipeline stages get steps of similar size (the same sequences rotate through them).
int64_t SchedulerCore::max_seqs_this_step() const {
  if (max_in_flight_ == 1) return std::numeric_limits<int64_t>::max();
  const int64_t there = std::min<int64_t>(cfg_.max_num_seqs, int64_t(running_.size() + waiting_.size()));
  return std::max<int64_t>(1, (there + max_in_flight_ - 1) / max_in_flight_);
}

void SchedulerCore::add_step(StepPlan& plan, const SequencePtr& s, int64_t n) {
  PlannedSeq p;
  p.step.seq_id = s->id;
  p.step.start_pos = int32_t(s->num_computed);
  p.step.tokens.assign(s->tokens.begin() + s->num_computed, s->tokens.begin() + s->num_computed + n);
  p.step.block_table = blocks_.block_table(s->id);
  if (s->num_computed + n == int64_t(s->tokens.size())) {
    p.step.logit_rows = {int32_t(n) - 1};
    p.sample = !s->finished;  // a finished static-batch member only pads
  }
  if (s->wants_prompt_logprobs()) plan_prompt_logprobs(p, *s);
  // The executor owns samplers; it learns a sequence's parameters and prompt the first
  // time it samples for it.
  if (p.sample && !s->executor_has_context) attach_context(p, *s);
  plan.seqs.push_back(std::move(p));
}

void SchedulerCore::attach_context(PlannedSeq& p, Sequence& s) {
  if (p.has_context) return;
  p.has_context = true;
  p.context.params = s.params;
  p.context.tokens = s.tokens;
  p.context.prompt_len = s.prompt_len;
  s.executor_has_context = true;
}

void SchedulerCore::start_running(const SequencePtr& s, int64_t cached, Clock::time_point now) {
  s->num_computed = cached;
  s->usage.cached_prompt_tokens += std::min<int64_t>(cached, s->prompt_len);
  if (s->first_scheduled == Clock::time_point{}) s->first_scheduled = now;
  running_.push_back(s);
}

// Sends a running sequence back to the waiting queue to recompute (its blocks freed).
void SchedulerCore::preempt(SequencePtr victim) {
  std::erase(running_, victim);
  blocks_.free(victim->id);
  victim->num_computed = 0;  // recompute: prompt + generated so far become its new prompt
  victim->usage.preemptions++;
  stats_.preemptions++;
  waiting_.insert(std::upper_bound(waiting_.begin(), waiting_.end(), victim, runs_before_), victim);
}

// Grows `s` by n tokens, preempting from the back of running_ (lowest priority) until the
// blocks fit. Returns false if `s` itself had to be preempted. Sequences inside a step in
// flight are never victims (that step is writing their KV); `s` is not in one, so the
// search from the back ends at `s` at the latest.
bool SchedulerCore::grow_or_preempt(const SequencePtr& s, int64_t n) {
  while (!blocks_.append_slots(s->id, n)) {
    SequencePtr victim = *std::find_if(running_.rbegin(), running_.rend(), [](const SequencePtr& v) { return !v->in_step; });
    preempt(victim);
    if (victim == s) return false;
  }
  return true;
}

std::optional<StepPlan> SchedulerCore::plan_continuous(Clock::time_point now) {
  StepPlan plan;
  int64_t budget = cfg_.max_num_batched_tokens;
  const size_t max_seqs = size_t(max_seqs_this_step());
  bool preempted = false;
  std::stable_sort(running_.begin(), running_.end(), runs_before_);
  // With TPOT targets, the sequences decoding now are what they protect: the step may take
  // the tightest of their allowances (target plus banked time), and prefill chunks (and
  // newcomers) get only the time the step-time model says is left after the decodes.
  const StepShape decodes_now = decode_shape(true);
  StepShape decodes = decodes_now;
  const double tpot = tightest_tpot(true, now);
  double room_ms = kNoTarget;
  if (tpot != kNoTarget && decodes.tokens > 0) room_ms = tpot - step_time_.predict(decodes);
  // Caps a prefill chunk of `s` to the room left, and takes its time from the room.
  auto fit_chunk = [&](int64_t start, int64_t n) {
    if (n <= 1 || room_ms == kNoTarget) return n;
    n = step_time_.max_chunk_within(room_ms, start, n);
    if (n > 0) room_ms -= step_time_.chunk_ms(start, n);
    return n;
  };
  for (size_t i = 0; i < running_.size() && budget > 0 && plan.seqs.size() < max_seqs; ++i) {
    SequencePtr s = running_[i];
    if (s->in_step) continue;
    const int64_t n = fit_chunk(s->num_computed,
                                std::min<int64_t>(int64_t(s->tokens.size()) - s->num_computed, budget));
    if (n <= 0) continue;
    const size_t before = running_.size();
    const bool ok = grow_or_preempt(s, n);
    preempted = preempted || running_.size() != before;
    if (!ok) break;  // s was the lowest-priority sequence left: nothing after it runs
    add_step(plan, s, n);
    budget -= n;
  }
  // New sequences join only when no one was preempted this step (vLLM's rule: memory is
  // tight, admitting more would just thrash).
  while (!preempted && budget > 0 && !waiting_.empty() && plan.seqs.size() < max_seqs &&
         int64_t(running_.size()) < cfg_.max_num_seqs) {
    SequencePtr s = waiting_.front();
    int64_t first_chunk = budget;
    // Another decoding sequence must not push the decodes past the running ones' target,
    // nor past its own once it decodes.
    const double limit = std::min(tpot, target_or_none(s->slo_tpot_ms));
    if (limit != kNoTarget) {
      StepShape more = decodes;
      more += chunk_shape(int64_t(s->tokens.size()), 1);
      // (With no one decoding it runs anyway: a target no step can meet must not stall the
      // queue; it is just missed.)
      if (decodes.tokens > 0 && step_time_.predict(more) > limit) break;
      if (room_ms != kNoTarget) {
        const int64_t start = blocks_.match_prefix(s->tokens);
        first_chunk = fit_chunk(start, std::min<int64_t>(budget, int64_t(s->tokens.size()) - start));
        if (first_chunk <= 0) break;
      }
      decodes = more;
    }
    // (prompt_logprobs needs every prompt position computed: no prefix-cache hits, as vLLM.)
    auto cached = blocks_.allocate_prompt(s->id, s->tokens, first_chunk, !s->wants_prompt_logprobs());
    if (!cached) break;
    waiting_.pop_front();
    start_running(s, *cached, now);
    const int64_t n = std::min<int64_t>(int64_t(s->tokens.size()) - s->num_computed, first_chunk);
    add_step(plan, s, n);
    budget -= n;
  }
  if (plan.seqs.empty()) return std::nullopt;
  if (spec_) {
    // Draft tokens are verified in this step too: under a TPOT target, only as many as the
    // time left allows (verification rows cost what prefill rows at that context do).
    if (room_ms != kNoTarget && decodes_now.tokens > 0)
      budget = std::min<int64_t>(
          budget, step_time_.max_chunk_within(room_ms, int64_t(decodes_now.context / decodes_now.tokens), budget));
    plan_drafts(plan, budget);
  }
  return plan;
}

// Speculation rides on what is left of the step after the policy above: decoding
// sequences may get KV slots for drafts from the leftover token budget and free blocks,
// never by preempting anyone, so requests without speculation are scheduled exactly as
// before. The controller decides how many (spec/controller.h).
void SchedulerCore::plan_drafts(StepPlan& plan, int64_t budget) {
  std::vector<spec::Candidate> cands;
  std::vector<size_t> where;
  int64_t base_tokens = 0, base_outputs = 0;
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const PlannedSeq& p = plan.seqs[i];
    base_tokens += int64_t(p.step.tokens.size());
    base_outputs += p.sample ? 1 : 0;
    Sequence& s = *find(p.seq_id());
    // Decoding (one new token, reaching the end) and allowed to speculate.
    if (!p.sample || s.spec.k_max <= 0 || p.step.tokens.size() != 1 || s.finished || s.aborted()) continue;
    const int64_t L = int64_t(s.tokens.size());
    // No more drafts than tokens it may still produce (the step adds one more of its own),
    // and drafts must fit the model's positions.
    const int64_t cap = std::min<int64_t>(s.params.max_tokens - s.num_generated() - 1, s.max_model_len - L);
    if (cap <= 0) continue;
    cands.push_back({&s.spec, int32_t(std::min<int64_t>(cap, s.spec.k_max)),
                     std::max<int64_t>(1, L - s.spec.draft_pos)});
    where.push_back(i);
  }
  if (cands.empty()) return;
  std::vector<int32_t> k;
  spec_->plan(cands, base_tokens, base_outputs, budget, k);
  for (size_t j = 0; j < cands.size(); ++j) {
    PlannedSeq& p = plan.seqs[where[j]];
    int32_t kk = k[j];
    // Slots for the drafts after the one already reserved for the last token; fewer if
    // the pool is short (no preemption for drafts).
    while (kk > 0 && !blocks_.append_slots(p.seq_id(), 1 + kk)) --kk;
    cands[j].st->planned_k = kk;
    if (kk == 0) cands[j].st->probing = false;
    p.num_draft_slots = kk;
    if (kk > 0) {
      p.step.block_table = blocks_.block_table(p.seq_id());
      attach_context(p, *find(p.seq_id()));  // the proposer reads the whole context
    }
    stats_.spec.record_plan(kk);
  }
}

bool SchedulerCore::static_batch_done() const {
  return std::all_of(running_.begin(), running_.end(),
                     [](const SequencePtr& s) { return s->finished || s->aborted(); });
}

// The naive batcher, faithfully: wait up to batch_wait_ms for up to max_num_seqs requests,
// prefill them together, decode in lockstep until every member is done (finished members
// keep their slot and keep computing padding, as HF generate does), then form the next.
std::optional<StepPlan> SchedulerCore::plan_static(Clock::time_point now,
                                                   std::optional<Clock::duration>* wait_hint) {
  StepPlan plan;
  if (running_.empty()) {
    if (waiting_.empty()) return std::nullopt;
    Clock::time_point oldest = waiting_.front()->enqueued;
    for (auto& s : waiting_) oldest = std::min(oldest, s->enqueued);
    const auto wait = std::chrono::milliseconds(cfg_.batch_wait_ms);
    if (int64_t(waiting_.size()) < cfg_.max_num_seqs && now - oldest < wait) {
      if (wait_hint) *wait_hint = wait - (now - oldest);
      return std::nullopt;
    }
    while (!waiting_.empty() && int64_t(running_.size()) < cfg_.max_num_seqs) {
      SequencePtr s = waiting_.front();
      auto cached = blocks_.allocate_prompt(s->id, s->tokens, std::numeric_limits<int64_t>::max(),
                                            !s->wants_prompt_logprobs());  // the whole prompt at once
      if (!cached) break;
      waiting_.pop_front();
      start_running(s, *cached, now);
      add_step(plan, s, int64_t(s->tokens.size()) - s->num_computed);
    }
  } else {
    for (size_t i = 0; i < running_.size(); ++i) {
      SequencePtr s = running_[i];
      if (s->finished) {  // padding keeps its slot busy, up to the model length
        if (int64_t(s->tokens.size()) >= s->max_model_len) continue;
        s->tokens.push_back(s->tokens.back());
      }
      const int64_t n = int64_t(s->tokens.size()) - s->num_computed;
      if (!grow_or_preempt(s, n)) break;
      add_step(plan, s, n);
    }
  }
  if (plan.seqs.empty()) return std::nullopt;
  return plan;
}

void SchedulerCore::complete(const StepPlan& plan, const StepResult& result, Clock::time_point now) {
  completed_at_ = now;
  steps_in_flight_--;  // (its sequences' in_step flags are cleared in the loops below)
  stats_.steps++;
  last_shape_ = StepShape{};
  observation_ = StepObservation{};
  observation_.step_id = plan.step_id;
  observation_.num_seqs = int64_t(plan.seqs.size());
  observation_.forward_ms = result.forward_ms;
  observation_.sample_ms = result.sample_ms;
  observation_.draft_ms = result.draft.total_ms;
  observation_.error = result.error;
  if (!result.error.empty()) {
    // The backend rejected the step (it validates everything it is given): fail exactly the
    // sequences in it, keep serving the rest.
    for (const auto& p : plan.seqs)
      if (Sequence* s = find(p.seq_id())) {
        s->in_step = false;
        if (!s->finished) finish(*s, FinishReason::Error, ErrorKind::Internal, result.error);
      }
    return;
  }
  size_t next_outcome = 0, next_prompt = 0;
  int64_t step_tokens = 0, step_drafts = 0, outputs = 0, produced = 0, accepted = 0, prefill = 0;
  bool decode_only = true;  // every sequence computed one token (+ drafts): a decode/verify step
  for (const auto& p : plan.seqs) {
    const SeqOutcome* outcome = p.sample ? &result.outcomes.at(next_outcome++) : nullptr;
    // (In plan order, matched by id: the plan kept for completion does not carry prompt_targets.)
    const SeqPromptLogprobs* prompt_lps = next_prompt < result.prompt_logprobs.size() &&
                                                  result.prompt_logprobs[next_prompt].seq_id == p.seq_id()
                                              ? &result.prompt_logprobs[next_prompt++]
                                              : nullptr;
    const int64_t n = int64_t(p.step.tokens.size());
    step_tokens += n + (outcome ? outcome->num_drafts : 0);
    last_shape_ += chunk_shape(p.step.start_pos, n + (outcome ? outcome->num_drafts : 0));
    step_drafts += outcome ? outcome->num_drafts : 0;
    accepted += outcome ? outcome->accepted_drafts : 0;
    outputs += outcome ? 1 : 0;
    produced += outcome ? int64_t(outcome->tokens.size()) : 0;
    decode_only = decode_only && n == 1;
    auto it = by_id_.find(p.seq_id());
    if (it == by_id_.end()) continue;
    Sequence& s = *it->second;
    s.in_step = false;
    if (!blocks_.has_sequence(s.id)) continue;  // preempted after planning (cannot happen today)
    if (s.kv_stale) {  // computed over KV that was lost meanwhile: drop it, start over
      s.kv_stale = false;
      preempt(it->second);
      continue;
    }
    if (prompt_lps) s.prompt_logprobs.insert(s.prompt_logprobs.end(), prompt_lps->entries.begin(), prompt_lps->entries.end());
    if (p.num_draft_slots > 0) {
      complete_speculative(s, *outcome);
      continue;
    }
    const int64_t before = s.num_computed;
    s.num_computed += n;
    blocks_.commit_tokens(s.id, std::span<const int32_t>(s.tokens.data(), size_t(s.num_computed)));
    const int64_t prompt_part = std::min(s.num_computed, s.prompt_len) - std::min(before, s.prompt_len);
    s.usage.computed_prompt_tokens += prompt_part;
    stats_.prompt_tokens_computed += prompt_part;
    prefill += prompt_part;
    if (outcome && !s.aborted() && !s.finished) emit_tokens(s, *outcome);
  }
  observation_.num_tokens = step_tokens;
  if (prefill > 0) stats_.prefill_forward_ms_total += result.forward_ms;
  stats_.slo.record_step(step_tokens);
  observation_.num_prefill_tokens = prefill;
  observation_.num_outputs = outputs;
  observation_.num_generated = produced;
  observation_.num_draft_tokens = step_drafts;
  observation_.num_accepted = accepted;
  if (spec_) {
    const bool drafted = !result.draft.passes.empty() || result.draft.total_ms > 0;
    spec_->observe_step(decode_only ? step_tokens : 0, result.forward_ms, drafted ? &result.draft : nullptr);
    if (decode_only)
      spec_->observe_outcome(outputs, step_drafts > 0, produced,
                             result.forward_ms + result.sample_ms + result.draft.total_ms);
    if (step_drafts > 0) stats_.spec.spec_steps++;
    if (drafted) {
      stats_.spec.draft_passes += int64_t(result.draft.passes.size());
      stats_.spec.draft_ms_total += result.draft.total_ms;
    }
  }
}

// A decode step that had draft slots: the last token and the accepted drafts now have KV;
// the slots of rejected (or never proposed) drafts are rolled back, freeing blocks past
// the new end, so the next step overwrites them (and the prefix cache never sees them).
void SchedulerCore::complete_speculative(Sequence& s, const SeqOutcome& o) {
  const int64_t L = int64_t(s.tokens.size());  // the last token is at L - 1
  spec_->observe_proposal(s.spec, o.num_drafts > 0);
  if (o.num_drafts > 0) {
    spec_->observe_seq(s.spec, o.num_drafts, o.accepted_drafts);
    stats_.spec.record_verify(o.num_drafts, o.accepted_drafts);
    s.usage.spec_num_drafts++;
    s.usage.spec_num_draft_tokens += o.num_drafts;
    s.usage.spec_num_accepted_tokens += o.accepted_drafts;
    // The draft model fed the last token and all drafts but the last one.
    s.spec.draft_pos = L + std::min(o.accepted_drafts, o.num_drafts - 1);
  }
  if (!s.aborted() && !s.finished) emit_tokens(s, o);
  s.num_computed = std::min<int64_t>(L + o.accepted_drafts, int64_t(s.tokens.size()));
  blocks_.commit_tokens(s.id, std::span<const int32_t>(s.tokens.data(), size_t(s.num_computed)));
  blocks_.truncate(s.id, s.num_computed);
}

void SchedulerCore::kv_lost() {
  std::vector<SequencePtr> start_over;
  for (const auto& s : running_) {
    if (s->finished || s->aborted()) continue;  // retired at the next step boundary anyway
    if (s->in_step) s->kv_stale = true;
    else start_over.push_back(s);
  }
  for (const auto& s : start_over) preempt(s);
  blocks_.forget_cached_prefixes();
}

void SchedulerCore::retire(const SequencePtr& s) {
  if (s->executor_has_context) released_.push_back(s->id);
  by_id_.erase(s->id);
}

std::vector<int64_t> SchedulerCore::take_released() {
  std::vector<int64_t> out;
  out.swap(released_);
  return out;
}

std::vector<SeqUpdate> SchedulerCore::take_updates() {
  std::vector<SeqUpdate> out;
  out.swap(updates_);
  update_index_.clear();
  return out;
}

SeqUpdate& SchedulerCore::update_for(int64_t id) {
  auto [it, fresh] = update_index_.try_emplace(id, updates_.size());
  if (fresh) updates_.emplace_back().request_id = id;
  return updates_[it->second];
}

// Appends new tokens until one ends the sequence: an end-of-sequence or stop id (not part
// of the output), max_tokens or the model length. Stop strings are the output stage's
// (it answers with a FinishRequest).
void SchedulerCore::emit_tokens(Sequence& s, const SeqOutcome& o) {
  const std::vector<int32_t>& tokens = o.tokens;
  send_prompt_logprobs(s);  // with the first token
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t token = tokens[i];
    if (is_stop_token(s.params, s.eos_ids, token)) {
      finish(s, FinishReason::Stop);
      return;
    }
    s.tokens.push_back(token);
    if (s.first_token == Clock::time_point{}) {
      s.first_token = completed_at_;
      observe_first_token(s);
    }
    s.usage.completion_tokens++;
    stats_.generated_tokens++;
    SeqUpdate& u = update_for(s.id);
    u.token_ids.push_back(token);
    if (i < o.logprobs.size()) u.logprobs.push_back(o.logprobs[i]);
    if (s.num_generated() >= s.params.max_tokens || int64_t(s.tokens.size()) >= s.max_model_len) {
      finish(s, FinishReason::Length);
      return;
    }
  }
}

// Sends the prompt logprobs once all prompt positions have them (not a partial list for a
// request cancelled or failed during prefill).
void SchedulerCore::send_prompt_logprobs(Sequence& s) {
  if (!s.wants_prompt_logprobs() || int64_t(s.prompt_logprobs.size()) < s.prompt_len - 1) return;
  s.prompt_logprobs_sent = true;
  // One entry per prompt token: the first only names its token (rank 0: no logprob).
  auto& out = update_for(s.id).prompt_logprobs;
  out.reserve(size_t(s.prompt_len));
  out.push_back(TokenLogprobs{s.tokens[0], 0.0f, {}, 0});
  out.insert(out.end(), s.prompt_logprobs.begin(), s.prompt_logprobs.end());
  s.prompt_logprobs = {};
}

void SchedulerCore::finish(Sequence& s, FinishReason reason, ErrorKind kind, const std::string& error) {
  if (s.finished) return;
  s.finished = true;
  send_prompt_logprobs(s);  // (none were sent when it ends before its first token)
  SeqUpdate& u = update_for(s.id);
  u.finished = true;
  u.reason = reason;
  u.error_kind = kind;
  u.error = error;
  s.usage.prompt_tokens = s.prompt_len;
  u.usage = s.usage;
  u.queue_ms = s.admit_ms;
  if (s.first_scheduled != Clock::time_point{}) u.queue_ms += ms_between(s.enqueued, s.first_scheduled);
  if (reason == FinishReason::Cancelled) stats_.cancelled++;
  else if (reason == FinishReason::Error) stats_.failed += kind == ErrorKind::Overloaded ? 0 : 1;  // (SLO admission)
  else stats_.finished++;
  if (reason == FinishReason::Stop || reason == FinishReason::Length) {
    const int64_t budget = std::min<int64_t>(s.params.max_tokens, s.max_model_len - s.prompt_len);
    if (budget > 0) output_share_ += 0.05 * (std::min(1.0, double(s.num_generated()) / double(budget)) - output_share_);
  }
  u.slo = account_slo(s, reason);
}

// Goodput: a request that ended normally met its targets if its first token came within
// the TTFT target (admission time included) and its tokens after that averaged within the
// TPOT target.
SloOutcome SchedulerCore::account_slo(const Sequence& s, FinishReason reason) {
  SloOutcome o;
  if ((s.slo_ttft_ms <= 0 && s.slo_tpot_ms <= 0) || (reason != FinishReason::Stop && reason != FinishReason::Length))
    return o;
  o.ttft_target_ms = std::max(0.0, s.slo_ttft_ms);
  o.tpot_target_ms = std::max(0.0, s.slo_tpot_ms);
  bool ttft_met = true, tpot_met = true;
  if (s.first_token != Clock::time_point{}) {
    o.ttft_ms = s.admit_ms + ms_between(s.enqueued, s.first_token);
    const int64_t n = s.num_generated();
    o.tpot_ms = n > 1 ? ms_between(s.first_token, Clock::now()) / double(n - 1) : 0;
    ttft_met = o.ttft_target_ms <= 0 || o.ttft_ms <= o.ttft_target_ms;
    tpot_met = o.tpot_target_ms <= 0 || o.tpot_ms <= o.tpot_target_ms;
  }
  o.met = ttft_met && tpot_met;
  stats_.slo.ttft_missed += !ttft_met;
  stats_.slo.tpot_missed += !tpot_met;
  (o.met ? stats_.slo.met : stats_.slo.missed)++;
  return o;
}

SchedulerStats SchedulerCore::stats() const {
  SchedulerStats st = stats_;
  st.running = int64_t(running_.size());
  st.waiting = int64_t(waiting_.size());
  st.kv = blocks_.stats();
  if (spec_) {
    st.spec.alpha_estimate = spec_->alpha_global();
    st.spec.cost_ratio = spec_->cost_ratio();
    st.spec.target_step_ms.clear();
    for (int64_t n = 1; n <= st.spec.max_k + 1; ++n)
      st.spec.target_step_ms.push_back(spec_->target_cost().predict(double(n)));
  }
  return st;
}

void SchedulerCore::record_step_time(double wall_ms, const StepResult& r) {
  if (r.error.empty() && last_shape_.tokens > 0) step_time_.observe(last_shape_, wall_ms);
  stats_.step_wall_ms_total += wall_ms;
  stats_.forward_ms_total += r.forward_ms;
  stats_.sample_ms_total += r.sample_ms;
}

}  // namespace troupe
