#include "net/session_registry.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace troupe::net_detail {

void SessionRegistry::add(std::weak_ptr<SessionControl> s) {
  std::lock_guard lk(mu_);
  if (sessions_.size() >= prune_at_) {
    std::erase_if(sessions_, [](const auto& w) { return w.expired(); });
    prune_at_ = std::max<size_t>(64, 2 * sessions_.size());
  }
  sessions_.push_back(std::move(s));
}

std::vector<std::shared_ptr<SessionControl>> SessionRegistry::live() {
  std::vector<std::shared_ptr<SessionControl>> out;
  std::lock_guard lk(mu_);
  for (const auto& w : sessions_)
    if (auto s = w.lock()) out.push_back(std::move(s));
  return out;
}

// The callers below run outside mu_: a session may be destroyed when its pointer goes.
void SessionRegistry::notify(ShutdownStep step) {
  for (auto& s : live()) s->on_shutdown(step);
}

void SessionRegistry::shed_largest(const OutputBudget& budget) {
  std::lock_guard lk(shed_mu_);
  auto sessions = live();
  // What sessions already being dropped hold is as good as released.
  size_t kept = budget.total();
  std::vector<std::pair<size_t, SessionControl*>> candidates;
  for (auto& s : sessions) {
    const size_t n = s->queued_output_bytes();
    if (s->dropping()) kept -= std::min(n, kept);
    else if (n > 0) candidates.emplace_back(n, s.get());
  }
  std::sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& [n, s] : candidates) {
    if (kept <= budget.limit()) break;
    spdlog::warn("output budget ({} bytes) exceeded: dropping a connection that has {} bytes queued", budget.limit(), n);
    s->drop_slow_reader();
    kept -= std::min(n, kept);
  }
}

int ConnectionsPerIp::count(const asio::ip::address& a) {
  std::lock_guard lk(mu_);
  auto it = open_.find(a.to_string());
  return it == open_.end() ? 0 : it->second;
}

ConnectionsPerIp::Slot::Slot(ConnectionsPerIp& table, asio::ip::address a) : table_(table), addr_(std::move(a)) {
  std::lock_guard lk(table_.mu_);
  table_.open_[addr_.to_string()]++;
}

ConnectionsPerIp::Slot::~Slot() {
  std::lock_guard lk(table_.mu_);
  auto it = table_.open_.find(addr_.to_string());
  if (it != table_.open_.end() && --it->second == 0) table_.open_.erase(it);
}

}  // namespace troupe::net_detail
