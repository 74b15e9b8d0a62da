#include "service/metadata_service.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "common/log.h"

namespace openimds::service {
namespace {

void NoFlavour(const common::Request& request, common::Response& out) {
  out.status = 404;
  out.content_type = "text/plain";
  out.body.assign("no metadata flavour serves this path\n");
}

// A flavour's Deferred with the in-flight slot of the request it parks: the
// slot is given back when the http core lets go of the Deferred, after the
// second call, or whenever the parked request ends otherwise (connection
// gone, server stopping). A long-poll that parks for minutes could hand its
// slot back here instead and take one from a separate per-instance budget of
// parked watches, so that waiting guests do not crowd out ordinary requests.
class HeldDeferred final : public common::Deferred {
 public:
  HeldDeferred(std::shared_ptr<common::Deferred> inner, InstanceLimiter::Slot slot)
      : inner_(std::move(inner)), slot_(std::move(slot)) {}
  void OnReady(std::function<void()> ready) override { inner_->OnReady(std::move(ready)); }
  std::chrono::milliseconds MaxWait() const override { return inner_->MaxWait(); }
  const std::shared_ptr<common::Deferred>& inner() const { return inner_; }

 private:
  std::shared_ptr<common::Deferred> inner_;
  InstanceLimiter::Slot slot_;
};

// A refusal held back before it is sent (InstanceLimiter::Options::
// refusal_delay): never ready early, so the http core answers the second call
// once MaxWait() has passed; that call renders the 429 decided here.
class HeldRefusal final : public common::Deferred {
 public:
  HeldRefusal(std::chrono::milliseconds delay, const flavour::Flavour& flavour,
              InstanceLimiter::Reason reason, int64_t retry_after_s, InstanceLimiter& limiter)
      : delay_(delay),
        flavour_(flavour),
        reason_(reason),
        retry_after_s_(retry_after_s),
        hold_(limiter) {}
  void OnReady(std::function<void()> ready) override { (void)ready; }  // due at MaxWait only
  std::chrono::milliseconds MaxWait() const override { return delay_; }

  const flavour::Flavour& flavour() const { return flavour_; }
  InstanceLimiter::Reason reason() const { return reason_; }
  int64_t retry_after_s() const { return retry_after_s_; }

 private:
  const std::chrono::milliseconds delay_;
  const flavour::Flavour& flavour_;
  const InstanceLimiter::Reason reason_;
  const int64_t retry_after_s_;
  InstanceLimiter::Hold hold_;
};

// A connection's place among its instance's open connections, kept in the
// connection's state (Request::connection_state) until the connection closes.
struct ConnectionHold {
  ConnectionHold(std::string id, InstanceLimiter::Slot s)
      : instance(std::move(id)), slot(std::move(s)) {}
  std::string instance;
  InstanceLimiter::Slot slot;
};

}  // namespace

MetadataService::MetadataService(const identity::Resolver& resolver,
                                 const catalog::Catalog& catalog, const flavour::Registry& flavours,
                                 const auth::TokenAuthority* tokens,
                                 common::MetricsRegistry& metrics, InstanceLimiter* limiter)
    : resolver_(resolver),
      catalog_(catalog),
      flavours_(flavours),
      tokens_(tokens),
      limiter_(limiter),
      over_rate_(common::ResourceExhausted(
          "too many requests from this instance: retry after the number of seconds in "
          "Retry-After")),
      over_in_flight_(common::ResourceExhausted(
          "too many requests from this instance at once: retry after the number of seconds "
          "in Retry-After")),
      over_connections_(common::ResourceExhausted(
          "too many connections from this instance: close some, or retry after the number of "
          "seconds in Retry-After")),
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
      token_required_(metrics.GetCounter("metadata_rejected_total",
                                         "Guest requests refused before a flavour rendered them.",
                                         "reason=\"token_required\"")),
      unexpected_body_(metrics.GetCounter("metadata_rejected_total",
                                          "Guest requests refused before a flavour rendered them.",
                                          "reason=\"unexpected_body\"")) {}

bool MetadataService::RefusedForBody(const common::Request& request, common::Response& out) {
  const bool head = request.method == "HEAD";
  if (!head && request.method != "GET") return false;
  if (!http::AnnouncesBody(request)) return false;
  unexpected_body_.Inc();
  common::LogRefusal("metadata", std::string(request.method) + " " + std::string(request.path) +
                                     " from " + request.peer.ToString() +
                                     " announced a body: refused");
  const common::Status error =
      common::InvalidArgument(std::string(request.method) +
                              " requests take no body (send no Content-Length or "
                              "Transfer-Encoding)");
  if (const flavour::Flavour* flavour = flavours_.Find(request)) {
    flavour->RenderError(error, request, out);
  } else {
    out.status = 400;
    out.content_type = "text/plain";
    out.body.assign(error.message()).append("\n");
  }
  out.head = head;
  out.close = true;  // whatever the body was, it is not read
  return true;
}

bool MetadataService::Admit(const common::Request& head, common::Response& out) {
  return !RefusedForBody(head, out);
}

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

bool MetadataService::AdmittedByLimits(const model::Instance& instance,
                                       const flavour::Flavour& flavour,
                                       const common::Request& request, common::Response& out,
                                       InstanceLimiter::Slot& slot) {
  // A resumed request was admitted by its first call, whose slot it still holds.
  if (limiter_ == nullptr || request.resumed) return true;
  InstanceLimiter::Decision d = limiter_->Admit(instance.id, limiter_->Effective(*instance.limits));
  if (d.admitted) {
    slot = std::move(d.slot);
    return true;
  }
  // Counted and summarised in the log by the limiter: no line per refusal.
  // Held back first where the connection is this guest's alone: a guest
  // that ignores 429 then waits too, instead of taking the thread.
  const auto delay = limiter_->options().refusal_delay;
  if (delay.count() > 0 && !resolver_.proxy_mode()) {
    out.deferred =
        std::make_shared<HeldRefusal>(delay, flavour, d.reason, d.retry_after_s, *limiter_);
    return false;
  }
  RenderRefusal(flavour, d.reason, d.retry_after_s, request, out);
  return false;
}

bool MetadataService::AdmittedConnection(const model::Instance& instance,
                                         const flavour::Flavour& flavour,
                                         const common::Request& request, common::Response& out) {
  // A proxy's connection carries many guests: the proxy caps each of them.
  if (limiter_ == nullptr || request.connection_state == nullptr || resolver_.proxy_mode()) {
    return true;
  }
  std::shared_ptr<void>& state = *request.connection_state;
  if (state != nullptr &&
      static_cast<const ConnectionHold*>(state.get())->instance == instance.id) {
    return true;  // this connection already counts against the instance
  }
  state.reset();  // the connection now serves another instance (records changed)
  const Limits limits = limiter_->Effective(*instance.limits);
  InstanceLimiter::Decision d = limiter_->AdmitConnection(instance.id, limits);
  if (!d.admitted) {
    // Counted and summarised in the log by the limiter.
    RenderRefusal(flavour, d.reason, d.retry_after_s, request, out);
    out.close = true;  // a connection over the limit is not kept
    return false;
  }
  if (d.slot.held()) state = std::make_shared<ConnectionHold>(instance.id, std::move(d.slot));
  return true;
}

void MetadataService::RenderRefusal(const flavour::Flavour& flavour, InstanceLimiter::Reason reason,
                                    int64_t retry_after_s, const common::Request& request,
                                    common::Response& out) const {
  flavour.RenderError(reason == InstanceLimiter::Reason::kRate          ? over_rate_
                      : reason == InstanceLimiter::Reason::kConnections ? over_connections_
                                                                        : over_in_flight_,
                      request, out);
  char seconds[24];
  const int n =
      std::snprintf(seconds, sizeof(seconds), "%lld", static_cast<long long>(retry_after_s));
  out.AddHeader("Retry-After", std::string(seconds, static_cast<size_t>(n)));
}

void MetadataService::Handle(const common::Request& request, common::Response& out) {
  // The second call for a request this service parked.
  if (request.resumed && request.resumed_from != nullptr) {
    // A refusal held back: sent now, as decided then.
    if (const auto* refusal = dynamic_cast<const HeldRefusal*>(request.resumed_from.get())) {
      out.head = request.method == "HEAD";
      RenderRefusal(refusal->flavour(), refusal->reason(), refusal->retry_after_s(), request, out);
      return;
    }
    // A render parked with its in-flight slot: the flavour gets its own
    // Deferred back, as if the service were not there.
    if (const auto* held = dynamic_cast<const HeldDeferred*>(request.resumed_from.get())) {
      common::Request unwrapped = request;  // a copy on this rare path only
      unwrapped.resumed_from = held->inner();
      HandleRequest(unwrapped, out);
      return;
    }
  }
  HandleRequest(request, out);
}

void MetadataService::HandleRequest(const common::Request& request, common::Response& out) {
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
  // A body that arrived with its header, too early for Admit.
  if (RefusedForBody(request, out)) return;
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
  if (!AdmittedConnection(*instance, *flavour, request, out)) return;
  InstanceLimiter::Slot slot;  // given back when this call returns, unless parked below
  if (!AdmittedByLimits(*instance, *flavour, request, out, slot)) return;
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
  if (out.deferred && slot.held()) {
    // Parked: the request stays in flight until the http core is done with it.
    out.deferred = std::make_shared<HeldDeferred>(std::move(out.deferred), std::move(slot));
  }
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
