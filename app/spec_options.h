#pragma once
// The report of spec_decode metrics (the speculative-decoding flags are in config/flags.h).
#include <boost/json.hpp>

#include "spec/metrics.h"

namespace troupe::app {

// (1 - alpha^(k+1)) / ((1 - alpha)(k c + 1)): the speedup speculation promises with
// per-token acceptance alpha, k drafts per step and draft/target cost ratio c.
double theoretical_speedup(double alpha, double k, double c);

// Mean k over decode steps of speculating sequences (k = 0 steps included).
double mean_k(const spec::SpecMetrics& m);

void print_spec_metrics(const spec::SpecMetrics& m);
boost::json::object spec_metrics_json(const spec::SpecMetrics& m);

}  // namespace troupe::app
