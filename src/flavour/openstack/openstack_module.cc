#include "flavour/openstack/openstack_module.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/log.h"

namespace openimds::flavour::openstack {
namespace {

constexpr std::string_view kStatic = "StaticJSON";
constexpr std::string_view kDynamic = "DynamicJSON";

common::Result<std::string> ReadStaticFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return common::InvalidArgument("--vendordata-file " + path + ": cannot read (" +
                                   std::strerror(errno) + ")");
  }
  std::ostringstream text;
  text << in.rdbuf();
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text.str(), ec);
  if (ec)
    return common::InvalidArgument("--vendordata-file " + path + ": not JSON: " + ec.message());
  if (!v.is_object())
    return common::InvalidArgument("--vendordata-file " + path + ": not a JSON object");
  return text.str();
}

bool OpenStackAllowed(const model::Instance& in) {
  return in.flavours.empty() ||
         std::find(in.flavours.begin(), in.flavours.end(), "openstack") != in.flavours.end();
}

}  // namespace

void OpenStackModule::RegisterOptions(CLI::App& serve) {
  Options& o = options_;
  serve.add_option("--vendordata-file", o.vendordata_file,
                   "OpenStack StaticJSON vendordata: a JSON object file (Nova's "
                   "vendordata_jsonfile_path), shown in vendor_data.json and as \"static\" in "
                   "vendor_data2.json.");
  serve
      .add_option("--vendordata-providers", o.vendordata_providers,
                  "Nova's vendordata_providers, comma-separated, in order: StaticJSON, "
                  "DynamicJSON. Default: StaticJSON, plus DynamicJSON when targets are given.")
      ->delimiter(',');
  serve.add_option("--vendordata-target", o.vendordata_targets,
                   "DynamicJSON target NAME@URL (http:// only; repeatable): POSTed Nova's "
                   "request for vendor_data2.json[NAME].");
  serve
      .add_option("--vendordata-connect-timeout", o.connect_timeout_seconds,
                  "Seconds to connect to a target (Nova: min 3).")
      ->capture_default_str();
  serve
      .add_option("--vendordata-read-timeout", o.read_timeout_seconds,
                  "Seconds for a target's whole response once connected.")
      ->capture_default_str();
  serve.add_flag("--vendordata-failure-fatal", o.failure_fatal,
                 "A failed target makes vendor_data2.json a 500 (default: its value is {}).");
  serve
      .add_option("--vendordata-cache-ttl", o.cache_ttl_seconds,
                  "Seconds a target's answer is reused when it sends no Cache-Control "
                  "max-age/no-store/no-cache (0: refetch every time, as Nova).")
      ->capture_default_str();
  serve
      .add_option("--vendordata-max-ttl", o.max_ttl_seconds,
                  "Cap in seconds on a target's Cache-Control max-age.")
      ->capture_default_str();
  serve.add_flag("--vendordata-prefetch,!--no-vendordata-prefetch", o.prefetch,
                 "Fetch dynamic vendordata when an instance appears or changes (default on).");
}

common::Result<OpenStackFlavour::Options> OpenStackModule::SetUpVendordata(
    const ServeContext& context) {
  const Options& o = options_;
  OpenStackFlavour::Options fo;
  if (!o.vendordata_file.empty()) {
    auto text = ReadStaticFile(o.vendordata_file);
    if (!text.ok()) return text.status();
    fo.static_vendor_data = std::move(*text);
  }

  std::vector<std::string> providers = o.vendordata_providers;
  if (providers.empty()) {
    providers.emplace_back(kStatic);
    if (!o.vendordata_targets.empty()) providers.emplace_back(kDynamic);
  }
  for (const auto& p : providers) {
    if (p != kStatic && p != kDynamic) {
      return common::InvalidArgument("--vendordata-providers: unknown provider '" + p +
                                     "' (known: StaticJSON, DynamicJSON)");
    }
  }
  auto pos = [&](std::string_view name) {
    return std::find(providers.begin(), providers.end(), name) - providers.begin();
  };
  const bool with_static = pos(kStatic) < static_cast<long>(providers.size());
  const bool with_dynamic = pos(kDynamic) < static_cast<long>(providers.size());
  fo.static_vendor_data_enabled = with_static;
  fo.static_before_dynamic = pos(kStatic) < pos(kDynamic);
  fo.vendordata_failure_fatal = o.failure_fatal;
  if (with_dynamic && o.vendordata_targets.empty()) {
    common::LogWarn("serve",
                    "DynamicJSON is a vendordata provider but no --vendordata-target "
                    "is given; vendor_data2.json has no dynamic members");
  }
  if (!with_dynamic && !o.vendordata_targets.empty()) {
    return common::InvalidArgument(
        "--vendordata-target given but DynamicJSON is not in --vendordata-providers");
  }
  if (!with_dynamic || o.vendordata_targets.empty()) return fo;

  // Nova's limits: connect >= 3 s (the TCP retransmission timeout), read >=
  // 0. Kept as they are: tests on loopback need no shorter connect timeout
  // (a refused connection fails at once; a connect timeout cannot be
  // provoked without a non-loopback address), and a slow target is tested
  // with a 1 s read timeout.
  if (o.connect_timeout_seconds < 3) {
    return common::InvalidArgument(
        "--vendordata-connect-timeout must be at least 3 (Nova's minimum)");
  }
  if (o.read_timeout_seconds < 0) {
    return common::InvalidArgument("--vendordata-read-timeout must not be negative");
  }
  if (o.cache_ttl_seconds < 0 || o.max_ttl_seconds < 0) {
    return common::InvalidArgument(
        "--vendordata-cache-ttl and --vendordata-max-ttl must not be negative");
  }

  DynamicVendorData::Options dopts;
  for (const auto& spec : o.vendordata_targets) {
    auto t = ParseVendordataTarget(spec);
    if (!t.ok()) return common::InvalidArgument("--vendordata-target: " + t.status().message());
    common::Status url = http::HttpClient::ValidateUrl(t->url);
    if (!url.ok()) {
      return common::InvalidArgument("--vendordata-target " + spec + ": " + url.message());
    }
    if (with_static && t->name == "static") {
      common::LogWarn("serve",
                      "vendordata target named 'static' collides with StaticJSON: " +
                          std::string(fo.static_before_dynamic ? "dropped" : "overwritten") +
                          " in vendor_data2.json, as Nova does");
    }
    dopts.targets.push_back(std::move(*t));
  }
  dopts.default_ttl = std::chrono::seconds(o.cache_ttl_seconds);
  dopts.max_ttl = std::chrono::seconds(o.max_ttl_seconds);
  // A parked guest request waits at most for one full exchange plus a margin.
  dopts.max_wait = std::chrono::seconds(o.connect_timeout_seconds + o.read_timeout_seconds + 1);
  dopts.grace = dopts.max_wait + std::chrono::seconds(1);

  http::HttpClientOptions copts;
  copts.connect_timeout = std::chrono::seconds(o.connect_timeout_seconds);
  copts.read_timeout = std::chrono::seconds(o.read_timeout_seconds);
  client_ = std::make_unique<http::HttpClient>(copts);
  http::HttpClient* client = client_.get();
  // Nova's request (vendordata_dynamic.py): POST, JSON both ways, its agent.
  FetchFn fetch = [client](const VendordataTarget& target, const std::string& body,
                           std::function<void(FetchResult)> done) {
    http::ClientRequest req;
    req.method = "POST";
    req.url = target.url;
    req.headers = {{"Content-Type", "application/json"},
                   {"Accept", "application/json"},
                   {"User-Agent", "openstack-nova-vendordata"}};
    req.body = body;
    client->Send(std::move(req), [done = std::move(done)](http::ClientResponse r) {
      FetchResult f;
      if (!r.ok()) {
        f.error = std::string(http::ClientErrorName(r.error));
        f.detail = std::move(r.detail);
      } else {
        f.status = r.status;
        f.body = std::move(r.body);
        for (const auto& [name, value] : r.headers) {
          if (!common::EqualsIgnoreCase(name, "Cache-Control")) continue;
          if (!f.cache_control.empty()) f.cache_control += ", ";
          f.cache_control += value;
        }
      }
      done(std::move(f));
    });
  };
  dynamic_ = std::make_unique<DynamicVendorData>(std::move(dopts), std::move(fetch), context.clock,
                                                 context.metrics);
  fo.dynamic_vendor_data = dynamic_.get();
  follower_ = &context.follower;
  prefetch_ = o.prefetch;
  std::string names;
  for (const auto& t : dynamic_->targets()) names += (names.empty() ? "" : ", ") + t.name;
  common::LogInfo("serve", "dynamic vendordata targets: " + names +
                               (o.failure_fatal ? " (failure fatal)" : ""));
  return fo;
}

common::Result<std::unique_ptr<Flavour>> OpenStackModule::Create(const ServeContext& context) {
  auto flavour_options = SetUpVendordata(context);
  if (!flavour_options.ok()) return flavour_options.status();
  store::Store* store = &context.store;
  passwords_ = std::make_unique<CallbackPasswordStore>(
      [store](std::string_view id) { return store->GetSecret(store::InstancePasswordSecret(id)); },
      [store](std::string_view id, std::string_view value) -> common::Result<bool> {
        auto stored = store->GetOrCreateSecret(store::InstancePasswordSecret(id), value);
        if (!stored.ok()) return stored.status();
        return *stored == value;
      });
  auto flavour = OpenStackFlavour::Create(std::move(*flavour_options), context.clock,
                                          passwords_.get(), context.metrics);
  if (!flavour.ok()) return common::Internal(flavour.status().ToString());
  return std::unique_ptr<Flavour>(std::move(*flavour));
}

void OpenStackModule::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  client_.reset();  // joins the client thread before the cache goes
}

OpenStackModule::~OpenStackModule() { Stop(); }

void OpenStackModule::Start() {
  if (!dynamic_ || !prefetch_) return;
  follower_->Subscribe([this](const std::vector<feed::Applied>& changes) { Changed(changes); });
}

void OpenStackModule::Changed(const std::vector<feed::Applied>& changes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
  }
  for (const feed::Applied& c : changes) {
    if (!c.instance) {
      dynamic_->Forget(c.id);
    } else if (OpenStackAllowed(*c.instance)) {
      dynamic_->Prefetch(*c.instance);
    }
  }
}

}  // namespace openimds::flavour::openstack
