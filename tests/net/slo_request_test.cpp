// A request's own latency targets (`slo`: {"ttft_ms", "tpot_ms"}) against a live daemon:
// refused with a 400 that says why when the server takes none or the target is tighter
// than its floor, accepted and counted in the SLO metrics otherwise.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "daemon.h"

using namespace troupe;
using namespace troupe::test;
namespace json = boost::json;

namespace {

HttpResponse complete_with(const Daemon& d, const std::string& slo) {
  return d.post("/v1/completions",
                R"({"prompt": "Once upon a time", "max_tokens": 4, "temperature": 0, "slo": )" + slo + "}");
}

std::string error_message(const HttpResponse& r) {
  return std::string(json::parse(r.body).at("error").at("message").as_string());
}

}  // namespace

TEST_CASE("per-request SLOs: a server without targets or floors refuses them, naming the flag", "[net][slo]") {
  auto daemon = own_daemon();
  const auto r = complete_with(*daemon, R"({"tpot_ms": 50})");
  REQUIRE(r.status == 400);
  CHECK_THAT(error_message(r), Catch::Contains("--slo-min-tpot-ms"));
  // Shapes are checked before that.
  for (const char* bad : {"5", R"({"ttft": 10})", R"({"tpot_ms": -1})", R"({"ttft_ms": "10"})", R"({"tpot_ms": 0})"}) {
    const auto b = complete_with(*daemon, bad);
    CHECK(b.status == 400);
    CHECK_THAT(b.body, Catch::Contains("slo"));
  }
  // No slo at all, or null: as before.
  CHECK(complete_with(*daemon, "null").status == 200);
}

TEST_CASE("per-request SLOs: within the server's floors they run and count toward goodput", "[net][slo]") {
  auto daemon = own_daemon([](ServerOptions&, EngineConfig& ec) {
    ec.scheduler.slo_min_tpot_ms = 20;
    ec.scheduler.slo_min_ttft_ms = 1000;
  });
  Daemon& d = *daemon;
  const auto tight = complete_with(d, R"({"tpot_ms": 10})");
  REQUIRE(tight.status == 400);
  CHECK_THAT(error_message(tight), Catch::Contains("at least 20 ms"));
  const auto tight_ttft = complete_with(d, R"({"ttft_ms": 999})");
  REQUIRE(tight_ttft.status == 400);
  CHECK_THAT(error_message(tight_ttft), Catch::Contains("at least 1000 ms"));

  // Loose targets (a minute) are met; a request without `slo` has none and is not counted.
  REQUIRE(complete_with(d, R"({"tpot_ms": 60000, "ttft_ms": 60000})").status == 200);
  REQUIRE(complete_with(d, R"({"tpot_ms": 60000})").status == 200);
  REQUIRE(complete_with(d, "null").status == 200);
  const std::string m = wait_metrics(d, [&](const std::string& text) {
    return metric_value(text, "troupe_slo_goodput_requests_total" + label(d)) >= 2;
  });
  CHECK(metric_value(m, "troupe_slo_goodput_requests_total" + label(d)) == 2);
  CHECK(metric_value(m, "troupe_slo_missed_requests_total" + label(d)) == 0);
}
