#include "actors/remote/worker.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <vector>

#include "actors/remote/model_identity.h"
#include "actors/executor.h"
#include "actors/scheduler.h"
#include "actors/shard.h"
#include "backends/backend_factory.h"
#include "grammar/token_mask.h"
#include "model/quantized_checkpoint.h"
#include "model/tokenizer_loader.h"

namespace troupe {

namespace {

struct WorkerState {
  caf::actor_addr head;       // the link that hosted first; null: free
  caf::node_id head_node;
  std::vector<caf::actor> hosted;  // shards; a replica's scheduler and executor too
  static inline const char* name = "worker";
};

using WorkerSelf = worker_actor::stateful_pointer<WorkerState>;

void release(WorkerSelf self, const char* why) {
  auto& st = self->state;
  spdlog::info("worker: {}; releasing {} stage(s)", why, st.hosted.size());
  for (auto& a : st.hosted) {
    self->unlink_from(a);
    self->send_exit(a, caf::exit_reason::user_shutdown);
  }
  st.hosted.clear();
  st.head = nullptr;
  st.head_node = caf::node_id{};
}

std::string what(const HostStage& h) {
  return h.replica ? std::string("a replica") : fmt::format("layers {}:{}", h.layers.begin, h.layers.end);
}

Hosted host(WorkerSelf self, const HostStage& h, const WorkerOptions& opts) {
  Hosted r;
  if (h.protocol_version != kClusterProtocolVersion) {
    r.error = fmt::format("protocol version differs: head speaks {}, worker {}", h.protocol_version,
                          kClusterProtocolVersion);
    return r;
  }
  try {
    quant::Options q;
    q.method = quant::parse_method(h.quantization);
    q.group_size = h.group_size;
    q.lm_head = quant::parse_lm_head(h.lm_head);
    const std::string path = opts.model.empty() ? h.model : opts.model;
    Checkpoint ck = load_checkpoint(path);
    const std::string diff = identity_difference(h.expect, model_identity(ck.weights, q));
    if (!diff.empty()) {
      r.error = diff;
      return r;
    }
    BackendOptions bo;
    bo.num_threads = opts.threads;
    bo.block_size = h.block_size;
    bo.num_blocks = h.num_blocks;
    bo.kv_dtype = parse_kv_dtype(h.kv_cache_dtype);
    bo.quantization = q;
    bo.layers = h.replica ? LayerRange{} : h.layers;
    std::shared_ptr<Backend> backend = make_backend(std::move(ck), bo);
    r.backend = backend->name();
    const KvCacheShape kv = backend->kv_shape();
    r.shard = spawn_shard(self->system(), std::move(backend));
    self->state.hosted.push_back(caf::actor_cast<caf::actor>(r.shard));
    if (h.replica) {
      // The replica's own scheduler and executor, reporting to the head's router.
      // (Its own token table: constrained requests are masked where they are sampled.)
      step_actor executor = spawn_executor(self->system(), r.shard, spec::VerifyOptions{},
                                           grammar::TokenTable::from_tokenizer(*load_tokenizer(path)));
      r.scheduler = spawn_scheduler(self->system(), h.scheduler, kv, SpecSchedule{});
      self->state.hosted.push_back(caf::actor_cast<caf::actor>(executor));
      self->state.hosted.push_back(caf::actor_cast<caf::actor>(r.scheduler));
      self->send(r.scheduler, SchedulerLinks{executor, step_actor{}, h.output, admission_actor{}, {}});
    }
  } catch (const std::exception& e) {
    r.error = fmt::format("worker could not host {} of {}: {}", what(h), h.model, e.what());
  }
  return r;
}

worker_actor::behavior_type worker_behavior(WorkerSelf self, WorkerOptions opts) {
  self->set_down_handler([self](caf::down_msg& d) {
    if (d.source == self->state.head) release(self, "the head went away");
  });
  return {
      [self, opts](HostStage& h) -> Hosted {
        auto& st = self->state;
        const caf::strong_actor_ptr sender = self->current_sender();
        if (st.head && sender && sender->node() != st.head_node) {
          Hosted busy;
          busy.busy = true;
          busy.error = fmt::format("worker busy: it serves another head ({})", caf::to_string(st.head_node));
          spdlog::warn("worker: refused a second head: {}", busy.error);
          return busy;
        }
        const size_t before = st.hosted.size();
        Hosted r = host(self, h, opts);
        if (!r.error.empty()) {
          spdlog::warn("worker: refused {}: {}", what(h), r.error);
          for (size_t i = before; i < st.hosted.size(); ++i) self->send_exit(st.hosted[i], caf::exit_reason::user_shutdown);
          st.hosted.resize(before);
          return r;
        }
        // A worker that exits takes what it hosts with it.
        for (size_t i = before; i < st.hosted.size(); ++i) self->link_to(st.hosted[i]);
        if (!st.head && sender) {
          st.head = sender->address();
          st.head_node = sender->node();
          self->monitor(sender);
        }
        spdlog::info("worker: hosting {} of {} ({})", what(h), h.model, r.backend);
        return r;
      },
  };
}

}  // namespace

worker_actor spawn_worker(caf::actor_system& sys, WorkerOptions opts) {
  return sys.spawn<caf::detached>(worker_behavior, std::move(opts));
}

}  // namespace troupe
