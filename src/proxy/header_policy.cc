#include "proxy/header_policy.h"

#include <charconv>

#include "auth/request_signer.h"
#include "common/http_message.h"
#include "proxy/wire.h"

namespace openimds::proxy {
namespace {

using common::EqualsIgnoreCase;

// RFC 9110 §7.6.1 plus the framing headers the proxy owns.
constexpr std::string_view kHopByHop[] = {
    "Connection",
    "Keep-Alive",
    "Proxy-Connection",
    "TE",
    "Trailer",
    "Transfer-Encoding",
    "Upgrade",
    "Proxy-Authorization",
    "Proxy-Authenticate",
    "Content-Length",
    "Expect",
};

constexpr std::string_view kIdentityExact[] = {
    "Forwarded",      "X-Real-IP",           "X-Client-IP",
    "True-Client-IP", "X-Tenant-ID",         "X-Original-Forwarded-For",
    "Client-IP",      "X-Cluster-Client-IP",
};

constexpr std::string_view kIdentityPrefix[] = {
    "X-Forwarded-",   // For, Host, Proto, Port, Server
    "X-Instance-ID",  // and X-Instance-ID-Signature
    "X-Neutron-",    "X-OVN-", "X-Metadata-Provider", "X-OpenIMDS-",
};

bool IsToken(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool IsHopByHop(std::string_view name) {
  for (auto h : kHopByHop) {
    if (EqualsIgnoreCase(name, h)) return true;
  }
  return false;
}

}  // namespace

const std::vector<std::string_view>& HeaderPolicy::DefaultAllowed() {
  static const std::vector<std::string_view> kAllowed = {
      "Host",
      "User-Agent",
      "Accept",
      "Accept-Encoding",
      "Accept-Language",
      "Content-Type",
      "If-None-Match",
      "If-Modified-Since",
  };
  return kAllowed;
}

common::Result<HeaderPolicy> HeaderPolicy::Create(const std::vector<std::string>& extra) {
  std::vector<std::string> allowed;
  for (auto h : DefaultAllowed()) allowed.emplace_back(h);
  for (const auto& name : extra) {
    if (!IsToken(name)) {
      return common::InvalidArgument("'" + name + "' is not a header name");
    }
    if (IsIdentityHeader(name)) {
      return common::InvalidArgument(name +
                                     " asserts an identity; the proxy never forwards it from "
                                     "a guest");
    }
    if (IsHopByHop(name)) {
      return common::InvalidArgument(name + " is a hop-by-hop or framing header");
    }
    allowed.push_back(name);
  }
  return HeaderPolicy(std::move(allowed));
}

RequestHeaderAction HeaderPolicy::Classify(std::string_view name) const {
  if (IsIdentityHeader(name)) return RequestHeaderAction::kStripIdentity;
  for (const auto& a : allowed_) {
    if (EqualsIgnoreCase(name, a)) return RequestHeaderAction::kForward;
  }
  return RequestHeaderAction::kDrop;
}

bool HeaderPolicy::IsIdentityHeader(std::string_view name) {
  for (auto h : kIdentityExact) {
    if (EqualsIgnoreCase(name, h)) return true;
  }
  for (auto p : kIdentityPrefix) {
    if (StartsWithIgnoreCase(name, p)) return true;
  }
  return false;
}

bool HeaderPolicy::IsForwardingHeader(std::string_view name) {
  return EqualsIgnoreCase(name, "X-Forwarded-For") || EqualsIgnoreCase(name, "Forwarded");
}

bool HeaderPolicy::ForwardResponseHeader(std::string_view name) {
  if (IsHopByHop(name) || EqualsIgnoreCase(name, "Date")) return false;
  if (StartsWithIgnoreCase(name, auth::kHeaderPrefix)) return false;
  return true;
}

std::optional<int> HeaderPolicy::ParseIpTtl(std::string_view value) {
  int ttl = 0;
  auto r = std::from_chars(value.data(), value.data() + value.size(), ttl);
  if (value.empty() || r.ec != std::errc() || r.ptr != value.data() + value.size()) {
    return std::nullopt;
  }
  if (ttl < 1 || ttl > 255) return std::nullopt;
  return ttl;
}

}  // namespace openimds::proxy
