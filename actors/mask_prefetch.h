#pragma once
// Computes constrained samplers' grammar masks on a thread of its own while the step's
// forward pass runs. A step's mask depends only on the tokens accepted before it, so it is
// known as soon as the step is planned; without this the executor computed every mask one
// after another after the forward pass, on the step's critical path (32 sequences: 32
// masks in a row).
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "sampling/sampler.h"

namespace troupe {

class MaskPrefetch {
 public:
  MaskPrefetch();
  ~MaskPrefetch();  // waits for the batch in hand, then joins the thread
  MaskPrefetch(const MaskPrefetch&) = delete;
  MaskPrefetch& operator=(const MaskPrefetch&) = delete;

  // Starts preparing these samplers' masks (waits for the previous batch first). Until
  // wait() returns, the caller must not use them; the shared pointers keep a sampler alive
  // even if its sequence is released meanwhile.
  void start(std::vector<std::shared_ptr<const Sampler>> samplers);
  // Blocks until the batch given to start() is done (at once when there is none).
  void wait();

 private:
  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<const Sampler>> todo_;
  bool busy_ = false;  // a batch was started and is not finished
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace troupe
