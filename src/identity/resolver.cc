#include "identity/resolver.h"

namespace openimds::identity {

common::Result<CallerIdentity> Resolver::Resolve(const common::Request& request) const {
  if (request.local_port == 0) {
    return common::InvalidArgument("this listener has no guest address to identify the caller by");
  }
  return CallerIdentity{request.listener_network, request.peer};
}

}  // namespace openimds::identity
