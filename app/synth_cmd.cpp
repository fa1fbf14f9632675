// `troupe synth`: random-weight models of real shapes for speed work.
#include "app/commands.h"

namespace troupe::app {

void register_synth(CLI::App& app) {
  (void)app;  // wired once model/synth lands
}

}  // namespace troupe::app
