#pragma once
// Who may reach the daemon from a web browser (net/README.md "Safety"). The default is a
// loopback bind without an API key, so any page the user opens could otherwise talk to it:
// a cross-site WebSocket (browsers send no preflight for those), a "simple" cross-site
// POST, or a page on an attacker's domain that re-resolves to 127.0.0.1 (DNS rebinding).
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

class OriginPolicy {
 public:
  // `bind_host` is --host; `allowed` the --allowed-origins entries (scheme://host[:port], or "*").
  OriginPolicy(const std::string& bind_host, std::vector<std::string> allowed);

  // The Host header of a request. On a loopback bind only names that legitimately reach a
  // loopback address pass (localhost, *.localhost, 127.0.0.0/8, [::1]) plus the hosts of
  // the allowed origins: a rebinding page arrives with its own domain in Host. Any Host
  // passes on other binds.
  bool host_allowed(std::string_view host) const;

  // The Origin header of a WebSocket handshake. None (not a browser), the same origin as
  // `host`, a loopback origin, or an allowed one.
  bool websocket_origin_allowed(std::string_view origin, std::string_view host) const;

  // CORS: an origin listed in --allowed-origins (or any, with "*"). Off without the flag.
  bool cors_allowed(std::string_view origin) const;

 private:
  bool listed(std::string_view origin) const;

  bool loopback_bind_;
  bool any_origin_ = false;
  std::vector<std::string> allowed_;       // lower-case, no trailing slash
  std::vector<std::string> allowed_hosts_; // their host[:port] parts, for host_allowed
};

// "host[:port]" -> "host" ("[::1]:80" -> "::1"), lower-cased.
std::string host_name(std::string_view authority);
// True for localhost, *.localhost and loopback IP addresses.
bool is_loopback_name(std::string_view name);

}  // namespace troupe
