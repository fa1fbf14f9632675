#pragma once
// The identity a head and its workers compare before they share a model (cluster_protocol.h).
#include <string>

#include "actors/remote/cluster_protocol.h"
#include "model/weights.h"
#include "quant/options.h"

namespace troupe {

ModelIdentity model_identity(const ModelWeights& w, const quant::Options& q);
std::string quantization_name(const quant::Options& q);  // "none", "int4 g64", ...

// "" when they match, else what differs ("model: head has ..., worker has ...").
std::string identity_difference(const ModelIdentity& head, const ModelIdentity& worker);

}  // namespace troupe
