#include "admin/admin_api.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "admin/admin_http.h"
#include "common/log.h"
#include "common/parallel_for.h"

// What the admin API reports about the server: /healthz, /readyz, /metrics,
// and, at start-up, the stored records over the record limits.
namespace openimds::admin {

using common::Request;
using common::Response;
using common::Status;

// Routed here: /healthz, /readyz and /metrics.
Status AdminApi::Health(const Request& request, Response& out) {
  if (!IsGetOrHead(request.method)) return MethodNotAllowed(request, "GET, HEAD", out);
  out.head = request.method == "HEAD";
  if (request.path == "/metrics") {
    out.content_type = "text/plain; version=0.0.4";
    out.body = metrics_.RenderPrometheus();
  } else if (request.path == "/healthz") {
    out.body = "ok\n";
  } else if (!options_.store_healthy || options_.store_healthy()) {
    // Guests are served either way; a store that takes only some writes
    // says so (200: taking this node out would not help them).
    const std::string degraded = store_.DegradedReason();
    out.body = degraded.empty() ? "ready\n" : "degraded: " + degraded + "\n";
  } else {
    out.status = 503;
    out.body = "store unavailable\n";
  }
  return Status::Ok();
}

size_t ReportInstancesOverLimits(const catalog::Catalog& catalog,
                                 const model::RecordLimits& limits,
                                 common::MetricsRegistry& metrics) {
  // On every core: at a million instances this walk is a good part of the
  // start-up (each record is a few cache misses away).
  auto snapshot = catalog.Current();
  std::vector<const model::Instance*> all;
  all.reserve(snapshot->size());
  snapshot->ForEach([&](const catalog::Entry& e) { all.push_back(e.instance.get()); });
  std::atomic<size_t> over_count{0};
  std::atomic<size_t> first_index{SIZE_MAX};
  common::ParallelFor(all.size(), std::max(1u, std::thread::hardware_concurrency()),
                      [&](size_t i) {
                        if (model::CheckLimits(*all[i], limits).ok()) return;
                        over_count.fetch_add(1, std::memory_order_relaxed);
                        size_t seen = first_index.load(std::memory_order_relaxed);
                        while (i < seen && !first_index.compare_exchange_weak(seen, i)) {
                        }
                      },
                      /*min_n=*/4096, /*chunk=*/1024);
  const size_t over = over_count.load();
  std::string first;
  if (over > 0) {
    const model::Instance& in = *all[first_index.load()];
    first = "instance " + in.id + ": " + model::CheckLimits(in, limits).message();
  }
  metrics.AddGauge("admin_instances_over_limits_at_start",
                   "Stored instances over a record limit when the server started (served as "
                   "stored; a write to one must bring it within the limits).",
                   [over] { return static_cast<double>(over); });
  if (over > 0) {
    common::LogWarn(kComponent,
                    Printable(std::to_string(over) +
                              " stored instances exceed the record limits and are served as "
                              "stored; a write to one must bring it within the limits (first: " +
                              first + ")"));
  }
  return over;
}

}  // namespace openimds::admin
