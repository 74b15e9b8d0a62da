#pragma once

#include "common/http_message.h"
#include "common/status.h"
#include "model/instance.h"
#include "service/metadata_service.h"

namespace openimds::service {

// The admin render preview of `metadata` for `instance`: a render that
// defers (a cold DynamicJSON cache) is waited for here, blocking the calling
// thread (the admin listener has one of its own), and rendered once more.
// A render that defers a second time is 503 "response not ready; retry"
// (Unavailable). Otherwise the Status of MetadataService::RenderPreview.
common::Status RenderPreviewWaiting(const MetadataService& metadata,
                                    const model::Instance& instance, const common::Request& request,
                                    common::Response& out);

}  // namespace openimds::service
