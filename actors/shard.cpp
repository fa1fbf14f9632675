#include "actors/shard.h"

#include <chrono>

namespace troupe {

namespace {

shard_actor::behavior_type shard_behavior(shard_actor::pointer self, std::shared_ptr<Backend> backend) {
  (void)self;
  return {
      [backend](ShardStep& s) -> ShardOutput {
        ShardOutput r;
        const auto t0 = std::chrono::steady_clock::now();
        try {
          for (const auto& c : s.copies) backend->copy_block(c.src, c.dst);
          backend->run_stage(s.batch, s.hidden, r.out);
          r.hidden = std::move(s.hidden);
        } catch (const std::exception& e) {
          r.error = e.what();
        }
        r.forward_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        return r;
      },
  };
}

}  // namespace

shard_actor spawn_shard(caf::actor_system& sys, std::shared_ptr<Backend> backend) {
  // Detached: the actor gets its own thread, so the blocking forward pass stays off
  // CAF's worker pool; the backend's thread pool fans out from this thread.
  return sys.spawn<caf::detached>(shard_behavior, std::move(backend));
}

}  // namespace troupe
