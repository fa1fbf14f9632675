// A custom admission policy: per-tenant token quotas. A stage in front of troupe's default
// admission counts, per tenant (GenerateRequest::user), the tokens its admitted requests
// may still generate; a request that would take a tenant over its quota is answered
// "overloaded" at once - for that tenant only - and everything else is forwarded. A
// request's share goes back when its sink sees the final event.
//
//   build/examples/tenant_quotas MODEL
// Prints one line per tenant: "tenant <name>: <completed> completed, <overloaded> overloaded"
#include <condition_variable>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "actors/engine.h"

namespace {

// Shared between the policy stage (admits) and the sinks (release): per-tenant tokens in use.
struct Quotas {
  std::mutex mu;
  std::map<std::string, int64_t> limit, in_use;
  std::map<int64_t, std::pair<std::string, int64_t>> held;  // request id -> (tenant, tokens)
  bool take(int64_t id, const std::string& tenant, int64_t tokens) {
    std::lock_guard lk(mu);
    auto it = limit.find(tenant);
    if (it != limit.end() && in_use[tenant] + tokens > it->second) return false;
    in_use[tenant] += tokens;
    held[id] = {tenant, tokens};
    return true;
  }
  void release(int64_t id) {
    std::lock_guard lk(mu);
    auto it = held.find(id);
    if (it == held.end()) return;
    in_use[it->second.first] -= it->second.second;
    held.erase(it);
  }
};

troupe::admission_actor::behavior_type quota_stage(troupe::admission_actor::pointer self,
                                                   troupe::admission_actor next, troupe::output_actor output,
                                                   std::shared_ptr<Quotas> quotas) {
  return {
      [=](troupe::AdmitRequest& a) {
        if (!quotas->take(a.request_id, a.req.user, a.req.params.max_tokens)) {
          troupe::StepUpdates u;
          u.updates.push_back(troupe::rejection(a.request_id, troupe::ErrorKind::Overloaded,
                                                "tenant '" + a.req.user + "' is over its token quota"));
          self->send(output, std::move(u));
          return;
        }
        self->send(next, std::move(a));
      },
      [=](troupe::FinishRequest f) { self->send(next, f); },
      [=](troupe::QueueDepth d) { self->send(next, d); },
      [=](troupe::AdmissionLinks& l) { self->send(next, std::move(l)); },
  };
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL\n", argv[0]);
    return 2;
  }
  auto quotas = std::make_shared<Quotas>();
  quotas->limit["free"] = 100;  // at most 100 tokens in flight; "paid" has no limit

  troupe::EngineConfig cfg;
  cfg.model = argv[1];
  troupe::EngineHooks hooks;
  hooks.customize = [quotas](troupe::PipelineBuilder& b, caf::actor_system&) {
    b.admission_policy([quotas](caf::actor_system& sys, troupe::admission_actor next, troupe::output_actor out) {
      return sys.spawn(quota_stage, next, out, quotas);
    });
  };
  troupe::Engine engine(cfg, hooks);

  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, int> completed, overloaded;
  int finished = 0;
  const int per_tenant = 8;
  for (int i = 0; i < 2 * per_tenant; ++i) {
    const std::string tenant = i % 2 ? "paid" : "free";
    troupe::GenerateRequest req;
    req.prompt = "Once upon a time";
    req.user = tenant;
    req.params.temperature = 0;
    req.params.max_tokens = 40;
    req.params.ignore_eos = true;
    engine.submit(req, [&, tenant](const troupe::TokenEvent& ev) {
      if (!ev.finished) return;
      quotas->release(ev.request_id);
      std::lock_guard lk(mu);
      if (ev.error_kind == troupe::ErrorKind::Overloaded) ++overloaded[tenant];
      else if (ev.finish_reason == troupe::FinishReason::Length) ++completed[tenant];
      ++finished;
      cv.notify_all();
    });
  }
  std::unique_lock lk(mu);
  cv.wait(lk, [&] { return finished == 2 * per_tenant; });
  for (const char* t : {"free", "paid"})
    std::printf("tenant %s: %d completed, %d overloaded\n", t, completed[t], overloaded[t]);
  return 0;
}
