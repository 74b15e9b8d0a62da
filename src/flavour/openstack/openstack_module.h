#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "flavour/module.h"
#include "flavour/openstack/dynamic_vendordata.h"
#include "flavour/openstack/openstack_flavour.h"
#include "flavour/openstack/password_store.h"
#include "http/http_client.h"

namespace openimds::flavour::openstack {

// The OpenStack flavour as `openimds serve` runs it: the flavour, Nova's
// vendordata flags (--vendordata-*), the StaticJSON file, what the
// DynamicJSON provider needs (the HTTP client with its own thread, the
// DynamicVendorData cache, the prefetch subscription to the change feed),
// and the guest passwords, kept in the store's secrets
// (store::InstancePasswordSecret; GetOrCreateSecret is the atomic
// first-writer-wins compare-and-set).
class OpenStackModule final : public Module {
 public:
  struct Options {
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

  OpenStackModule() = default;
  ~OpenStackModule() override;  // Stop()

  std::string_view Name() const override { return "openstack"; }
  void RegisterOptions(CLI::App& serve) override;
  // None: Nova's guests send plain requests.
  std::vector<std::string_view> GuestHeaders() const override { return {}; }
  // InvalidArgument for bad flags, an unreadable or non-object static file,
  // or a target that is not NAME@http://HOST[:PORT]/PATH; Internal when the
  // flavour cannot be built.
  common::Result<std::unique_ptr<Flavour>> Create(const ServeContext& context) override;
  // Subscribes the prefetch to the change feed (when enabled and there are
  // targets): an instance that appears or changes is fetched for before its
  // guest asks; a deleted one is forgotten. The instances present at start-up
  // are not prefetched: a restart must not send one POST per instance to
  // every target at once.
  void Start() override;
  // Stops prefetching, then the client (its callbacks are dropped).
  void Stop() override;

  Options& options() { return options_; }

 private:
  // The flavour options for the vendordata flags; sets up the DynamicJSON
  // provider when there are targets.
  common::Result<OpenStackFlavour::Options> SetUpVendordata(const ServeContext& context);
  void Changed(const std::vector<feed::Applied>& changes);

  Options options_;
  feed::Follower* follower_ = nullptr;
  bool prefetch_ = false;
  std::unique_ptr<PasswordStore> passwords_;
  // Declared before client_ so that the client (and its thread) goes first.
  std::unique_ptr<DynamicVendorData> dynamic_;
  std::unique_ptr<http::HttpClient> client_;

  std::mutex mu_;
  bool stopping_ = false;  // guarded by mu_
};

}  // namespace openimds::flavour::openstack
