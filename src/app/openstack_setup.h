#pragma once

#include <CLI/CLI.hpp>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "feed/follower.h"
#include "common/clock.h"
#include "common/http_message.h"
#include "common/metrics.h"
#include "common/result.h"
#include "flavour/openstack/dynamic_vendordata.h"
#include "flavour/openstack/openstack_flavour.h"
#include "http/http_client.h"
#include "model/instance.h"
#include "service/metadata_service.h"

namespace openimds::app {

// The OpenStack parts of `openimds serve` beyond the flavour itself: Nova's
// vendordata providers. Kept out of serve_command.cc so the composition root
// stays a list of parts.
struct OpenStackServeOptions {
  // --vendordata-file PATH: Nova's [api]vendordata_jsonfile_path, a JSON
  // object. Empty: {}.
  std::string vendordata_file;
  // --vendordata-providers: Nova's [api]vendordata_providers (StaticJSON,
  // DynamicJSON), in order. Unset: StaticJSON, plus DynamicJSON when
  // targets are given. Set without StaticJSON: vendor_data.json is 404.
  std::vector<std::string> vendordata_providers;
  // --vendordata-target NAME@URL, repeatable: [api]vendordata_dynamic_targets.
  std::vector<std::string> vendordata_targets;
  // --vendordata-connect-timeout SECONDS: [api]vendordata_dynamic_connect_timeout
  // (Nova: default 5, minimum 3, kept here).
  int connect_timeout_seconds = 5;
  // --vendordata-read-timeout SECONDS: [api]vendordata_dynamic_read_timeout
  // (Nova: default 5, minimum 0). Bounds the whole response, not each read.
  int read_timeout_seconds = 5;
  // --vendordata-failure-fatal: [api]vendordata_dynamic_failure_fatal.
  bool failure_fatal = false;
  // --vendordata-cache-ttl SECONDS: freshness of a target's answer without
  // Cache-Control max-age/no-store/no-cache (0 = refetch every time, Nova).
  int cache_ttl_seconds = 60;
  // --vendordata-max-ttl SECONDS: cap on a target's max-age.
  int max_ttl_seconds = 3600;
  // --[no-]vendordata-prefetch: fetch when an instance appears or changes in
  // the catalog, before its guest asks.
  bool prefetch = true;
};

void RegisterOpenStackServeFlags(CLI::App& serve, OpenStackServeOptions& options);

// Owns what the DynamicJSON provider needs: the HTTP client (own thread),
// the cache (flavour::openstack::DynamicVendorData) and the prefetch
// subscription to the change feed. Create it before the flavour registry (the flavour borrows it) so
// it is destroyed after the flavour.
class OpenStackRuntime {
 public:
  // InvalidArgument for bad flags, an unreadable or non-object static file,
  // or a target that is not NAME@http://HOST[:PORT]/PATH.
  static common::Result<std::unique_ptr<OpenStackRuntime>> Create(
      const OpenStackServeOptions& options, const catalog::Catalog& catalog,
      feed::Follower& follower, const common::Clock& clock, common::MetricsRegistry& metrics);
  // Stops prefetching, then the client (its callbacks are dropped). Stop the
  // follower first: its subscription calls into this object.
  ~OpenStackRuntime();
  OpenStackRuntime(const OpenStackRuntime&) = delete;
  OpenStackRuntime& operator=(const OpenStackRuntime&) = delete;

  // What OpenStackFlavour::Create needs (random_bytes left default).
  flavour::openstack::OpenStackFlavour::Options FlavourOptions() const;

  // Subscribes the prefetch to the change feed (when enabled and there are
  // targets): an instance that appears or changes is fetched for before its
  // guest asks; a deleted one is forgotten. The instances present at start-up
  // are not prefetched: a restart must not send one POST per instance to
  // every target at once.
  void Start();

 private:
  OpenStackRuntime(const catalog::Catalog& catalog, feed::Follower& follower)
      : catalog_(catalog), follower_(follower) {}
  void Changed(const std::vector<feed::Applied>& changes);

  const catalog::Catalog& catalog_;
  feed::Follower& follower_;
  flavour::openstack::OpenStackFlavour::Options flavour_options_;
  bool prefetch_ = false;
  // Declared before client_ so that the client (and its thread) goes first.
  std::unique_ptr<flavour::openstack::DynamicVendorData> dynamic_;
  std::unique_ptr<http::HttpClient> client_;

  std::mutex mu_;
  bool stopping_ = false;  // guarded by mu_
};

// The admin render preview for `metadata`: a render that defers (a cold
// DynamicJSON cache) is waited for here, blocking this thread (the admin
// listener has one of its own), and rendered once more.
common::Status RenderPreviewWaiting(const service::MetadataService& metadata,
                                    const model::Instance& instance, const common::Request& request,
                                    common::Response& out);

}  // namespace openimds::app
