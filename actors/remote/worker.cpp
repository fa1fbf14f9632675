#include "actors/remote/worker.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <vector>

#include "actors/remote/model_identity.h"
#include "actors/shard.h"
#include "backends/backend_factory.h"
#include "model/quantized_checkpoint.h"

namespace troupe {

namespace {

struct WorkerState {
  caf::actor_addr head;       // the link that hosted first; null: free
  caf::node_id head_node;
  std::vector<shard_actor> hosted;
  static inline const char* name = "worker";
};

using WorkerSelf = worker_actor::stateful_pointer<WorkerState>;

void release(WorkerSelf self, const char* why) {
  auto& st = self->state;
  spdlog::info("worker: {}; releasing {} stage(s)", why, st.hosted.size());
  for (auto& s : st.hosted) {
    self->unlink_from(s);
    self->send_exit(s, caf::exit_reason::user_shutdown);
  }
  st.hosted.clear();
  st.head = nullptr;
  st.head_node = caf::node_id{};
}

Hosted host_stage(WorkerSelf self, const HostStage& h, const WorkerOptions& opts) {
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
    Checkpoint ck = load_checkpoint(opts.model.empty() ? h.model : opts.model);
    const std::string diff = identity_difference(h.expect, model_identity(ck.weights, q));
    if (!diff.empty()) {
      r.error = diff;
      return r;
    }
    BackendOptions bo;
    bo.num_threads = opts.threads;
    bo.block_size = h.block_size;
    bo.num_blocks = h.num_blocks;
    bo.quantization = q;
    bo.layers = h.layers;
    std::shared_ptr<Backend> backend = make_backend(std::move(ck), bo);
    r.backend = backend->name();
    r.shard = spawn_shard(self->system(), std::move(backend));
  } catch (const std::exception& e) {
    r.error = fmt::format("worker could not host layers {}:{} of {}: {}", h.layers.begin, h.layers.end, h.model,
                          e.what());
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
        Hosted r = host_stage(self, h, opts);
        if (!r.error.empty()) {
          spdlog::warn("worker: refused layers {}:{}: {}", h.layers.begin, h.layers.end, r.error);
          return r;
        }
        st.hosted.push_back(r.shard);
        self->link_to(r.shard);  // a worker that exits takes its stages with it
        if (!st.head && sender) {
          st.head = sender->address();
          st.head_node = sender->node();
          self->monitor(sender);
        }
        spdlog::info("worker: hosting layers {}:{} of {} ({})", h.layers.begin, h.layers.end, h.model, r.backend);
        return r;
      },
  };
}

}  // namespace

worker_actor spawn_worker(caf::actor_system& sys, WorkerOptions opts) {
  return sys.spawn<caf::detached>(worker_behavior, std::move(opts));
}

}  // namespace troupe
