#include "actors/mask_prefetch.h"

namespace troupe {

MaskPrefetch::MaskPrefetch() : thread_([this] { run(); }) {}

MaskPrefetch::~MaskPrefetch() {
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return !busy_; });
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void MaskPrefetch::start(std::vector<std::shared_ptr<const Sampler>> samplers) {
  if (samplers.empty()) return;
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return !busy_; });
    todo_ = std::move(samplers);
    busy_ = true;
  }
  cv_.notify_all();
}

void MaskPrefetch::wait() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return !busy_; });
}

void MaskPrefetch::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || busy_; });
    if (stop_) return;
    auto batch = std::move(todo_);
    todo_.clear();
    lock.unlock();
    // A failure here (a grammar bug) is left for the executor's own call to raise, on the
    // thread that reports it: the mask then stays stale and is recomputed there.
    for (const auto& s : batch) {
      try {
        s->prepare_mask();
      } catch (...) {
      }
    }
    batch.clear();  // drop the references before reporting done
    lock.lock();
    busy_ = false;
    cv_.notify_all();
  }
}

}  // namespace troupe
