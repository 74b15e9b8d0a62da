#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace openimds::proxy {

// What happens to one header of a guest's request on its way upstream.
enum class RequestHeaderAction {
  kForward,        // on the allow-list: copied as is
  kStripIdentity,  // claims an identity (X-Forwarded-For, X-Instance-ID, ...): removed, counted
  kDrop,           // anything else (hop-by-hop, unknown): removed
};

// Which headers cross the proxy, in both directions. Immutable; safe for
// concurrent use.
//
// Requests: only allow-listed headers are forwarded; everything else is
// dropped, and headers that assert an identity are named separately so the
// proxy can count what guests try. Identity headers can never be
// allow-listed. Responses: everything but hop-by-hop headers, the framing the
// proxy recomputes (Content-Length, Transfer-Encoding), Date, and our own
// X-OpenIMDS-* headers (the hop-limit instruction is applied, not passed on).
class HeaderPolicy {
 public:
  // The headers of plain HTTP that any flavour may look at (Host,
  // User-Agent, Accept*, Content-Type, If-None-Match, If-Modified-Since).
  // A cloud's own headers are not here: app/ passes those its flavours
  // declare (flavour::Module::GuestHeaders, EC2's X-aws-ec2-metadata-token*)
  // in `extra`, with the operator's --forward-header names.
  static const std::vector<std::string_view>& DefaultAllowed();

  // DefaultAllowed() plus `extra` (case-insensitive names). InvalidArgument
  // if an extra name is an identity header, a hop-by-hop header, a framing
  // header, or not a valid token.
  static common::Result<HeaderPolicy> Create(const std::vector<std::string>& extra = {});

  RequestHeaderAction Classify(std::string_view name) const;

  // True for headers that assert who the caller is or where it came from:
  // X-Forwarded-*, Forwarded, X-Real-IP, X-Client-IP, True-Client-IP,
  // X-Instance-ID*, X-Tenant-ID, X-Neutron-*, X-OVN-*,
  // X-Metadata-Provider*, X-OpenIMDS-*.
  static bool IsIdentityHeader(std::string_view name);

  // True for the headers that describe forwarding by a proxy in front of the
  // caller (X-Forwarded-For, Forwarded). See ProxyServer: when a guest sends
  // one, the proxy tells the server so with its own X-Forwarded-For.
  static bool IsForwardingHeader(std::string_view name);

  // True if an upstream response header goes on to the guest.
  static bool ForwardResponseHeader(std::string_view name);

  // The X-OpenIMDS-IP-TTL value as a TTL: 1..255, else nullopt.
  static std::optional<int> ParseIpTtl(std::string_view value);

 private:
  explicit HeaderPolicy(std::vector<std::string> allowed) : allowed_(std::move(allowed)) {}
  std::vector<std::string> allowed_;  // constant after construction
};

}  // namespace openimds::proxy
