#pragma once

#include "auth/token_authority.h"
#include "catalog/catalog.h"
#include "common/metrics.h"
#include "flavour/flavour.h"
#include "http/handler.h"
#include "identity/resolver.h"

namespace openimds::service {

// The guest-facing metadata API: identity -> catalog -> flavour -> reply.
// Reads only the in-memory catalog snapshot (no lock, no database) on the
// request path. Thread-safe; all collaborators are borrowed and must outlive it.
//
// Before a flavour renders, the service applies what holds for every
// flavour: per-instance flavour pinning (Instance::flavours), and the
// record's metadata options for flavours that do not apply them themselves
// (flavour::Flavour::AppliesMetadataOptions): an instance whose endpoint is
// disabled gets 403 from every flavour; one that requires tokens must send a
// valid IMDSv2 token (X-aws-ec2-metadata-token, issued by PUT
// /latest/api/token) on every flavour's paths, else 401, unless the flavour
// requires an anti-SSRF header of its own. Each refusal is counted in
// metadata_rejected_total{reason=...} and logged (rate-limited).
class MetadataService final : public http::Handler {
 public:
  // `tokens` verifies IMDSv2 tokens for instances that require them; null:
  // no token is valid, so such instances get 401 on those flavours.
  MetadataService(const identity::Resolver& resolver, const catalog::Catalog& catalog,
                  const flavour::Registry& flavours, const auth::TokenAuthority* tokens,
                  common::MetricsRegistry& metrics);

  void Handle(const common::Request& request, common::Response& out) override;

  // Renders `request` as if `instance` had asked (admin "render" preview):
  // the flavour's own rendering, without the service's checks above.
  // NotFound when no flavour owns the path (out is filled with that error).
  common::Status RenderPreview(const model::Instance& instance, const common::Request& request,
                               common::Response& out) const;

 private:
  const identity::Resolver& resolver_;
  const catalog::Catalog& catalog_;
  // The record's metadata options for a flavour that does not apply them
  // itself: OK, or the refusal already rendered into `out`.
  bool AllowedByMetadataOptions(const model::Instance& instance, const flavour::Flavour& flavour,
                                const common::Request& request, common::Response& out) const;

  const flavour::Registry& flavours_;
  const auth::TokenAuthority* tokens_;
  common::Counter& no_flavour_;
  common::Counter& unknown_caller_;
  common::Counter& unidentified_;
  common::Counter& flavour_not_allowed_;
  common::Counter& endpoint_disabled_;
  common::Counter& token_required_;
};

}  // namespace openimds::service
