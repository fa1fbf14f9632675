#include "app/bench_sweep.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "app/bench_stats.h"
#include "core/error.h"

namespace troupe::app {

namespace json = boost::json;

std::vector<double> parse_rates(const std::string& list) {
  std::vector<double> rates;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) {
    char* end = nullptr;
    const double r = item == "inf" ? INFINITY : std::strtod(item.c_str(), &end);
    if (item.empty() || (item != "inf" && (end == item.c_str() || *end != '\0')) || !(r > 0))
      throw std::invalid_argument("request rates must be positive numbers or inf, got '" + item + "'");
    rates.push_back(r);
  }
  if (rates.empty()) throw std::invalid_argument("no request rate given");
  return rates;
}

json::object read_sweep_json(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    json::value v = json::parse(ss.str());
    if (!v.is_object() || !v.as_object().contains("runs")) fail("{} is not a `bench serve --json` file", path);
    return v.as_object();
  } catch (const std::exception& e) {
    fail("cannot read {}: {}", path, e.what());
  }
}

namespace {

double number(const json::object& o, const char* a, const char* b = nullptr) {
  const json::value* v = o.if_contains(a);
  if (v && b) v = v->is_object() ? v->as_object().if_contains(b) : nullptr;
  return v && v->is_number() ? v->to_number<double>() : NAN;
}

std::string rate_of(const json::object& run) {
  const json::value& r = run.at("request_rate");
  if (r.is_string()) return std::string(r.as_string());
  std::ostringstream s;
  s << r.to_number<double>();
  return s.str();
}

}  // namespace

void plot_rate_sweep(const std::vector<json::object>& sweeps, const std::string& png_path) {
  // One data block per sweep (gnuplot's `index`): rate, goodput, TTFT p95, TPOT p95.
  std::ostringstream d;
  for (const auto& s : sweeps) {
    d << "# " << json::serialize(s.at("label")) << "\n";
    for (const auto& run : s.at("runs").as_array()) {
      const json::object& r = run.as_object();
      const double good = number(r, "goodput_requests_per_s");
      d << rate_of(r) << " " << (std::isnan(good) ? number(r, "requests_per_s") : good) << " "
        << number(r, "ttft_ms", "p95") << " " << number(r, "tpot_ms", "p95") << "\n";
    }
    d << "\n\n";
  }
  const json::object& first = sweeps.front();
  const double slo_ttft = number(first, "slo_ttft_ms"), slo_tpot = number(first, "slo_tpot_ms");
  run_gnuplot(png_path, d.str(), [&](const std::string& dat) {
    std::ostringstream f;
    f << "set terminal pngcairo size 1500,450\nset output '" << png_path << "'\n"
      << "set multiplot layout 1,3\nset grid\nset key top left\nset xlabel 'request rate (req/s)'\n"
      << "set datafile missing 'nan'\n";
    auto plot = [&](const char* title, int col, double slo) {
      f << "set title '" << title << "'\n";
      if (!std::isnan(slo) && slo > 0) f << "set arrow from graph 0, first " << slo << " to graph 1, first " << slo
                                         << " nohead dt 2 lc rgb '#aa3333'\n";
      f << "plot ";
      for (size_t i = 0; i < sweeps.size(); ++i) {
        std::string label(sweeps[i].at("label").as_string());
        for (char& c : label)
          if (c == '\'') c = '"';
        f << (i ? ", " : "") << "'" << dat << "' index " << i << " using 0:" << col << ":xtic(1) with linespoints title '"
          << label << "'";
      }
      f << "\nunset arrow\n";
    };
    plot("goodput (requests/s within the SLOs)", 2, NAN);
    plot("TTFT p95 (ms)", 3, slo_ttft);
    plot("TPOT p95 (ms)", 4, slo_tpot);
    f << "unset multiplot\n";
    return f.str();
  });
}

}  // namespace troupe::app
