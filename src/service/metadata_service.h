#pragma once

#include "catalog/catalog.h"
#include "common/metrics.h"
#include "flavour/flavour.h"
#include "http/handler.h"
#include "identity/resolver.h"

namespace openimds::service {

// The guest-facing metadata API: identity -> catalog -> flavour -> reply.
// Reads only the in-memory catalog snapshot (no lock, no database) on the
// request path. Thread-safe; all collaborators are borrowed and must outlive it.
class MetadataService final : public http::Handler {
 public:
  MetadataService(const identity::Resolver& resolver, const catalog::Catalog& catalog,
                  const flavour::Registry& flavours, common::MetricsRegistry& metrics);

  void Handle(const common::Request& request, common::Response& out) override;

  // Renders `request` as if `instance` had asked (admin "render" preview).
  // NotFound when no flavour owns the path (out is filled with that error).
  common::Status RenderPreview(const model::Instance& instance, const common::Request& request,
                               common::Response& out) const;

 private:
  const identity::Resolver& resolver_;
  const catalog::Catalog& catalog_;
  const flavour::Registry& flavours_;
  common::Counter& no_flavour_;
  common::Counter& unknown_caller_;
  common::Counter& unidentified_;
  common::Counter& flavour_not_allowed_;
};

}  // namespace openimds::service
