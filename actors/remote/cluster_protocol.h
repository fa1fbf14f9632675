#pragma once
// What a head and a `troupe worker` say to each other over CAF remoting (on top of
// actors/protocol.h, whose stage messages - ShardStep, ShardOutput - then flow between the
// head's stage chain and the shards the worker hosts).
//
//   head (worker_link)  ──HostStage──▶  worker  ── spawns a shard over layers [a, b) ──┐
//                       ◀──Hosted{shard}──────────────────────────────────────────────┘
//   head (stage chain)  ──ShardStep{batch, hidden}──▶ shard ──ShardOutput{hidden|logits}──▶
//
// The handshake is the HostStage/Hosted pair: the worker refuses (Hosted::error) a request
// whose protocol version, model identity or quantization differ from its own, or that
// comes from a second head while it serves one.
#include <caf/all.hpp>
#include <caf/io/middleman_actor.hpp>

#include <cstdint>
#include <string>

#include "actors/protocol.h"
#include "config/cluster_config.h"
#include "config/scheduler_config.h"
#include "model/backend.h"

namespace troupe {

// Bumped whenever a message of protocol.h or this file changes shape.
constexpr int32_t kClusterProtocolVersion = 7;  // 2: steps in flight, SLOs; 3: prompt logprobs; 4: per-request SLOs;
                                                 // 5: per-request SLO outcome in SeqUpdate;
                                                 // 6: KV-cache dtype in HostStage;
                                                 // 7: schedule policy in SchedulerConfig

// What a model is, compared across processes: a hash of its configuration and of every
// tensor's name, shape and dtype, a readable summary for errors, and the quantization it
// runs with (e.g. "none", "int4 g64").
struct ModelIdentity {
  uint64_t hash = 0;
  std::string summary;        // "llama, 2 layers, hidden 128, vocab 2048, 27 tensors"
  std::string quantization;
  bool operator==(const ModelIdentity&) const = default;
};

// Head -> worker: host one pipeline stage, or (replica) a whole engine replica: a
// scheduler, executor and shard over all layers with its own KV pool, whose updates go to
// `output` (the head's replica router).
struct HostStage {
  int32_t protocol_version = kClusterProtocolVersion;
  std::string model;          // the path as the worker sees it
  ModelIdentity expect;       // the head's model (the worker compares its own)
  std::string quantization;   // --quantization value (none|int8|int4|awq)
  int32_t group_size = 128;
  std::string lm_head;        // --lm-head value
  LayerRange layers;          // a stage's layers (a replica: all)
  int64_t num_blocks = 0;     // KV pool (a stage: the head's scheduler allocates for all stages)
  int64_t block_size = 16;
  std::string kv_cache_dtype = "f32";  // --kv-cache-dtype value: the stage's or replica's pool
  bool replica = false;
  SchedulerConfig scheduler;  // replica only
  output_actor output;        // replica only
  bool operator==(const HostStage&) const = default;
};

// Worker -> head, the reply to HostStage.
struct Hosted {
  shard_actor shard;          // a stage (null with an error)
  scheduler_actor scheduler;  // a replica (null with an error)
  std::string backend;        // the stage backend's name, for logs ("cpu (2 threads, layers 0:1)")
  std::string error;          // non-empty: refused (names the difference) or failed to load
  bool busy = false;          // refused because it serves another head (may change: retry)
  bool operator==(const Hosted&) const = default;
};

using worker_actor = caf::typed_actor<caf::replies_to<HostStage>::with<Hosted>>;

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, LayerRange& x) {
  return f(caf::meta::type_name("LayerRange"), x.begin, x.end);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ModelIdentity& x) {
  return f(caf::meta::type_name("ModelIdentity"), x.hash, x.summary, x.quantization);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SchedulerConfig& x) {
  return f(caf::meta::type_name("SchedulerConfig"), x.scheduling, x.schedule_policy, x.max_num_seqs,
           x.max_num_batched_tokens, x.max_model_len, x.enable_prefix_caching, x.batch_wait_ms, x.max_steps_in_flight,
           x.slo_ttft_ms, x.slo_tpot_ms, x.slo_reject, x.slo_admission_quantile, x.slo_min_ttft_ms,
           x.slo_min_tpot_ms);
}
namespace wire {
// A handle that may be null, as a flag and the handle: with the io middleman loaded, CAF
// 0.17.6 fails to deserialize a message holding a null actor handle (measured here).
template <class Handle>
struct OptionalHandle {
  Handle* h;
};
template <class Inspector, class Handle>
typename Inspector::result_type inspect(Inspector& f, OptionalHandle<Handle>& x) {
  if constexpr (std::is_base_of_v<caf::serializer, Inspector>) {
    bool has = static_cast<bool>(*x.h);
    if (auto e = f(has)) return e;
    return has ? f(*x.h) : typename Inspector::result_type{};
  } else if constexpr (std::is_base_of_v<caf::deserializer, Inspector>) {
    bool has = false;
    if (auto e = f(has)) return e;
    if (has) return f(*x.h);
    *x.h = Handle{};
    return {};
  } else {
    return f(*x.h);
  }
}
}  // namespace wire

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, HostStage& x) {
  wire::OptionalHandle<output_actor> output{&x.output};
  return f(caf::meta::type_name("HostStage"), x.protocol_version, x.model, x.expect, x.quantization,
           x.group_size, x.lm_head, x.layers, x.num_blocks, x.block_size, x.kv_cache_dtype, x.replica,
           x.scheduler, output);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Hosted& x) {
  wire::OptionalHandle<shard_actor> shard{&x.shard};
  wire::OptionalHandle<scheduler_actor> scheduler{&x.scheduler};
  return f(caf::meta::type_name("Hosted"), shard, scheduler, x.backend, x.error, x.busy);
}

// Registers the protocol and cluster types and loads CAF's io middleman (remoting), and
// with `tls` enabled the OpenSSL module with those files (throws troupe::Error naming a
// file that cannot be read, or a partial set).
void configure_remoting(caf::actor_system_config& cfg, const TlsFiles& tls = {});
// Publishes `worker` (TLS when configured) / connects to one.
caf::expected<uint16_t> publish_worker(caf::actor_system& sys, const worker_actor& worker, uint16_t port,
                                       const std::string& host, bool tls);
// The middleman actor that connects to workers (the OpenSSL one with `tls`); it answers
// (connect_atom, host, port) with the published actor.
caf::io::middleman_actor worker_connector(caf::actor_system& sys, bool tls);

}  // namespace troupe

CAF_BEGIN_TYPE_ID_BLOCK(troupe_cluster, caf::id_block::troupe_protocol::end)
  CAF_ADD_TYPE_ID(troupe_cluster, (troupe::HostStage))
  CAF_ADD_TYPE_ID(troupe_cluster, (troupe::Hosted))
  CAF_ADD_TYPE_ID(troupe_cluster, (troupe::worker_actor))
CAF_END_TYPE_ID_BLOCK(troupe_cluster)
