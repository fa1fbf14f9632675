#include "actors/remote/pipeline_stages.h"

#include <fmt/format.h>

#include "actors/remote/model_identity.h"
#include "actors/remote/worker_link.h"
#include "actors/executor.h"
#include "actors/replica_router.h"
#include "actors/scheduler.h"
#include "actors/shard.h"
#include "actors/stage_chain.h"
#include "backends/backend_factory.h"
#include "core/error.h"
#include "grammar/token_mask.h"
#include "model/quantized_checkpoint.h"
#include "model/tokenizer_loader.h"

namespace troupe {

namespace {

int64_t parse_layer(const std::string& text, const std::string& spec) {
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < 0) fail("--pipeline-layers '{}': '{}' is not a layer number", spec, text);
  return v;
}

BackendOptions local_options(const EngineConfig& cfg, int64_t num_blocks, LayerRange layers) {
  BackendOptions bo;
  bo.num_threads = cfg.threads;
  bo.block_size = cfg.kv.block_size;
  bo.num_blocks = num_blocks;
  bo.kv_dtype = cfg.kv.dtype;
  bo.quantization = cfg.quantization;
  bo.layers = layers;
  return bo;
}

// What the link to the worker at `where` asks it to host (the caller sets the role).
WorkerLinkSpec link_spec(const EngineConfig& cfg, const std::string& where, int32_t index,
                         const ModelIdentity& identity, int64_t num_blocks) {
  WorkerLinkSpec spec;
  std::tie(spec.host, spec.port) = parse_host_port(where);
  spec.stage = index;
  spec.timeout_s = cfg.cluster.worker_timeout_s;
  spec.tls = cfg.cluster.tls.enabled();
  HostStage& h = spec.request;
  h.model = cfg.model;
  h.expect = identity;
  h.quantization = std::string(quant::method_name(cfg.quantization.method));
  h.group_size = cfg.quantization.group_size;
  h.lm_head = std::string(quant::lm_head_name(cfg.quantization.lm_head));
  h.num_blocks = num_blocks;
  h.block_size = cfg.kv.block_size;
  h.kv_cache_dtype = std::string(kv_dtype_name(cfg.kv.dtype));
  return spec;
}

void wait_until_up(const std::shared_ptr<ClusterStatus>& status, const std::vector<caf::actor>& owned,
                   double timeout_s, const char* what) {
  std::string why;
  if (status->wait_all_up(std::chrono::milliseconds(int64_t(timeout_s * 1000)), &why)) return;
  for (auto& a : owned) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  fail("{}: {}", what, why);
}

}  // namespace

std::vector<LayerRange> split_layers(int64_t num_layers, size_t stages, const std::string& spec) {
  if (stages == 0) fail("a pipeline needs at least one stage");
  if (int64_t(stages) > num_layers)
    fail("{} pipeline stages for a model of {} layers: every stage needs a layer", stages, num_layers);
  std::vector<LayerRange> out;
  if (spec.empty()) {
    const int64_t base = num_layers / int64_t(stages), extra = num_layers % int64_t(stages);
    int64_t begin = 0;
    for (size_t i = 0; i < stages; ++i) {
      const int64_t n = base + (int64_t(i) < extra ? 1 : 0);
      out.push_back({begin, begin + n});
      begin += n;
    }
    return out;
  }
  size_t pos = 0;
  while (pos <= spec.size()) {
    const size_t comma = std::min(spec.find(',', pos), spec.size());
    const std::string item = spec.substr(pos, comma - pos);
    const size_t colon = item.find(':');
    if (colon == std::string::npos) fail("--pipeline-layers '{}': '{}' is not BEGIN:END", spec, item);
    out.push_back({parse_layer(item.substr(0, colon), spec), parse_layer(item.substr(colon + 1), spec)});
    pos = comma + 1;
  }
  if (out.size() != stages)
    fail("--pipeline-layers '{}' has {} ranges for {} --pipeline-workers", spec, out.size(), stages);
  int64_t expect = 0;
  for (const LayerRange& r : out) {
    if (r.begin != expect || r.end <= r.begin)
      fail("--pipeline-layers '{}': ranges must be contiguous and non-empty from 0 (expected {}:..., got {}:{})",
           spec, expect, r.begin, r.end);
    expect = r.end;
  }
  if (expect != num_layers) fail("--pipeline-layers '{}' ends at layer {}; the model has {}", spec, expect, num_layers);
  return out;
}

PipelineStages start_pipeline_stages(caf::actor_system& sys, const EngineConfig& cfg, const ModelWeights& weights,
                                     int64_t num_blocks) {
  // Every stage holds `num_blocks` blocks for its own layers: the caller's one KV shape
  // (the head's scheduler allocates blocks for all stages at once).
  const ClusterConfig& cc = cfg.cluster;
  const ModelConfig& mc = weights.config;
  const auto ranges = split_layers(mc.num_layers, cc.pipeline_workers.size(), cc.pipeline_layers);
  const ModelIdentity identity = model_identity(weights, cfg.quantization);

  PipelineStages p;
  std::vector<WorkerStatus> rows;
  std::vector<std::string> names;
  for (size_t i = 0; i < ranges.size(); ++i) {
    const std::string& where = cc.pipeline_workers[i];
    rows.push_back({where, fmt::format("stage {} (layers {}:{})", i, ranges[i].begin, ranges[i].end),
                    WorkerState::Connecting, "", 0, 0});
    names.push_back(where == "local" ? "local" : "worker " + where);
  }
  p.status = std::make_shared<ClusterStatus>(rows, true);
  p.chain = spawn_stage_chain(sys, names);
  p.owned.push_back(caf::actor_cast<caf::actor>(p.chain));

  for (size_t i = 0; i < ranges.size(); ++i) {
    const std::string& where = cc.pipeline_workers[i];
    if (where == "local") {
      std::shared_ptr<Backend> backend = make_backend(load_checkpoint(cfg.model), local_options(cfg, num_blocks, ranges[i]));
      p.status->set(i, WorkerState::Up, backend->name());
      shard_actor shard = spawn_shard(sys, std::move(backend));
      p.owned.push_back(caf::actor_cast<caf::actor>(shard));
      caf::anon_send(p.chain, StageUp{int32_t(i), shard, false});
      continue;
    }
    WorkerLinkSpec spec = link_spec(cfg, where, int32_t(i), identity, num_blocks);
    spec.request.layers = ranges[i];
    p.owned.push_back(spawn_worker_link(sys, std::move(spec), caf::actor_cast<caf::actor>(p.chain), p.status));
  }
  wait_until_up(p.status, p.owned, cc.worker_timeout_s, "pipeline");
  return p;
}

ReplicaSet start_replicas(caf::actor_system& sys, const EngineConfig& cfg, const ModelWeights& weights,
                          int64_t num_blocks, const SchedulerConfig& sched) {
  const ClusterConfig& cc = cfg.cluster;
  const ModelIdentity identity = model_identity(weights, cfg.quantization);
  ReplicaSet r;
  std::vector<WorkerStatus> rows;
  std::vector<std::string> names;
  for (size_t i = 0; i < cc.replica_workers.size(); ++i) {
    const std::string& where = cc.replica_workers[i];
    rows.push_back({where, fmt::format("replica {}", i), WorkerState::Connecting, "", 0, 0});
    names.push_back(where == "local" ? "local" : "worker " + where);
  }
  r.status = std::make_shared<ClusterStatus>(rows, false);
  r.router = spawn_replica_router(sys, names, cfg.kv.block_size, r.status);
  r.owned.push_back(caf::actor_cast<caf::actor>(r.router));
  const auto as_output = caf::actor_cast<output_actor>(r.router);  // replicas send it their StepUpdates
  for (size_t i = 0; i < cc.replica_workers.size(); ++i) {
    const std::string& where = cc.replica_workers[i];
    if (where == "local") {
      std::shared_ptr<Backend> backend = make_backend(load_checkpoint(cfg.model), local_options(cfg, num_blocks, {}));
      const KvCacheShape kv = backend->kv_shape();
      r.status->set(i, WorkerState::Up, backend->name());
      shard_actor shard = spawn_shard(sys, std::move(backend));
      step_actor executor =
          spawn_executor(sys, shard, {}, grammar::TokenTable::from_tokenizer(*load_tokenizer(cfg.model)));
      scheduler_actor scheduler = spawn_scheduler(sys, sched, kv);
      caf::anon_send(scheduler, SchedulerLinks{executor, step_actor{}, as_output, admission_actor{}, {}});
      for (caf::actor a : {caf::actor_cast<caf::actor>(shard), caf::actor_cast<caf::actor>(executor),
                           caf::actor_cast<caf::actor>(scheduler)})
        r.owned.push_back(a);
      caf::anon_send(r.router, ReplicaUp{int32_t(i), scheduler});
      continue;
    }
    WorkerLinkSpec spec = link_spec(cfg, where, int32_t(i), identity, num_blocks);
    spec.request.replica = true;
    spec.request.scheduler = sched;
    spec.request.output = as_output;
    r.owned.push_back(spawn_worker_link(sys, std::move(spec), caf::actor_cast<caf::actor>(r.router), r.status));
  }
  wait_until_up(r.status, r.owned, cc.worker_timeout_s, "replicas");
  return r;
}

}  // namespace troupe
