#include "admin/admin_api.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <string>
#include <utility>

#include <boost/json/object.hpp>

#include "admin/admin_http.h"
#include "admin/url_parts.h"
#include "common/log.h"

// The admin API's handler and routing; the routes themselves are in
// instance_commands.cc (one instance, the list, render preview, password),
// import_command.cc (bulk import) and health_routes.cc (health, readiness,
// metrics).
namespace openimds::admin {
namespace {

using common::Code;
using common::Request;
using common::Response;
using common::Status;

constexpr std::string_view kInstanceMethods = "GET, HEAD, PUT, PATCH, DELETE";

}  // namespace

AdminApi::AdminApi(Options options, store::Store& store, catalog::Catalog& catalog,
                   store::WriteQueue& writes, feed::Follower& follower,
                   common::MetricsRegistry& metrics)
    : options_(std::move(options)),
      store_(store),
      catalog_(catalog),
      metrics_(metrics),
      requests_total_(metrics.GetCounter("admin_requests_total", "Admin API requests received.")),
      writes_total_(metrics.GetCounter("admin_writes_total",
                                       "Admin API writes committed (put, patch, delete, import).")),
      imported_total_(metrics.GetCounter("admin_instances_imported_total",
                                         "Instances written by admin bulk imports.")),
      submitter_(writes, follower),
      streams_(submitter_) {
  // Registered up front so every reason shows in /metrics from the start (a
  // counter that appears only after its first increment hides rate()s).
  for (int c = static_cast<int>(Code::kNotFound); c <= static_cast<int>(Code::kInternal); ++c) {
    const auto code = static_cast<Code>(c);
    rejected_[c] = &metrics.GetCounter("admin_requests_rejected_total",
                                       "Admin API requests refused, by reason.",
                                       "reason=\"" + std::string(common::CodeName(code)) + "\"");
  }
  unexpected_body_ = &metrics.GetCounter(
      "admin_unexpected_body_total",
      "Admin GET, HEAD and DELETE requests refused (400) for announcing a body.");
  for (const model::LimitInfo& info : model::kLimits) {
    limit_refusals_[static_cast<size_t>(info.limit)] = &metrics.GetCounter(
        "admin_record_limit_refusals_total",
        "Records refused by the admin API (413) for exceeding a record limit, by limit.",
        "limit=\"" + std::string(info.name) + "\"");
  }
}

Status AdminApi::WithinLimits(const model::Instance& instance) const {
  model::Limit exceeded = model::Limit::kRecordBytes;
  Status s = model::CheckLimits(instance, options_.limits, &exceeded);
  if (!s.ok()) limit_refusals_[static_cast<size_t>(exceeded)]->Inc();
  return s;
}

Status AdminApi::WithinRecordBytes(size_t bytes) const {
  Status s = model::CheckRecordBytes(bytes, options_.limits);
  if (!s.ok()) limit_refusals_[static_cast<size_t>(model::Limit::kRecordBytes)]->Inc();
  return s;
}

// GET, HEAD and DELETE take no body on any admin route: a request that
// announces one is refused (400) rather than having its body read or ignored.
bool AdminApi::RefusedForBody(const Request& request, Response& out) {
  if (request.method != "GET" && request.method != "HEAD" && request.method != "DELETE") {
    return false;
  }
  if (!http::AnnouncesBody(request)) return false;
  unexpected_body_->Inc();
  Refuse(request,
         common::InvalidArgument(std::string(request.method) +
                                 " requests take no body (send no Content-Length or "
                                 "Transfer-Encoding)"),
         out);
  out.close = true;
  return true;
}

void AdminApi::Handle(const Request& request, Response& out) {
  requests_total_.Inc();
  if (RefusedForBody(request, out)) return;
  Status status = Route(request, out);
  if (!status.ok()) Refuse(request, status, out);
}

bool AdminApi::Admit(const Request& head, Response& out) {
  if (RefusedForBody(head, out)) {
    requests_total_.Inc();
    return false;
  }
  if (head.path == "/v1/instances:import" || head.path == "/v1/import") return true;
  auto length = head.Header("Content-Length");
  if (!length) return true;  // chunked: judged once read, against the same limit
  uint64_t bytes = 0;
  auto [end, ec] = std::from_chars(length->data(), length->data() + length->size(), bytes);
  if (ec != std::errc() || end != length->data() + length->size()) return true;
  Status s = WithinRecordBytes(static_cast<size_t>(std::min<uint64_t>(bytes, SIZE_MAX)));
  if (s.ok()) return true;
  requests_total_.Inc();
  Refuse(head, s, out);
  out.close = true;
  return false;
}

void AdminApi::ShapeRefusal(int status, std::string_view message, Response& out) {
  boost::json::object error;
  error["code"] = status == 413 || status == 431 ? "payload_too_large" : "invalid_argument";
  error["message"] = message;
  boost::json::object body;
  body["error"] = std::move(error);
  const bool close = out.close;
  WriteJson(out, status, body);
  out.close = close;
}

void AdminApi::Refuse(const Request& request, const Status& status, Response& out) {
  boost::json::object error;
  error["code"] = common::CodeName(status.code());
  error["message"] = status.message();
  boost::json::object body;
  body["error"] = std::move(error);
  WriteJson(out, common::HttpStatusFor(status.code()), body);
  out.head = request.method == "HEAD";
  // A busy write queue (429) or a store that is away (503) clears up by
  // itself: tell clients when to try again.
  if (status.code() == Code::kResourceExhausted || status.code() == Code::kUnavailable) {
    out.AddHeader("Retry-After", "1");
  }

  const auto index = static_cast<size_t>(status.code());
  if (index < rejected_.size() && rejected_[index] != nullptr) rejected_[index]->Inc();
  common::LogWarn(kComponent,
                  Printable(std::string(request.method) + " " + std::string(request.path) +
                            " refused: " + status.ToString()));
}

Status AdminApi::Route(const Request& request, Response& out) {
  const std::string_view path = request.path;
  if (path == "/healthz" || path == "/readyz" || path == "/metrics") return Health(request, out);
  if (path == "/v1/instances") {
    if (!IsGetOrHead(request.method)) return MethodNotAllowed(request, "GET, HEAD", out);
    return ListInstances(request, out);
  }
  if (path == "/v1/instances:import" || path == "/v1/import") {
    if (request.method != "POST") return MethodNotAllowed(request, "POST", out);
    return Import(request, out);
  }
  if (path.substr(0, kInstancesPrefix.size()) == kInstancesPrefix) {
    std::string_view rest = path.substr(kInstancesPrefix.size());
    const size_t slash = rest.find('/');
    std::string_view raw_id = rest.substr(0, slash);
    std::string_view sub =
        slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
    auto id = PercentDecode(raw_id);
    if (!id || !IsValidId(*id)) {
      return common::InvalidArgument(
          "bad instance id in the URL: ids are 1 to 128 characters of [A-Za-z0-9._:-]");
    }
    if (slash == std::string_view::npos) return RouteInstance(request, *id, out);
    if (sub == "/password") {
      if (!IsGetOrHead(request.method) && request.method != "DELETE") {
        return MethodNotAllowed(request, "GET, HEAD, DELETE", out);
      }
      return Password(request, *id, out);
    }
    if (sub == "/render") {
      if (!IsGetOrHead(request.method)) return MethodNotAllowed(request, "GET, HEAD", out);
      return Render(request, *id, out);
    }
  }
  return common::NotFound("no route for " + std::string(path));
}

Status AdminApi::RouteInstance(const Request& request, std::string_view id, Response& out) {
  const std::string_view method = request.method;
  if (!IsGetOrHead(method) && method != "PUT" && method != "PATCH" && method != "DELETE") {
    return MethodNotAllowed(request, kInstanceMethods, out);
  }
  if (Status s = NoQuery(request); !s.ok()) return s;
  if (IsGetOrHead(method)) return GetInstance(request, id, out);
  if (method == "PUT") return PutInstance(request, id, out);
  if (method == "PATCH") return PatchInstance(request, id, out);
  return DeleteInstance(request, id, out);
}

void AdminApi::Submit(store::Write write, std::shared_ptr<PendingWrite> pending, Response& out,
                      std::function<void(store::WriteOutcome&)> after_commit) {
  out.deferred = pending;
  submitter_.Submit(std::move(write), std::move(pending), std::move(after_commit));
}

}  // namespace openimds::admin
