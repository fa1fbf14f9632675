#pragma once
// Output stage: turns the scheduler's per-step token updates into what a client sees.
// It owns, per request, the sink (the client's callback), the detokenizer and stop-string
// state (TextStream) and the client-facing timings (TTFT, TPOT, end to end). When a stop
// string matches it tells the scheduler (FinishRequest with FinishReason::Stop) and drops
// any tokens the scheduler produced before it heard (at most one step's worth); the final
// event waits for the scheduler's final update, so usage and KV are settled by then.
#include <caf/all.hpp>

#include <memory>

#include "actors/protocol.h"
#include "tokenizer/tokenizer.h"

namespace troupe {

// Spawns the output stage; it needs OutputLinks (the scheduler) for stop strings.
output_actor spawn_output(caf::actor_system& sys, std::shared_ptr<const Tokenizer> tokenizer);

}  // namespace troupe
