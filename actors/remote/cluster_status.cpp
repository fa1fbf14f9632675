#include "actors/remote/cluster_status.h"

#include <fmt/format.h>

#include <algorithm>

namespace troupe {

const char* to_string(WorkerState s) {
  switch (s) {
    case WorkerState::Connecting: return "connecting";
    case WorkerState::Up: return "up";
    case WorkerState::Down: return "down";
    case WorkerState::Refused: return "refused";
  }
  return "?";
}

void ClusterStatus::set(size_t i, WorkerState s, std::string detail) {
  {
    std::lock_guard lk(mu_);
    WorkerStatus& w = workers_.at(i);
    if (w.state == WorkerState::Up && s == WorkerState::Down) ++w.losses;
    w.state = s;
    w.detail = std::move(detail);
  }
  cv_.notify_all();
}

void ClusterStatus::add_routed(size_t i) {
  std::lock_guard lk(mu_);
  workers_.at(i).routed++;
}

bool ClusterStatus::serving() const {
  std::lock_guard lk(mu_);
  const auto up = [](const WorkerStatus& w) { return w.state == WorkerState::Up; };
  return all_needed_ ? std::all_of(workers_.begin(), workers_.end(), up) : std::any_of(workers_.begin(), workers_.end(), up);
}

std::vector<WorkerStatus> ClusterStatus::snapshot() const {
  std::lock_guard lk(mu_);
  return workers_;
}

bool ClusterStatus::all_up() const {
  std::lock_guard lk(mu_);
  return std::all_of(workers_.begin(), workers_.end(), [](const WorkerStatus& w) { return w.state == WorkerState::Up; });
}

std::string ClusterStatus::describe(const WorkerStatus& w) const {
  return fmt::format("{} on {} is {}{}{}", w.role, w.address, to_string(w.state), w.detail.empty() ? "" : ": ",
                     w.detail);
}

std::string ClusterStatus::first_problem() const {
  std::lock_guard lk(mu_);
  for (const auto& w : workers_)
    if (w.state != WorkerState::Up) return describe(w);
  return "";
}

bool ClusterStatus::wait_all_up(std::chrono::milliseconds timeout, std::string* why) const {
  std::unique_lock lk(mu_);
  const WorkerStatus* bad = nullptr;
  const bool settled = cv_.wait_for(lk, timeout, [&] {
    bad = nullptr;
    for (const auto& w : workers_) {
      if (w.state == WorkerState::Refused) {
        bad = &w;
        return true;
      }
      if (w.state != WorkerState::Up && !bad) bad = &w;
    }
    return bad == nullptr;
  });
  if (settled && !bad) return true;
  if (why) *why = bad ? describe(*bad) + (settled ? "" : " (timed out waiting for it)") : "timed out";
  return false;
}

}  // namespace troupe
