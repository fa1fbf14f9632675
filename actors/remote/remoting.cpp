#include <caf/io/middleman.hpp>

#include "actors/remote/cluster_protocol.h"

namespace troupe {

void configure_remoting(caf::actor_system_config& cfg) {
  // Both ends must know every type that crosses: an unregistered one arrives empty.
  cfg.add_message_types<caf::id_block::troupe_cluster>();
  cfg.load<caf::io::middleman>();
}

}  // namespace troupe
