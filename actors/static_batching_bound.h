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
// more sequences).
#include <cstdint>
#include <span>

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

}  // namespace troupe
