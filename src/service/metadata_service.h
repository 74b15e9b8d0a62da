#pragma once

#include "auth/token_authority.h"
#include "catalog/catalog.h"
#include "common/metrics.h"
#include "flavour/flavour.h"
#include "http/handler.h"
#include "identity/resolver.h"
#include "service/instance_limiter.h"

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
//
// First of all, once the instance is known, its request limits
// (InstanceLimiter: rate and burst, requests in flight; the record's "limits"
// over the server's defaults) for every flavour, method and listener mode:
// over a limit, 429 in the flavour's error format with Retry-After, counted
// by the limiter and not logged per request; on direct-mode listeners the
// 429 is held back for InstanceLimiter::Options::refusal_delay first (the
// request parks as a Deferred; no thread waits). An admitted request holds its
// in-flight slot until Handle returns, or, when the flavour defers its
// answer, until the http core has called Handle again for it (the slot rides
// in the Deferred; the second call is not charged again).
class MetadataService final : public http::Handler {
 public:
  // `tokens` verifies IMDSv2 tokens for instances that require them; null:
  // no token is valid, so such instances get 401 on those flavours.
  // `limiter`: per-instance limits, shared by every service of a server so an
  // instance has one budget whichever listener it comes through; null: none.
  MetadataService(const identity::Resolver& resolver, const catalog::Catalog& catalog,
                  const flavour::Registry& flavours, const auth::TokenAuthority* tokens,
                  common::MetricsRegistry& metrics, InstanceLimiter* limiter = nullptr);

  void Handle(const common::Request& request, common::Response& out) override;
  // GET and HEAD take no body on any guest route: one that announces a body
  // (http::AnnouncesBody) is refused with 400 on its header, before the body
  // is read, and the connection closes.
  bool Admit(const common::Request& head, common::Response& out) override;

  // Renders `request` as if `instance` had asked (admin "render" preview):
  // the flavour's own rendering, without the service's checks above.
  // NotFound when no flavour owns the path (out is filled with that error).
  common::Status RenderPreview(const model::Instance& instance, const common::Request& request,
                               common::Response& out) const;

 private:
  const identity::Resolver& resolver_;
  const catalog::Catalog& catalog_;
  // Handle for a request, once unwrapped from the service's own Deferred.
  void HandleRequest(const common::Request& request, common::Response& out);
  // The instance's request limits: admitted (its slot in `slot`), or the 429
  // already rendered into `out`.
  bool AdmittedByLimits(const model::Instance& instance, const flavour::Flavour& flavour,
                        const common::Request& request, common::Response& out,
                        InstanceLimiter::Slot& slot);
  // The instance's limit on open connections (direct listeners): admitted
  // (the connection's slot kept in Request::connection_state until it
  // closes), or the 429 already rendered into `out`, with Connection: close.
  bool AdmittedConnection(const model::Instance& instance, const flavour::Flavour& flavour,
                          const common::Request& request, common::Response& out);
  // The 429 for a refusal: the flavour's error format and Retry-After.
  void RenderRefusal(const flavour::Flavour& flavour, InstanceLimiter::Reason reason,
                     int64_t retry_after_s, const common::Request& request,
                     common::Response& out) const;
  // The record's metadata options for a flavour that does not apply them
  // itself: OK, or the refusal already rendered into `out`.
  bool AllowedByMetadataOptions(const model::Instance& instance, const flavour::Flavour& flavour,
                                const common::Request& request, common::Response& out) const;

  const flavour::Registry& flavours_;
  const auth::TokenAuthority* tokens_;
  InstanceLimiter* limiter_;
  // What a refused guest reads, made once (no allocation per refusal).
  const common::Status over_rate_;
  const common::Status over_in_flight_;
  const common::Status over_connections_;
  common::Counter& no_flavour_;
  common::Counter& unknown_caller_;
  common::Counter& unidentified_;
  common::Counter& flavour_not_allowed_;
  common::Counter& endpoint_disabled_;
  common::Counter& token_required_;
  common::Counter& unexpected_body_;

  // A GET or HEAD that announces a body: refused into `out` (and true).
  bool RefusedForBody(const common::Request& request, common::Response& out);
};

}  // namespace openimds::service
