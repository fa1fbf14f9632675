#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>

#include <fstream>

#include "actors/remote/cluster_protocol.h"
#include "core/error.h"

namespace troupe {

void configure_remoting(caf::actor_system_config& cfg, const TlsFiles& tls) {
  // Both ends must know every type that crosses: an unregistered one arrives empty.
  cfg.add_message_types<caf::id_block::troupe_cluster>();
  cfg.load<caf::io::middleman>();
  if (!tls.enabled()) return;
  if (tls.cert.empty() || tls.key.empty() || tls.ca.empty())
    fail("TLS needs all of --tls-cert, --tls-key and --tls-ca");
  for (const std::string* f : {&tls.cert, &tls.key, &tls.ca})
    if (!std::ifstream(*f)) fail("TLS: cannot read '{}'", *f);
  // With a certificate and a CA, CAF's OpenSSL sessions verify the peer (both directions)
  // and refuse one without a certificate the CA signed.
  cfg.openssl_certificate = tls.cert;
  cfg.openssl_key = tls.key;
  cfg.openssl_cafile = tls.ca;
  cfg.load<caf::openssl::manager>();
}

caf::expected<uint16_t> publish_worker(caf::actor_system& sys, const worker_actor& worker, uint16_t port,
                                       const std::string& host, bool tls) {
  // reuse_addr: a restarted worker can bind its port again at once (TIME_WAIT).
  if (tls) return caf::openssl::publish(worker, port, host.c_str(), true);
  return sys.middleman().publish(worker, port, host.c_str(), true);
}

caf::io::middleman_actor worker_connector(caf::actor_system& sys, bool tls) {
  return tls ? sys.openssl_manager().actor_handle() : sys.middleman().actor_handle();
}

}  // namespace troupe
