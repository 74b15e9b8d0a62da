#include "service/metadata_service.h"

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
                                 common::MetricsRegistry& metrics)
    : resolver_(resolver),
      catalog_(catalog),
      flavours_(flavours),
      no_flavour_(metrics.GetCounter("metadata_rejected_total",
                                     "Guest requests refused before a flavour rendered them.",
                                     "reason=\"no_flavour\"")),
      unknown_caller_(metrics.GetCounter("metadata_rejected_total",
                                         "Guest requests refused before a flavour rendered them.",
                                         "reason=\"unknown_caller\"")),
      unidentified_(metrics.GetCounter("metadata_rejected_total",
                                       "Guest requests refused before a flavour rendered them.",
                                       "reason=\"unidentified\"")) {}

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
  const model::Instance* instance = snap.FindByAddress(who->network, who->address);
  if (instance == nullptr) {
    unknown_caller_.Inc();
    std::string msg = "no instance is registered for " + who->address.ToString() +
                      " in network " + std::string(who->network);
    common::LogRefusal("metadata", msg);
    flavour->RenderError(common::NotFound(std::move(msg)), request, out);
    return;
  }
  (void)flavour->Render(*instance, request, out);
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
