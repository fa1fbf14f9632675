#pragma once
// Speculative-decoding flags shared by `troupe generate` and `troupe bench throughput`, and
// the report of spec_decode metrics.
#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include "actors/engine.h"
#include "spec/metrics.h"

namespace troupe::app {

// --speculative-model PATH|self:int8|self:int4, --num-speculative-tokens K,
// --speculative-method draft|ngram, --ngram-min N, --ngram-max M, --no-adaptive-speculation,
// --speculative-min-gain, --speculative-draft-threads.
void add_speculative_options(CLI::App* cmd, SpeculativeConfig& cfg);

// (1 - alpha^(k+1)) / ((1 - alpha)(k c + 1)): the speedup speculation promises with
// per-token acceptance alpha, k drafts per step and draft/target cost ratio c.
double theoretical_speedup(double alpha, double k, double c);

// Mean k over decode steps of speculating sequences (k = 0 steps included).
double mean_k(const spec::SpecMetrics& m);

void print_spec_metrics(const spec::SpecMetrics& m);
boost::json::object spec_metrics_json(const spec::SpecMetrics& m);

}  // namespace troupe::app
