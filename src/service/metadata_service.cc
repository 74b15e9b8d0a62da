#include "service/metadata_service.h"

#include <algorithm>
#include <optional>

#include "common/log.h"

namespace openimds::service {
namespace {

void NoFlavour(const common::Request& request, common::Response& out) {
  out.status = 404;
  out.content_type = "text/plain";
  out.body.assign("no metadata flavour serves this path\n");
}

}  // namespace

MetadataService::MetadataService(const identity::Resolver& resolver,
                                 const catalog::Catalog& catalog,
                                 const flavour::Registry& flavours,
                                 const auth::TokenAuthority* tokens,
                                 common::MetricsRegistry& metrics)
    : resolver_(resolver),
      catalog_(catalog),
      flavours_(flavours),
      tokens_(tokens),
      no_flavour_(metrics.GetCounter("metadata_rejected_total",
                                     "Guest requests refused before a flavour rendered them.",
                                     "reason=\"no_flavour\"")),
      unknown_caller_(metrics.GetCounter("metadata_rejected_total",
                                         "Guest requests refused before a flavour rendered them.",
                                         "reason=\"unknown_caller\"")),
      unidentified_(metrics.GetCounter("metadata_rejected_total",
                                       "Guest requests refused before a flavour rendered them.",
                                       "reason=\"unidentified\"")),
      flavour_not_allowed_(metrics.GetCounter(
          "metadata_rejected_total", "Guest requests refused before a flavour rendered them.",
          "reason=\"flavour_not_allowed\"")),
      endpoint_disabled_(metrics.GetCounter(
          "metadata_rejected_total", "Guest requests refused before a flavour rendered them.",
          "reason=\"endpoint_disabled\"")),
      token_required_(metrics.GetCounter(
          "metadata_rejected_total", "Guest requests refused before a flavour rendered them.",
          "reason=\"token_required\"")) {}

bool MetadataService::AllowedByMetadataOptions(const model::Instance& instance,
                                               const flavour::Flavour& flavour,
                                               const common::Request& request,
                                               common::Response& out) const {
  if (flavour.AppliesMetadataOptions()) return true;
  if (!instance.options.http_endpoint_enabled) {
    endpoint_disabled_.Inc();
    common::LogRefusal("metadata", "instance " + instance.id + ": endpoint disabled (flavour " +
                                       std::string(flavour.Name()) + ")");
    flavour.RenderError(
        common::PermissionDenied("the metadata endpoint is disabled for this instance"), request,
        out);
    return false;
  }
  if (instance.options.http_tokens != model::MetadataOptions::HttpTokens::kRequired ||
      flavour.RequiresOwnAntiSsrfHeader()) {
    return true;
  }
  // The same token EC2 guests send: one header, verified for this instance.
  const int count = request.HeaderCount(auth::kTokenHeader);
  auth::TokenError why = auth::TokenError::kMalformed;
  std::string_view reason = "token missing";
  if (count == 1 && tokens_ != nullptr) {
    if (tokens_->Verify(*request.Header(auth::kTokenHeader), instance.id,
                        instance.managed.incarnation, &why)
            .ok()) {
      return true;
    }
    reason = auth::TokenErrorName(why);
  } else if (count > 1) {
    reason = "token repeated";
  }
  token_required_.Inc();
  common::LogRefusal("metadata", "instance " + instance.id + ": " + std::string(reason) +
                                     " (tokens required, flavour " +
                                     std::string(flavour.Name()) + ")");
  flavour.RenderError(common::Unauthenticated("this instance requires an IMDSv2 token: PUT "
                                              "/latest/api/token, then send it in " +
                                              std::string(auth::kTokenHeader)),
                      request, out);
  return false;
}

void MetadataService::Handle(const common::Request& request, common::Response& out) {
  // One catalog reader per I/O thread: one atomic load per request while the
  // catalog does not change. Keyed by catalog so tests with several servers
  // in one process stay correct.
  thread_local const catalog::Catalog* reader_owner = nullptr;
  thread_local std::optional<catalog::Catalog::Reader> reader;
  if (reader_owner != &catalog_) {
    reader.emplace(catalog_);
    reader_owner = &catalog_;
  }

  // No answer to HEAD has a body, refusals included; a flavour that renders
  // sets this again.
  out.head = request.method == "HEAD";
  // Proxies health-check their upstreams here; answer without identity or logs.
  if (resolver_.proxy_mode() && request.path == "/healthz") {
    out.body.assign("ok\n");
    return;
  }
  const flavour::Flavour* flavour = flavours_.Find(request);
  if (flavour == nullptr) {
    no_flavour_.Inc();
    common::LogRefusal("metadata", "no flavour for " + std::string(request.path) + " from " +
                                    request.peer.ToString());
    NoFlavour(request, out);
    return;
  }
  auto who = resolver_.Resolve(request);
  if (!who.ok()) {
    unidentified_.Inc();
    common::LogRefusal("metadata", "cannot identify caller: " + who.status().message());
    flavour->RenderError(who.status(), request, out);
    return;
  }
  const catalog::Snapshot& snap = reader->Get();
  // By (network, address), or by instance id for Neutron callers.
  auto found = resolver_.Lookup(snap, *who);
  if (!found.ok()) {
    unknown_caller_.Inc();
    common::LogRefusal("metadata", found.status().message() + " in network " +
                                       std::string(who->network));
    flavour->RenderError(found.status(), request, out);
    return;
  }
  const model::Instance* instance = *found;
  // Per-instance flavour pinning: an image that expects only some dialects
  // is not shown the others (an empty list means every flavour).
  if (!instance->flavours.empty() &&
      std::find(instance->flavours.begin(), instance->flavours.end(), flavour->Name()) ==
          instance->flavours.end()) {
    flavour_not_allowed_.Inc();
    common::LogRefusal("metadata", "instance " + instance->id + " is not served by flavour " +
                                       std::string(flavour->Name()));
    flavour->RenderError(common::NotFound("flavour " + std::string(flavour->Name()) +
                                          " is not enabled for this instance"),
                         request, out);
    return;
  }
  if (!AllowedByMetadataOptions(*instance, *flavour, request, out)) return;
  (void)flavour->Render(*instance, request, out);
  // A proxied caller is not at the other end of this socket: the hop limit
  // travels to the proxy as a header instead.
  identity::Resolver::AdaptResponse(*who, out);
}

common::Status MetadataService::RenderPreview(const model::Instance& instance,
                                              const common::Request& request,
                                              common::Response& out) const {
  const flavour::Flavour* flavour = flavours_.Find(request);
  if (flavour == nullptr) {
    NoFlavour(request, out);
    return common::NotFound("no metadata flavour serves " + std::string(request.path));
  }
  return flavour->Render(instance, request, out);
}

}  // namespace openimds::service
