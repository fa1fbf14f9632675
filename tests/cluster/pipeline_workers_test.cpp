// Pipeline-parallel stages on `troupe worker` processes over CAF remoting (loopback): the
// head is a troupe::Engine in this process (what serve, generate and bench throughput
// build), the workers are real child processes. Outputs must equal the single-process
// engine's token for token; the handshake refuses another model and a second head.
#include <catch2/catch.hpp>

#include "actors/engine_harness.h"
#include "core/error.h"
#include "model/tokenizer_loader.h"
#include "test_util.h"
#include "worker_process.h"

using namespace troupe;
using troupe::test::Collector;
using troupe::test::greedy_request;
using troupe::test::WorkerProcess;

namespace {

std::vector<GenerateRequest> mixed_requests(int n, int vocab) {
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> prompt = {1};
    for (int j = 0; j < 2 + (i * 13) % 60; ++j) prompt.push_back(3 + (i * 37 + j * 11) % (vocab - 3));
    reqs.push_back(greedy_request(prompt, 4 + (i * 7) % 40));
  }
  return reqs;
}

EngineConfig config_for(const std::string& model) { return test::cluster_config(model, 256); }

// Runs `reqs` on `engine`: the first `alone` one at a time, then all of them at once.
std::vector<std::vector<int32_t>> run_on(Engine& engine, const std::vector<GenerateRequest>& reqs, size_t alone) {
  Collector col;
  std::vector<int64_t> ids;
  for (size_t i = 0; i < alone; ++i) {
    ids.push_back(engine.submit(reqs[i], col.sink()));
    col.wait_done(i + 1);
  }
  for (size_t i = 0; i < reqs.size(); ++i) ids.push_back(engine.submit(reqs[i], col.sink()));
  col.wait_done(alone + reqs.size());
  std::vector<std::vector<int32_t>> out;
  for (size_t i = 0; i < alone; ++i) {
    const auto a = col.get(ids[i]), b = col.get(ids[alone + i]);
    INFO("request " << i << ": " << a.final_event.error);
    CHECK(a.ids == b.ids);  // alone and batched agree
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    const auto o = col.get(ids[alone + i]);
    INFO("request " << i << ": " << o.final_event.error);
    CHECK(o.final_event.finish_reason == FinishReason::Length);
    out.push_back(o.ids);
  }
  return out;
}

}  // namespace

TEST_CASE("two worker processes and local+worker pipelines give the single-process tokens",
          "[cluster][pipeline]") {
  const std::string dir = test::temp_dir("cluster_pipeline");
  WorkerProcess w1(dir + "/w1.log"), w2(dir + "/w2.log");
  for (const char* rel : {"tinystories-656k", "stories260k/stories260K.gguf"}) {
    const std::string model = test::model_path(rel);
    INFO(rel);
    auto tok = load_tokenizer(model);
    const auto reqs = mixed_requests(32, int(tok->vocab_size()));
    const EngineConfig single = config_for(model);
    const auto reference = test::run_alone(single, reqs);

    for (std::vector<std::string> workers : {std::vector<std::string>{w1.address(), w2.address()},
                                             std::vector<std::string>{"local", w2.address()}}) {
      INFO("--pipeline-workers " << workers[0] << "," << workers[1]);
      EngineConfig ec = single;
      ec.cluster.pipeline_workers = workers;
      Engine engine(ec);
      REQUIRE(engine.cluster());
      CHECK(engine.cluster()->all_up());
      const auto got = run_on(engine, reqs, 4);
      for (size_t i = 0; i < reqs.size(); ++i) {
        INFO("request " << i);
        CHECK(got[i] == reference[i]);
      }
    }  // the engine goes: the workers release their stages for the next head
  }
  // An uneven split named explicitly, with one step in flight and with more steps in
  // flight than stages (the default above is one per stage).
  const std::string model = test::model_path("stories260k/stories260K.gguf");
  auto tok = load_tokenizer(model);
  const auto reqs = mixed_requests(8, int(tok->vocab_size()));
  const auto reference = test::run_alone(config_for(model), reqs);
  for (int64_t depth : {1, 5}) {
    INFO("--pipeline-depth " << depth);
    EngineConfig ec = config_for(model);
    ec.cluster.pipeline_workers = {w1.address(), "local", w2.address()};
    ec.cluster.pipeline_layers = "0:1,1:4,4:5";
    ec.cluster.pipeline_depth = depth;
    Engine engine(ec);
    CHECK(run_on(engine, reqs, 0) == reference);
  }
}

// The head's --kv-cache-dtype travels in HostStage: stages and replicas on worker processes
// build their pools with it, so a 16-bit or int8 cache gives the single-process tokens of
// that cache (not of an f32 one).
TEST_CASE("a non-f32 KV cache runs on pipeline stages and replicas", "[cluster][kv-dtype]") {
  const std::string dir = test::temp_dir("cluster_kv_dtype");
  WorkerProcess w1(dir + "/w1.log"), w2(dir + "/w2.log");
  const std::string model = test::model_path("tinystories-656k");
  auto tok = load_tokenizer(model);
  const auto reqs = mixed_requests(8, int(tok->vocab_size()));
  for (KvDtype dtype : {KvDtype::Int8, KvDtype::F16}) {
    INFO("--kv-cache-dtype " << kv_dtype_name(dtype));
    EngineConfig single = config_for(model);
    single.kv.dtype = dtype;
    const auto reference = test::run_alone(single, reqs);
    EngineConfig piped = single;
    piped.cluster.pipeline_workers = {w1.address(), w2.address()};
    // Every stage or replica reports its pool's dtype in its backend name.
    const std::string kv = std::string("kv ") + std::string(kv_dtype_name(dtype));
    auto all_report = [&](Engine& engine) {
      for (const WorkerStatus& w : engine.cluster()->snapshot()) {
        INFO(w.address << ": " << w.detail);
        CHECK_THAT(w.detail, Catch::Contains(kv));
      }
    };
    {
      Engine engine(piped);
      all_report(engine);
      CHECK(run_on(engine, reqs, 0) == reference);
    }
    EngineConfig replicas = single;
    replicas.cluster.replica_workers = {"local", w1.address()};
    Engine engine(replicas);
    all_report(engine);
    CHECK(run_on(engine, reqs, 0) == reference);
  }
}

TEST_CASE("the handshake refuses another model and a second head", "[cluster][handshake]") {
  const std::string dir = test::temp_dir("cluster_handshake");
  // This worker has stories260K where the head names TinyStories-656K.
  WorkerProcess other(dir + "/other.log", {"--model", test::model_path("stories260k/stories260K.gguf")});
  EngineConfig ec = config_for(test::model_path("tinystories-656k"));
  ec.cluster.pipeline_workers = {"local", other.address()};
  try {
    Engine engine(ec);
    FAIL("a worker with another model was accepted");
  } catch (const Error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK_THAT(msg, Catch::Contains("stage 1 (layers 1:2) on " + other.address() + " is refused"));
    CHECK_THAT(msg, Catch::Contains("model differs: head has llama, 2 layers"));
    CHECK_THAT(msg, Catch::Contains("worker has llama, 5 layers"));
  }

  WorkerProcess w(dir + "/w.log");
  ec.cluster.pipeline_workers = {"local", w.address()};
  auto first = std::make_unique<Engine>(ec);
  EngineConfig second = ec;
  second.cluster.worker_timeout_s = 2;
  try {
    Engine engine(second);
    FAIL("a second head was accepted");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK_THAT(e.what(), Catch::Contains("worker busy"));
  }
  first.reset();  // the worker serves the next head once the first is gone
  Engine again(ec);
  CHECK(again.cluster()->all_up());

  try {
    EngineConfig bad = ec;
    bad.cluster.pipeline_layers = "0:1,2:2";
    Engine engine(bad);
    FAIL("a gap in --pipeline-layers was accepted");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("contiguous"));
  }
}

TEST_CASE("troupe generate --pipeline-workers prints the single-process JSON result", "[cluster][cli]") {
  const std::string dir = test::temp_dir("cluster_cli");
  WorkerProcess w(dir + "/w.log");
  const std::string common = test::troupe_bin() + " generate --model " + test::model_path("tinystories-656k") +
                             " --prompt 'Once upon a time' --max-tokens 24 --temperature 0 --json";
  const auto single = test::run_command("(" + common + " 2>/dev/null)");  // stdout alone
  const auto piped = test::run_command("(" + common + " --pipeline-workers local," + w.address() + " 2>/dev/null)");
  REQUIRE(single.status == 0);
  REQUIRE(piped.status == 0);
  // stdout is the JSON alone (logs go to stderr); the token ids agree.
  const auto ids = [](const std::string& out) { return out.substr(out.find("\"token_ids\""), out.find("\"text\"") - out.find("\"token_ids\"")); };
  INFO(piped.out);
  CHECK(piped.out.front() == '{');
  CHECK(ids(piped.out) == ids(single.out));
}
