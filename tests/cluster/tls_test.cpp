// Remoting over TLS with mutual certificate checks (CAF's OpenSSL module): a head and two
// workers with certificates from one CA serve exactly; a worker whose certificate another
// CA signed, and a worker without TLS, are refused. Certificates are made here (openssl req).
#include <catch2/catch.hpp>

#include <cstdlib>

#include "actors/engine_harness.h"
#include "core/error.h"
#include "model/tokenizer_loader.h"
#include "test_util.h"
#include "worker_process.h"

using namespace troupe;
using troupe::test::greedy_request;
using troupe::test::WorkerProcess;

namespace {

void sh(const std::string& cmd) {
  INFO(cmd);
  REQUIRE(std::system((cmd + " > /dev/null 2>&1").c_str()) == 0);
}

// A CA `name` in `dir` (name.pem, name.key) and a node certificate it signed (name-node.*).
TlsFiles make_ca_and_node(const std::string& dir, const std::string& name) {
  const std::string ca = dir + "/" + name, node = dir + "/" + name + "-node";
  sh("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=" + name + "-ca -keyout " + ca + ".key -out " + ca +
     ".pem");
  sh("openssl req -newkey rsa:2048 -nodes -subj /CN=" + name + "-node -keyout " + node + ".key -out " + node + ".csr");
  sh("openssl x509 -req -days 1 -in " + node + ".csr -CA " + ca + ".pem -CAkey " + ca + ".key -CAcreateserial -out " +
     node + ".pem");
  return TlsFiles{node + ".pem", node + ".key", ca + ".pem"};
}

std::vector<std::string> tls_args(const TlsFiles& t) {
  return {"--tls-cert", t.cert, "--tls-key", t.key, "--tls-ca", t.ca};
}

}  // namespace

TEST_CASE("TLS remoting: same CA serves exactly, another CA or plain TCP is refused", "[cluster][tls]") {
  const std::string dir = test::temp_dir("cluster_tls");
  const TlsFiles ours = make_ca_and_node(dir, "ours");
  const TlsFiles theirs = make_ca_and_node(dir, "theirs");
  const std::string model = test::model_path("tinystories-656k");
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 6; ++i) reqs.push_back(greedy_request({1, 20 + i, 300 + 7 * i, 45}, 12 + i));
  EngineConfig single;
  single.model = model;
  single.threads = 1;
  const auto reference = test::run_alone(single, reqs);

  WorkerProcess w1(dir + "/w1.log", tls_args(ours)), w2(dir + "/w2.log", tls_args(ours));
  CHECK_THAT(w1.log_text(), Catch::Contains("(TLS"));
  EngineConfig ec = single;
  ec.cluster.tls = ours;
  ec.cluster.worker_timeout_s = 60;
  {
    ec.cluster.pipeline_workers = {w1.address(), w2.address()};
    Engine engine(ec);
    test::Collector col;
    std::vector<int64_t> ids;
    for (const auto& r : reqs) ids.push_back(engine.submit(r, col.sink()));
    col.wait_done(reqs.size());
    for (size_t i = 0; i < reqs.size(); ++i) CHECK(col.get(ids[i]).ids == reference[i]);
  }

  WorkerProcess foreign(dir + "/foreign.log", tls_args(theirs));
  WorkerProcess plain(dir + "/plain.log");
  for (const WorkerProcess* w : {&foreign, &plain}) {
    EngineConfig bad = ec;
    bad.cluster.pipeline_workers = {"local", w->address()};
    bad.cluster.worker_timeout_s = 3;
    INFO(w->address());
    try {
      Engine engine(bad);
      FAIL("a worker without a certificate from our CA was accepted");
    } catch (const Error& e) {
      INFO(e.what());
      CHECK_THAT(e.what(), Catch::Contains("stage 1 (layers 1:2) on " + w->address() + " is connecting"));
    }
  }
  // And a head without a certificate from its CA cannot use a TLS worker.
  EngineConfig intruder = ec;
  intruder.cluster.tls = theirs;
  intruder.cluster.pipeline_workers = {"local", w1.address()};
  intruder.cluster.worker_timeout_s = 3;
  CHECK_THROWS_AS(Engine(intruder), Error);
}
