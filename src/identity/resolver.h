#pragma once

#include <string_view>

#include "common/http_message.h"
#include "common/ip_address.h"
#include "common/result.h"

namespace openimds::identity {

// Who is asking: the tenant network and the guest's own address in it.
// Views point into the Request (or the listener's configuration); valid while
// the request is handled.
struct CallerIdentity {
  std::string_view network;
  common::IpAddress address;
};

// Turns (listener, peer address, headers) into a CallerIdentity. This is the
// only place identity is decided; nothing else reads identity headers.
//
// Direct mode (this version): the listener's network and the TCP peer
// address. Proxy-signed and Neutron header modes come with the proxy.
// Immutable; safe for concurrent use.
class Resolver {
 public:
  // InvalidArgument when the request carries no usable peer address (e.g. it
  // came over a unix socket, which has no guest address in direct mode).
  common::Result<CallerIdentity> Resolve(const common::Request& request) const;
};

}  // namespace openimds::identity
