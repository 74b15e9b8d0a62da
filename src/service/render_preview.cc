#include "service/render_preview.h"

#include <memory>

#include "common/blocking_wait.h"

namespace openimds::service {

common::Status RenderPreviewWaiting(const MetadataService& metadata,
                                    const model::Instance& instance, const common::Request& request,
                                    common::Response& out) {
  common::Status status = metadata.RenderPreview(instance, request, out);
  if (!out.deferred) return status;
  std::shared_ptr<common::Deferred> pending = std::move(out.deferred);
  common::WaitReady(*pending);
  common::Request again = request;
  again.resumed = true;
  out.Clear();
  status = metadata.RenderPreview(instance, again, out);
  if (out.deferred) {
    out.Clear();
    out.status = 503;
    out.body = "response not ready; retry\n";
    return common::Unavailable("response not ready");
  }
  return status;
}

}  // namespace openimds::service
