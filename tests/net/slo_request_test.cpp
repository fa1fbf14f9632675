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

// Per-request attainment: the response says how the request fared against its own targets
// (the scheduler's judgement, the one goodput counts), and /metrics keeps the distribution
// of time / target per request.
TEST_CASE("per-request SLOs: each response reports its attainment", "[net][slo]") {
  auto daemon = own_daemon([](ServerOptions&, EngineConfig& ec) {
    ec.scheduler.slo_min_tpot_ms = 0.001;  // lets a request ask for an impossible TPOT
    ec.scheduler.slo_min_ttft_ms = 60000;
  });
  Daemon& d = *daemon;
  auto body_with = [](const std::string& slo, bool stream) {
    return std::string(R"({"prompt": "Once upon a time", "max_tokens": 8, "ignore_eos": true, "temperature": 0, )") +
           (stream ? R"("stream": true, )" : "") + R"("slo": )" + slo + "}";
  };

  const auto loose = d.post("/v1/completions", body_with(R"({"tpot_ms": 60000, "ttft_ms": 60000})", false));
  REQUIRE(loose.status == 200);
  const json::object s = json::parse(loose.body).at("slo").as_object();
  CHECK(s.at("met").as_bool());
  CHECK(s.at("ttft_target_ms").to_number<double>() == 60000);
  CHECK(s.at("tpot_target_ms").to_number<double>() == 60000);
  CHECK(s.at("ttft_ms").to_number<double>() > 0);
  CHECK(s.at("ttft_ms").to_number<double>() < 60000);
  CHECK(s.at("tpot_ms").to_number<double>() > 0);

  // 1 µs per token cannot be met: the response says so, with the time it took.
  const auto tight = d.post("/v1/completions", body_with(R"({"tpot_ms": 0.001})", false));
  REQUIRE(tight.status == 200);
  const json::object t = json::parse(tight.body).at("slo").as_object();
  CHECK_FALSE(t.at("met").as_bool());
  CHECK(t.at("tpot_target_ms").to_number<double>() == Approx(0.001));
  CHECK(t.at("tpot_ms").to_number<double>() > 0.001);
  CHECK(t.at("ttft_target_ms").is_null());  // a floor is not a target: it had none

  // Without targets of its own on a server with none, there is nothing to report.
  const auto none = d.post("/v1/completions", R"({"prompt": "Once upon a time", "max_tokens": 4, "temperature": 0})");
  REQUIRE(none.status == 200);
  CHECK_FALSE(json::parse(none.body).as_object().contains("slo"));

  // Streamed: the choice's final chunk carries it.
  const auto streamed = d.post("/v1/completions", body_with(R"({"tpot_ms": 60000})", true));
  REQUIRE(streamed.status == 200);
  const size_t finish = streamed.body.find(R"("finish_reason":"length")");
  REQUIRE(finish != std::string::npos);
  CHECK(streamed.body.find(R"("slo":{"met":true)", finish) != std::string::npos);

  const std::string m = wait_metrics(d, [&](const std::string& text) {
    return metric_value(text, "troupe_slo_tpot_attainment_ratio_count" + label(d)) >= 3;
  });
  CHECK(metric_value(m, "troupe_slo_tpot_attainment_ratio_count" + label(d)) == 3);
  CHECK(metric_value(m, "troupe_slo_ttft_attainment_ratio_count" + label(d)) == 1);  // one had a TTFT target
  CHECK(metric_value(m, "troupe_slo_tpot_attainment_ratio_sum" + label(d)) > 1);  // the impossible one
  CHECK(metric_value(m, "troupe_slo_missed_requests_total" + label(d)) == 1);
}
