#pragma once
// `bench serve` across request rates: the rate list, and a plot of goodput, p95 TTFT and
// p95 TPOT against the rate for one or more sweeps (e.g. SLO-aware scheduling against
// fixed token budgets, each a server of its own).
#include <boost/json.hpp>

#include <string>
#include <vector>

namespace troupe::app {

// "2,4,8,inf" -> {2, 4, 8, inf}; each rate > 0. Throws std::invalid_argument naming the bad one.
std::vector<double> parse_rates(const std::string& list);
// A `bench serve --json` file (a sweep or a single rate).
boost::json::object read_sweep_json(const std::string& path);
// One line per sweep (its "label"), the rates on a categorical x axis (inf included).
void plot_rate_sweep(const std::vector<boost::json::object>& sweeps, const std::string& png_path);

}  // namespace troupe::app
