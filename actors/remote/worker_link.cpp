#include "actors/remote/worker_link.h"

#include <caf/io/middleman.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "core/error.h"

namespace troupe {

namespace {

using connect_atom = caf::atom_constant<caf::atom("wconnect")>;

// First retry after 200 ms, doubling to 5 s: a restarted worker is back within a second
// or two, and a head waiting for a dead one costs one connection attempt every 5 s.
constexpr auto kFirstBackoff = std::chrono::milliseconds(200);
constexpr auto kMaxBackoff = std::chrono::milliseconds(5000);
constexpr auto kConnectTimeout = std::chrono::seconds(5);

struct LinkState {
  WorkerLinkSpec spec;
  caf::actor target;            // the stage chain, or the replica router
  std::shared_ptr<ClusterStatus> status;
  worker_actor worker;
  bool was_up = false;          // the stage served before: a rebuilt one has empty KV
  std::chrono::milliseconds backoff = kFirstBackoff;
  static inline const char* name = "worker_link";
};

using LinkSelf = caf::stateful_actor<LinkState>*;

std::string address(const LinkState& st) { return fmt::format("{}:{}", st.spec.host, st.spec.port); }

void retry_later(LinkSelf self) {
  auto& st = self->state;
  self->delayed_send(self, st.backoff, connect_atom::value);
  st.backoff = std::min(st.backoff * 2, kMaxBackoff);
}

void connect_failed(LinkSelf self, const std::string& why) {
  auto& st = self->state;
  st.status->set(size_t(st.spec.stage), st.was_up ? WorkerState::Down : WorkerState::Connecting,
                 "cannot connect: " + why);
  retry_later(self);
}

void host(LinkSelf self);

// Asks the middleman (the TLS one with --tls-*) to connect, with a timeout: the blocking
// remote_actor() has none, and a link stuck in it could neither retry nor stop.
void connect(LinkSelf self) {
  auto& st = self->state;
  self->request(worker_connector(self->system(), st.spec.tls), kConnectTimeout, caf::connect_atom::value,
                st.spec.host, st.spec.port)
      .then(
          [self](caf::node_id&, caf::strong_actor_ptr& ptr, std::set<std::string>&) {
            if (!ptr) return connect_failed(self, "no worker published there");
            self->state.worker = caf::actor_cast<worker_actor>(ptr);
            self->monitor(self->state.worker);
            host(self);
          },
          [self](caf::error& e) { connect_failed(self, self->system().render(e)); });
}

void host(LinkSelf self) {
  auto& st = self->state;
  const auto timeout = std::chrono::milliseconds(int64_t(st.spec.timeout_s * 1000));
  self->request(st.worker, timeout, st.spec.request)
      .then(
          [self](Hosted& h) {
            auto& st = self->state;
            if (!h.error.empty() || (st.spec.request.replica ? !h.scheduler : !h.shard)) {
              spdlog::error("worker {} refused stage {}: {}", address(st), st.spec.stage, h.error);
              // Busy with another head is temporary; another model or version is not.
              st.status->set(size_t(st.spec.stage), h.busy ? WorkerState::Connecting : WorkerState::Refused, h.error);
              self->demonitor(st.worker.address());
              st.worker = worker_actor{};
              return retry_later(self);
            }
            spdlog::info("worker {} hosts stage {} ({})", address(st), st.spec.stage, h.backend);
            if (st.spec.request.replica)
              self->send(st.target, ReplicaUp{st.spec.stage, h.scheduler});
            else
              self->send(st.target, StageUp{st.spec.stage, h.shard, st.was_up});
            st.was_up = true;
            st.backoff = kFirstBackoff;
            st.status->set(size_t(st.spec.stage), WorkerState::Up, h.backend);
          },
          [self](caf::error& e) {
            auto& st = self->state;
            if (!st.worker) return;  // lost meanwhile: the down handler retries
            st.status->set(size_t(st.spec.stage), st.was_up ? WorkerState::Down : WorkerState::Connecting,
                           "hosting failed: " + self->system().render(e));
            self->demonitor(st.worker.address());
            st.worker = worker_actor{};
            retry_later(self);
          });
}

caf::behavior link_behavior(LinkSelf self, WorkerLinkSpec spec, caf::actor target,
                            std::shared_ptr<ClusterStatus> status) {
  self->state.spec = std::move(spec);
  self->state.target = std::move(target);
  self->state.status = std::move(status);
  self->set_down_handler([self](caf::down_msg& d) {
    auto& st = self->state;
    if (!st.worker || d.source != st.worker.address()) return;
    const std::string why = fmt::format("worker {} lost ({})", address(st), self->system().render(d.reason));
    spdlog::error("{}; reconnecting", why);
    if (st.spec.request.replica)
      self->send(st.target, ReplicaDown{st.spec.stage, why});
    else
      self->send(st.target, StageDown{st.spec.stage, why});
    st.status->set(size_t(st.spec.stage), WorkerState::Down, why);
    st.worker = worker_actor{};
    st.backoff = kFirstBackoff;
    retry_later(self);
  });
  self->send(self, connect_atom::value);
  return {
      [self](connect_atom) { connect(self); },
  };
}

}  // namespace

std::pair<std::string, uint16_t> parse_host_port(const std::string& address, bool allow_zero) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size())
    fail("'{}' is not HOST:PORT", address);
  const std::string port = address.substr(colon + 1);
  char* end = nullptr;
  const long p = std::strtol(port.c_str(), &end, 10);
  if (*end != '\0' || p < (allow_zero ? 0 : 1) || p > 65535)
    fail("'{}': port '{}' is not a number in {}..65535", address, port, allow_zero ? 0 : 1);
  return {address.substr(0, colon), uint16_t(p)};
}

caf::actor spawn_worker_link(caf::actor_system& sys, WorkerLinkSpec spec, caf::actor target,
                             std::shared_ptr<ClusterStatus> status) {
  return sys.spawn(link_behavior, std::move(spec), std::move(target), std::move(status));
}

}  // namespace troupe
