#include "net/origin_policy.h"

#include <boost/asio/ip/address.hpp>
#include <boost/beast/core/string.hpp>

#include <algorithm>
#include <cctype>

namespace troupe {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return out;
}

// "https://example.com:8443/" -> "example.com:8443"; empty unless an http(s) origin.
std::string_view authority_of(std::string_view origin) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (origin.size() > scheme.size() && boost::beast::iequals(origin.substr(0, scheme.size()), scheme)) {
      std::string_view rest = origin.substr(scheme.size());
      return rest.substr(0, rest.find('/'));
    }
  }
  return {};
}

}  // namespace

std::string host_name(std::string_view authority) {
  if (!authority.empty() && authority.front() == '[') {  // an IPv6 literal
    const size_t close = authority.find(']');
    return close == std::string_view::npos ? std::string() : lower(authority.substr(1, close - 1));
  }
  return lower(authority.substr(0, authority.rfind(':')));
}

bool is_loopback_name(std::string_view name) {
  if (name == "localhost") return true;
  constexpr std::string_view kSuffix = ".localhost";  // RFC 6761: browsers resolve these to loopback themselves
  if (name.size() > kSuffix.size() && name.substr(name.size() - kSuffix.size()) == kSuffix) return true;
  boost::system::error_code ec;
  const auto addr = boost::asio::ip::make_address(std::string(name), ec);
  return !ec && addr.is_loopback();
}

OriginPolicy::OriginPolicy(const std::string& bind_host, std::vector<std::string> allowed)
    : loopback_bind_(is_loopback_name(lower(bind_host))) {
  for (auto& a : allowed) {
    if (a == "*") {
      any_origin_ = true;
      continue;
    }
    std::string o = lower(a);
    while (!o.empty() && o.back() == '/') o.pop_back();
    allowed_hosts_.push_back(std::string(authority_of(o)));
    allowed_.push_back(std::move(o));
  }
}

bool OriginPolicy::listed(std::string_view origin) const {
  return any_origin_ || std::find(allowed_.begin(), allowed_.end(), lower(origin)) != allowed_.end();
}

bool OriginPolicy::host_allowed(std::string_view host) const {
  if (!loopback_bind_) return true;
  if (is_loopback_name(host_name(host))) return true;
  return std::find(allowed_hosts_.begin(), allowed_hosts_.end(), lower(host)) != allowed_hosts_.end();
}

bool OriginPolicy::websocket_origin_allowed(std::string_view origin, std::string_view host) const {
  if (origin.empty()) return true;  // not a browser: browsers always send Origin on a WebSocket handshake
  const std::string_view authority = authority_of(origin);
  if (authority.empty()) return listed(origin);  // "null" (sandboxed frames, file://) only if listed
  if (boost::beast::iequals(authority, host)) return true;  // same origin
  return is_loopback_name(host_name(authority)) || listed(origin);
}

bool OriginPolicy::cors_allowed(std::string_view origin) const { return !origin.empty() && listed(origin); }

}  // namespace troupe
