#pragma once
// How much faster continuous batching can be than static batching on a workload whose
// steps are compute-bound (a step's cost ~ the tokens in it, not the sequences).
//
// Static batching admits max_num_seqs requests in arrival order and runs until the longest
// of them finishes: a batch of outputs o_1..o_n takes max(o) steps, during which the
// finished sequences idle. Continuous batching refills those slots, so (with steps the
// same cost and the batch always full) it needs sum(o) / n steps per batch's worth of
// tokens. The throughput ratio is therefore at most
//     E[max of a batch's outputs] / E[mean output]
// (less in practice: prefill, partly filled last batches, steps that do cost more with
// more sequences). That keeps continuous batching's batch full, as an endless stream of
// requests would; a finite workload admitted first come, first served ends in a drain,
// which static_bound_finite counts: issue 19's 32 requests in 16 slots expect ~1.24x where
// the endless stream gives 1.78x (docs/benchmarks.md, session 35), and ~1.66x admitted
// longest output first (--schedule-policy lof, which keeps the batch full longer).
// static_estimate_with_prefill below counts the prompts.
#include <cstdint>
#include <span>

#include "config/scheduler_config.h"

namespace troupe {

// The bound on the workload's actual output lengths (in arrival order, cut into batches of
// `batch`): batch * sum over batches of max(batch) / sum of all outputs. 1 for an empty
// workload.
double static_bound_sampled(std::span<const int> output_lens, int64_t batch);

// Its expectation for a batch of `batch` outputs drawn independently and uniformly from
// the integers [lo, hi]: E[max] / ((lo + hi) / 2), with
// E[max] = hi - sum_{k=lo}^{hi-1} ((k - lo + 1) / (hi - lo + 1))^batch.
double static_bound_uniform(int lo, int hi, int64_t batch);

// Its expectation for `batch` outputs drawn with replacement from the given lengths (their
// empirical distribution; for workloads from a dataset).
double static_bound_empirical(std::span<const int> output_lens, int64_t batch);

// The same cost model (every step the same cost) for a finite workload that continuous
// batching admits in the order `policy` gives (arrival; or the longest output first):
// `batch` slots, and each request in that order takes the first slot to come free and
// holds it for its output's steps. Static batching's steps (the sum over batches, in
// arrival order, of their longest output) over that schedule's makespan. The forms above
// take the batch to stay full, as in an endless stream; a finite workload ends in a drain
// (after the last admission slots empty and none refill), which this one counts. 1 for an
// empty workload.
double static_bound_finite(std::span<const int> output_lens, int64_t batch, SchedulePolicy policy);

// Its mean over `draws` workloads of the same size as `output_lens`, each drawn with
// replacement from `pool` (a fixed seed, so the figure is the same every run).
double static_bound_finite_expected(std::span<const int> pool, size_t num_requests, int64_t batch, int draws,
                                    SchedulePolicy policy);

// The ratio once the prompts are counted, which both modes compute alike. Static batching's
// run splits into the forward time of its prefill steps, P (they carry no decodes), and of
// its decode steps, D. Continuous batching computes the same prompts and, with every step
// full and steps the same cost, needs D / bound of decode time:
//     (P + D) / (P + D / bound).
// An estimate, not a bound: continuous batching also puts decode rows into its prefill
// steps, where on a CPU whose batched steps are compute-bound a row costs what a prompt
// token costs, about half its cost in a decode step (~2% of issue 19's run). The prompts
// weigh far more: issue 19's workload (prompts of 32-256 tokens, outputs of 16-256) on the
// 110M model spends about as long in prefill as in continuous batching's decode steps, which
// takes the 2.05x bound of its output lengths to ~1.64-1.71x (docs/benchmarks.md, session 33).
double static_estimate_with_prefill(double bound, double prefill_ms, double decode_ms);

}  // namespace troupe
