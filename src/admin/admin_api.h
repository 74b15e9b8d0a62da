#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "admin/import_streams.h"
#include "admin/pending_write.h"
#include "catalog/catalog.h"
#include "common/http_message.h"
#include "common/metrics.h"
#include "common/status.h"
#include "feed/follower.h"
#include "http/handler.h"
#include "model/instance.h"
#include "model/record_limits.h"
#include "store/store.h"
#include "store/write_queue.h"

namespace openimds::admin {

// The admin API as a transport-free request handler: the http core (or a test)
// hands it a parsed common::Request and sends back the common::Response it
// fills. Routes, status codes and examples are in docs/admin_api.md:
//
//   PUT    /v1/instances/{id}          create or replace (If-Match, If-None-Match: *)
//   GET    /v1/instances/{id}          one instance, ETag: "<revision>"
//   PATCH  /v1/instances/{id}          JSON merge patch (RFC 7396)
//   DELETE /v1/instances/{id}          204
//   GET    /v1/instances               list (?network= &address= &limit=)
//   POST   /v1/instances:import        NDJSON bulk import, all or nothing (also /v1/import)
//   GET    /v1/instances/{id}/render   preview what a guest would see (?flavour= &path= &header=)
//   GET    /healthz /readyz /metrics
//
// Errors are always JSON {"error":{"code":"<CodeName>","message":"..."}} with
// the HTTP status of common::HttpStatusFor. Every refusal increments
// admin_requests_rejected_total{reason="<code>"} and logs one warning line
// (method, path and reason; never a body). Authentication is not done here:
// app/ wraps this handler in http::BearerAuthHandler on a TCP listener.
//
// Record limits (model/record_limits.h, Options::limits): a PUT or PATCH body
// or an import line longer than Limit::kRecordBytes is refused before it is
// parsed; a record over any other limit (for a PATCH: the record the patch
// would leave) is refused before it reaches the store. Both are 413
// payload_too_large naming the JSON pointer (an import's also the line), and
// count in admin_record_limit_refusals_total{limit="<name>"}.
//
// Consistency: a successful write has been made durable by the store AND
// applied to this node's catalog by the feed::Follower before the response
// leaves, so a guest sees the change as soon as the admin call has answered
// (read-your-writes). Reads (GET, list, render, and the base of a PATCH's
// response) come from the catalog snapshot and never touch the store.
//
// Writes go through a store::WriteQueue: concurrent writers share one
// transaction and one fsync (group commit). Preconditions (If-Match,
// If-None-Match) and merge patches are evaluated inside the store's
// transaction on the current record, so two writers never overwrite each
// other unknowingly. A write does not block the admin thread: the handler
// answers with Response::deferred and is called again (Request::resumed) once
// its write is durable and visible; writes by several clients are in flight
// at once.
//
// Thread-safety: Handle may be called concurrently from several threads.
class AdminApi final : public http::Handler {
 public:
  // Renders `request` (a synthetic guest GET) for `instance` exactly as the
  // guest-facing service would, filling `out` with the flavour's response
  // (also for the flavour's own refusals such as 401 or 404: those are part of
  // what a guest sees). The flavour is chosen by the path, as for a guest.
  // Returns non-OK only when it cannot render at all (e.g. NotFound when no
  // flavour owns the path); that status becomes the admin's JSON error.
  using RenderPreviewFn = std::function<common::Status(
      const model::Instance& instance, const common::Request& request, common::Response& out)>;

  struct Options {
    // Injected by app/, which knows the flavours. Null: the render route
    // answers 503 unavailable ("render preview is not configured").
    RenderPreviewFn render_preview;

    // Largest import body accepted (413 beyond). The admin listener's
    // http::Limits::max_body_bytes must be at least this, or the http core
    // refuses first. 64 MiB holds ~30k typical instances, and the whole body is
    // held in memory (and parsed) at once.
    size_t max_import_bytes = 64 * 1024 * 1024;

    // Readiness of the store for /readyz (false: 503 "store unavailable").
    // Null: always ready.
    std::function<bool()> store_healthy;

    // What a record written through this API may hold (413 beyond).
    model::RecordLimits limits;

    // Threads that parse an import's lines (the admin thread included).
    unsigned import_parse_threads = std::max(1u, std::thread::hardware_concurrency());
  };

  // Every reference is borrowed and must outlive this object. `writes`
  // commits to `store`; `follower` keeps `catalog` following `store`.
  AdminApi(Options options, store::Store& store, catalog::Catalog& catalog,
           store::WriteQueue& writes, feed::Follower& follower, common::MetricsRegistry& metrics);

  AdminApi(const AdminApi&) = delete;
  AdminApi& operator=(const AdminApi&) = delete;

  // Fills `out` for `request`. Never throws on any input. `out` is expected to
  // be freshly cleared (common::Response::Clear()).
  void Handle(const common::Request& request, common::Response& out) override;
  // The HTTP core's own refusals (an import over the body limit, a header
  // too large, a malformed request) in the API's JSON error shape.
  void ShapeRefusal(int status, std::string_view message, common::Response& out) override;
  // On the header: a body announced larger than its route takes (one
  // record's limit everywhere but the import) is refused 413, and any body
  // announced on GET, HEAD or DELETE (which take none) 400, before a byte
  // of it is read.
  bool Admit(const common::Request& head, common::Response& out) override;

 private:
  // Route handlers. Each returns OK after filling `out` with a success
  // response, or the refusal, which Handle turns into the JSON error.
  common::Status Route(const common::Request& request, common::Response& out);
  common::Status RouteInstance(const common::Request& request, std::string_view id,
                               common::Response& out);
  common::Status GetInstance(const common::Request& request, std::string_view id,
                             common::Response& out);
  common::Status PutInstance(const common::Request& request, std::string_view id,
                             common::Response& out);
  common::Status PatchInstance(const common::Request& request, std::string_view id,
                               common::Response& out);
  common::Status DeleteInstance(const common::Request& request, std::string_view id,
                                common::Response& out);
  common::Status Password(const common::Request& request, std::string_view id,
                          common::Response& out);
  common::Status ListInstances(const common::Request& request, common::Response& out);
  common::Status Import(const common::Request& request, common::Response& out);
  common::Status StartImport(const common::Request& request, common::Response& out);
  common::Status FinishImport(const common::Request& request, common::Response& out);
  common::Status Render(const common::Request& request, std::string_view id, common::Response& out);
  // /healthz, /readyz, /metrics.
  common::Status Health(const common::Request& request, common::Response& out);

  // Queues `write`, defers `out` until it is durable and visible (or refused).
  // `after_commit`, if set, runs on the write queue's thread with the outcome
  // before the answer is released (clean-up that must follow a commit); it may
  // reword the outcome's status.
  void Submit(store::Write write, std::shared_ptr<PendingWrite> pending, common::Response& out,
              std::function<void(store::WriteOutcome&)> after_commit = {});

  // OK, or the PayloadTooLarge of model::CheckLimits / CheckRecordBytes,
  // counted by limit. Thread-safe (PATCH calls it on the write queue's thread).
  common::Status WithinLimits(const model::Instance& instance) const;
  common::Status WithinRecordBytes(size_t bytes) const;

  // Writes the JSON error body for `status`, counts and logs the refusal.
  // Keeps headers already in `out` (the Allow header of a 405).
  void Refuse(const common::Request& request, const common::Status& status, common::Response& out);
  // A GET, HEAD or DELETE that announces a body: refused into `out` (true).
  bool RefusedForBody(const common::Request& request, common::Response& out);

  // Constant after construction.
  const Options options_;
  store::Store& store_;
  catalog::Catalog& catalog_;
  common::MetricsRegistry& metrics_;
  common::Counter& requests_total_;
  common::Counter& writes_total_;
  common::Counter& imported_total_;
  // Thread-safe; each guards its own state.
  WriteSubmitter submitter_;
  ImportStreams streams_;
  // admin_requests_rejected_total{reason=CodeName(code)}, indexed by Code.
  std::array<common::Counter*, 13> rejected_{};
  common::Counter* unexpected_body_ = nullptr;  // admin_unexpected_body_total
  // admin_record_limit_refusals_total{limit=LimitInfo::name}, indexed by Limit.
  std::array<common::Counter*, model::kLimitCount> limit_refusals_{};
};

// Start-up: counts the instances in `catalog` that exceed `limits` (stored by
// a version with other limits, or by an operator who lowered one), publishes
// the count as the gauge admin_instances_over_limits_at_start and, when there
// are any, logs one line with the count and the first one's refusal. Such
// records stay loaded and served as stored; the admin API refuses a write to
// one that would leave it over a limit. Returns the count.
size_t ReportInstancesOverLimits(const catalog::Catalog& catalog,
                                 const model::RecordLimits& limits,
                                 common::MetricsRegistry& metrics);

}  // namespace openimds::admin
