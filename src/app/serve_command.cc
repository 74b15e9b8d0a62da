#include "app/serve_command.h"

#include <algorithm>
#include <boost/json.hpp>
#include <filesystem>
#include <functional>
#include <thread>

#include "admin/admin_api.h"
#include "app/flavours.h"
#include "auth/token_key_rotator.h"
#include "catalog/catalog.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/ready_file.h"
#include "common/secret_file.h"
#include "common/signal_watcher.h"
#include "common/thread_name.h"
#include "common/thread_priority.h"
#include "common/time_format.h"
#include "feed/follower.h"
#include "flavour/flavour.h"
#include "http/bearer_auth.h"
#include "http/server.h"
#include "http/wire_format.h"
#include "identity/resolver.h"
#include "model/instance_json.h"
#include "model/record_limits.h"
#include "service/metadata_service.h"
#include "service/render_preview.h"
#include "store/sqlite_store.h"
#include "store/write_queue.h"

namespace openimds::app {
namespace {

// The demo instance answers callers from loopback in network "default", so
// `curl http://127.0.0.1:8169/latest/meta-data/instance-id` works at once.
// Credentials and keys are obviously fake.
std::string DemoInstanceJson(common::TimePoint now) {
  const std::string expires = common::FormatRfc3339(now + std::chrono::hours(6));
  const std::string updated = common::FormatRfc3339(now);
  return R"({
  "id": "i-0123456789abcdef0",
  "network": "default",
  "name": "demo",
  "hostname": "ip-127-0-0-1.ec2.internal",
  "local_hostname": "ip-127-0-0-1.ec2.internal",
  "account_id": "123456789012",
  "image_id": "ami-0abcdef1234567890",
  "instance_type": "t3.micro",
  "reservation_id": "r-0123456789abcdef0",
  "region": "us-east-1",
  "availability_zone": "us-east-1a",
  "availability_zone_id": "use1-az4",
  "launch_time": ")" + updated + R"(",
  "nics": [{
    "mac": "02:00:00:00:00:01",
    "device_number": 0,
    "interface_id": "eni-0123456789abcdef0",
    "private_ipv4s": ["127.0.0.1"],
    "ipv6s": ["::1"],
    "subnet_id": "subnet-0123456789abcdef0",
    "subnet_ipv4_cidr": "127.0.0.0/8",
    "vpc_id": "vpc-0123456789abcdef0",
    "vpc_ipv4_cidr": "127.0.0.0/8",
    "security_groups": ["default"],
    "security_group_ids": ["sg-0123456789abcdef0"]
  }],
  "ssh_keys": [{"name": "demo-key", "key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDemoDemoDemoDemoDemoDemoDemoDemoDemoDemoDemo demo-key"}],
  "user_data": "I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogZGVtbwo=",
  "tags": {"Name": "demo", "Environment": "dev"},
  "iam": {
    "role": "demo-role",
    "instance_profile_arn": "arn:aws:iam::123456789012:instance-profile/demo-role",
    "instance_profile_id": "AIPAEXAMPLEDEMO00001",
    "credentials": {
      "access_key_id": "ASIADEMOEXAMPLE00001",
      "secret_access_key": "demo/secret/key/not/real/EXAMPLEKEY000000",
      "token": "demo-session-token-not-real",
      "expiration": ")" + expires + R"(",
      "last_updated": ")" + updated + R"("
    }
  },
  "block_devices": {"ami": "/dev/xvda", "root": "/dev/xvda"},
  "metadata_options": {"http_tokens": "optional", "hop_limit": 1, "instance_metadata_tags": "enabled"}
})";
}

struct GuestListener {
  std::string endpoint;
  std::string network = "default";
  // Faces openimds proxies / neutron-metadata-agents: the caller comes from
  // their signed headers, not from this socket (identity::Resolver proxy mode).
  bool proxy_mode = false;
};

// "127.0.0.1:8169" or "169.254.169.254:80,network=tenant-a".
common::Result<GuestListener> ParseListen(const std::string& spec) {
  GuestListener l;
  size_t comma = spec.find(',');
  l.endpoint = spec.substr(0, comma);
  while (comma != std::string::npos) {
    size_t next = spec.find(',', comma + 1);
    std::string opt = spec.substr(comma + 1, next == std::string::npos ? next : next - comma - 1);
    if (opt.rfind("network=", 0) == 0 && opt.size() > 8) {
      l.network = opt.substr(8);
    } else if (opt == "mode=proxy" || opt == "mode=direct") {
      l.proxy_mode = opt == "mode=proxy";
    } else {
      return common::InvalidArgument("--listen " + spec + ": unknown option '" + opt +
                                     "' (known: network=NAME, mode=proxy|direct)");
    }
    comma = next;
  }
  if (l.endpoint.empty()) return common::InvalidArgument("--listen needs ADDRESS:PORT");
  return l;
}

// The flags of identity::ProxyIdentityConfig.
void AddIdentityFlags(CLI::App& serve, identity::ProxyIdentityConfig& f) {
  serve.add_option("--trusted-proxy", f.trusted_proxies,
                   "CIDR of peers (openimds proxies, neutron-metadata-agents) whose identity "
                   "headers mode=proxy listeners accept; repeatable.");
  serve.add_option("--proxy-keys-file", f.proxy_keys_file,
                   "File (mode 0600) of 'KEY_ID SECRET' lines: the keys whose proxy signatures "
                   "are accepted. List the new key next to the old one to rotate.");
  serve
      .add_option("--proxy-replay-window", f.replay_window_seconds,
                  "Seconds a signed proxy request stays valid either side of now.")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  serve.add_option("--neutron-secret-file", f.neutron_secret_file,
                   "File (mode 0600) holding neutron's metadata_proxy_shared_secret: accept "
                   "X-Instance-ID/X-Tenant-ID/X-Instance-ID-Signature on mode=proxy listeners.");
  serve.add_flag("!--no-trust-unix-socket", f.trust_unix_socket,
                 "Do not trust mode=proxy listeners on unix sockets by their file mode alone.");
}

// Stops every flavour's background work when RunServe returns.
struct StopModulesAtExit {
  const std::vector<std::unique_ptr<flavour::Module>>& modules;
  ~StopModulesAtExit() {
    for (const auto& m : modules) m->Stop();
  }
};

}  // namespace

// Connections the admin listener takes at once, and the descriptors kept
// out of the guests' reach: those plus the store's files, the listening
// sockets, logs and upstream connections.
constexpr size_t kAdminConnections = 64;
constexpr size_t kReservedDescriptors = 256;

void RegisterServeCommand(CLI::App& app, ServeOptions& o) {
  CLI::App* serve = app.add_subcommand("serve", "Run the metadata service and its admin API.");
  serve->add_option("--listen", o.listen,
                    "Guest listener ADDRESS:PORT[,network=NAME][,mode=proxy]; repeatable. Port 0 "
                    "picks a free port (see --ready-file). mode=proxy: callers are identified by "
                    "the signed headers of trusted proxies (--trusted-proxy, --proxy-keys-file, "
                    "--neutron-secret-file); unix:/path works too.")
      ->default_str("127.0.0.1:8169,network=default");
  serve->add_option("--admin", o.admin,
                    "Admin API endpoint: unix:/path (default) or ADDRESS:PORT (needs "
                    "--admin-token-file).")
      ->capture_default_str();
  serve->add_option("--admin-token-file", o.admin_token_file,
                    "File (mode 0600) holding the bearer token for a TCP admin listener.");
  serve->add_option("--admin-tls-cert", o.admin_tls_cert,
                    "PEM certificate chain: the TCP admin listener speaks TLS (HTTPS). Required, "
                    "with --admin-tls-key, when --admin is not a loopback address.");
  serve->add_option("--admin-tls-key", o.admin_tls_key,
                    "PEM private key for --admin-tls-cert (mode 0600).");
  serve->add_option("--store", o.store, "Store: sqlite:PATH.")->capture_default_str();
  serve->add_flag("--demo", o.demo,
                  "Seed a demo instance reachable from 127.0.0.1 in network 'default'.");
  serve->add_option("--threads", o.threads, "I/O threads (0 = one per core).")
      ->capture_default_str();
  serve->add_option("--log-level", o.log_level, "debug, info, warn or error.")
      ->capture_default_str();
  serve->add_option("--ready-file", o.ready_file,
                    "Write the bound endpoints as JSON here once listening (for scripts/tests).");
  serve->add_option("--max-instances", o.max_instances,
                    "Refuse writes (507) that would make the store hold more instances than "
                    "this; 0 = no limit.")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve->add_option("--max-connections", o.max_connections,
                    "Guest connections open at once, all guest listeners together; more are "
                    "closed at accept. 0 = the descriptor limit (raised to its hard limit at "
                    "start) minus 256 kept for the admin API and the store, at most 65536.")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve->add_option("--max-connections-per-source", o.max_connections_per_source,
                    "Connections open at once from one guest address on a direct listener "
                    "(mode=proxy listeners have no such cap); 0 = no cap.")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  const model::LimitInfo& user_data = model::InfoFor(model::Limit::kUserDataBytes);
  serve->add_option("--max-user-data-bytes", o.max_user_data_bytes,
                    "Refuse records (413) whose user-data, decoded, is longer than this. "
                    "EC2's limit is the default; at most " +
                        std::to_string(user_data.configurable_max) + ".")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, static_cast<int64_t>(user_data.configurable_max)));
  serve->add_option("--feed-poll-ms", o.feed_poll_ms,
                    "How often to look for changes that other processes committed to the "
                    "same store (writes through this process are seen at once).")
      ->capture_default_str()
      ->check(CLI::Range(10, 60000));
  serve->add_option("--instance-rate-limit", o.instance_limits.requests_per_second,
                    "Requests per second one instance may sustain, unless its record's "
                    "limits.requests_per_second says otherwise; 0 = no rate limit. Over it: "
                    "429 with Retry-After.")
      ->capture_default_str()
      ->check(CLI::Range(0, model::kMaxRequestLimit));
  serve->add_option("--instance-rate-burst", o.instance_limits.burst,
                    "Requests one instance may make at once on top of the rate (a booting "
                    "guest's crawl), unless its record's limits.burst says otherwise.")
      ->capture_default_str()
      ->check(CLI::Range(1, model::kMaxRequestLimit));
  serve->add_option("--instance-max-in-flight", o.instance_limits.max_in_flight,
                    "Requests of one instance served at once (parked ones included), unless "
                    "its record's limits.max_in_flight says otherwise; 0 = no limit.")
      ->capture_default_str()
      ->check(CLI::Range(0, model::kMaxRequestLimit));
  serve->add_option("--instance-max-connections", o.instance_limits.max_connections,
                    "Connections one instance keeps open at once on direct listeners, unless "
                    "its record's limits.max_connections says otherwise; 0 = no limit. Over "
                    "it: 429 with Retry-After, and the connection closes.")
      ->capture_default_str()
      ->check(CLI::Range(0, model::kMaxRequestLimit));
  serve->add_option("--instance-refusal-delay-ms", o.instance_refusal_delay_ms,
                    "Hold a 429 back this long before sending it on direct listeners, so a "
                    "guest that ignores Retry-After waits too; never on mode=proxy listeners "
                    "(their connections carry many guests); 0 = answer at once.")
      ->capture_default_str()
      ->check(CLI::Range(0, 60000));
  serve->add_option("--token-key-period", o.token_key_period_seconds,
                    "Seconds between IMDSv2 token key rotations (same on every serve of a store).")
      ->capture_default_str();
  o.flavours = FlavourModules();
  for (const auto& f : o.flavours) f->RegisterOptions(*serve);
  AddIdentityFlags(*serve, o.identity);
  serve->footer(
      "\nExamples:\n"
      "  openimds serve --demo --store sqlite:./demo.db --admin unix:./admin.sock\n"
      "  curl http://127.0.0.1:8169/latest/meta-data/instance-id\n"
      "  openimds serve --listen 169.254.169.254:80,network=tenant-a \\\n"
      "                 --store sqlite:/var/lib/openimds/openimds.db\n");
  serve->callback([&o] { o.selected = true; });
}

int RunServe(const ServeOptions& o) {
  common::LogLevel level;
  if (!common::ParseLogLevel(o.log_level, level)) {
    common::LogError("serve", "--log-level must be debug, info, warn or error");
    return 2;
  }
  common::SetLogLevel(level);
  common::SignalWatcher signals("serve");  // before any thread starts: all inherit its mask

  if (o.store.rfind("sqlite:", 0) != 0) {
    common::LogError("serve", "--store must be sqlite:PATH (got '" + o.store + "')");
    return 2;
  }
  std::vector<GuestListener> guests;
  for (const auto& spec : o.listen.empty() ? std::vector<std::string>{"127.0.0.1:8169"} : o.listen) {
    auto l = ParseListen(spec);
    if (!l.ok()) {
      common::LogError("serve", l.status().message());
      return 2;
    }
    guests.push_back(*l);
  }

  model::RecordLimits limits;
  if (common::Status s = limits.Set(model::Limit::kUserDataBytes,
                                    static_cast<size_t>(o.max_user_data_bytes));
      !s.ok()) {
    common::LogError("serve", "--max-user-data-bytes: " + s.message());
    return 2;
  }

  const std::string db_path = o.store.substr(7);
  std::error_code fs_ec;
  auto parent = std::filesystem::path(db_path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, fs_ec);
  store::SqliteStore::Options store_options;
  store_options.path = db_path;
  store_options.max_instances = o.max_instances;
  auto store = store::SqliteStore::Open(store_options);
  if (!store.ok()) {
    common::LogError("serve", "cannot open store " + db_path + ": " + store.status().message());
    return 1;
  }

  common::SystemClock clock;
  common::MetricsRegistry metrics;

  if (o.demo) {
    auto demo = model::FromJsonText(DemoInstanceJson(clock.Now()));
    if (!demo.ok()) {
      common::LogError("serve", "demo instance invalid: " + demo.status().message());
      return 1;
    }
    auto existing = (*store)->Get(demo->id);
    if (!existing.ok()) {
      auto put = (*store)->Put(*demo, store::Precondition{0});
      if (!put.ok() && put.status().code() != common::Code::kFailedPrecondition) {
        common::LogError("serve", "cannot seed demo instance: " + put.status().message());
        return 1;
      }
      common::LogInfo("serve", "seeded demo instance " + demo->id);
    }
  }

  // The catalog follows the store's change feed; every write, by this
  // process or another one on the same store, reaches it through the feed.
  catalog::Catalog catalog;
  feed::Follower::Options follow_options;
  follow_options.poll_interval = std::chrono::milliseconds(o.feed_poll_ms);
  // Declared before the follower, so that on every return the feed stops
  // before the flavours' background work, which it calls into.
  StopModulesAtExit stop_flavours{o.flavours};
  feed::Follower follower(follow_options, **store, catalog, metrics);
  common::Status loaded = follower.Load();
  if (!loaded.ok()) {
    common::LogError("serve", "cannot load instances: " + loaded.message());
    return 1;
  }
  follower.Start();
  store::WriteQueue writes(**store);
  metrics.AddGauge("catalog_instances", "Instances in the served snapshot.",
                   [&catalog] { return static_cast<double>(catalog.Current()->size()); });

  // IMDSv2 token keys: in the store, rotating; every flavour's metadata
  // options use them.
  auth::TokenKeyRotator::Options token_options;
  token_options.period = std::chrono::seconds(o.token_key_period_seconds);
  auto tokens = auth::TokenKeyRotator::Create(
      token_options,
      [store_ptr = store->get()](std::string_view name, std::string_view candidate) {
        return store_ptr->GetOrCreateSecret(name, candidate);
      },
      clock, metrics);
  if (!tokens.ok()) {
    common::LogError("serve", tokens.status().message());
    return tokens.status().code() == common::Code::kInvalidArgument ? 2 : 1;
  }

  // Each flavour's runtime and renderer, in precedence order.
  flavour::ServeContext context{**store, catalog, follower, (*tokens)->tokens(), clock, metrics};
  flavour::Registry flavours;
  for (const auto& module : o.flavours) {
    auto f = module->Create(context);
    if (!f.ok()) {
      common::LogError("serve", f.status().message());
      // Bad flags or files (missing, mode, owner, content) are usage errors.
      const common::Code code = f.status().code();
      return code == common::Code::kInvalidArgument || code == common::Code::kPermissionDenied ||
                     code == common::Code::kNotFound
                 ? 2
                 : 1;
    }
    flavours.Add(std::move(*f));
  }
  identity::Resolver resolver;
  // One limiter for every guest listener: an instance has one budget whether
  // it comes directly or through a proxy.
  service::InstanceLimiter::Options limiter_options = o.instance_limits;
  limiter_options.refusal_delay = std::chrono::milliseconds(o.instance_refusal_delay_ms);
  service::InstanceLimiter limiter(limiter_options, clock, metrics);
  service::MetadataService metadata(resolver, catalog, flavours, &(*tokens)->tokens(), metrics,
                                    &limiter);
  // Listeners that face proxies get their own service with a proxy-mode resolver.
  auto proxy_resolver = identity::BuildProxyResolver(o.identity, clock, metrics);
  if (!proxy_resolver.ok()) {
    common::LogError("serve", proxy_resolver.status().message());
    return 2;
  }
  const bool any_proxy_listener =
      std::any_of(guests.begin(), guests.end(), [](const GuestListener& g) { return g.proxy_mode; });
  if (any_proxy_listener && !proxy_resolver->has_value()) {
    common::LogError("serve", "mode=proxy listeners need --proxy-keys-file or "
                              "--neutron-secret-file (and --trusted-proxy for TCP peers)");
    return 2;
  }
  std::optional<service::MetadataService> proxied;
  if (proxy_resolver->has_value()) {
    proxied.emplace(**proxy_resolver, catalog, flavours, &(*tokens)->tokens(), metrics, &limiter);
  }

  admin::AdminApi::Options admin_options;
  admin_options.render_preview = [&metadata](const model::Instance& i, const common::Request& r,
                                             common::Response& out) {
    return service::RenderPreviewWaiting(metadata, i, r, out);  // waits out a deferred render
  };
  store::Store* store_ptr = store->get();
  admin_options.store_healthy = [store_ptr, &follower] {
    return follower.Healthy() && store_ptr->LatestRevision().ok();
  };
  admin_options.limits = limits;
  admin::AdminApi admin_api(admin_options, **store, catalog, writes, follower, metrics);

  std::unique_ptr<http::BearerAuthHandler> admin_guard;
  http::Handler* admin_handler = &admin_api;
  const bool admin_unix = o.admin.rfind("unix:", 0) == 0;
  if (!admin_unix) {
    if (o.admin_token_file.empty()) {
      common::LogError("serve", "a TCP admin listener (--admin " + o.admin +
                                    ") needs --admin-token-file; use unix:/path otherwise");
      return 2;
    }
    auto token = http::ReadBearerTokenFile(o.admin_token_file);
    if (!token.ok()) {
      common::LogError("serve", token.status().message());
      return 2;
    }
    admin_guard = std::make_unique<http::BearerAuthHandler>(admin_api, *token, metrics);
    admin_handler = admin_guard.get();
    if (o.admin_tls_cert.empty() != o.admin_tls_key.empty()) {
      common::LogError("serve", "--admin-tls-cert and --admin-tls-key go together");
      return 2;
    }
    // The bearer token crosses the network in every request: off this host,
    // only inside TLS.
    auto admin_ep = http::ParseTcpEndpoint(o.admin);
    if (!admin_ep.ok()) {
      common::LogError("serve", "--admin " + o.admin + ": " + admin_ep.status().message());
      return 2;
    }
    if (!o.admin_tls_key.empty()) {
      // OpenSSL reads the key; the mode rule of every other secret holds.
      if (auto key = common::ReadSecretFile(o.admin_tls_key); !key.ok()) {
        common::LogError("serve", "--admin-tls-key: " + key.status().message());
        return 2;
      }
    }
    if (!admin_ep->address().is_loopback() && o.admin_tls_cert.empty()) {
      common::LogError("serve", "the admin listener --admin " + o.admin +
                                    " is not on a loopback address: it needs --admin-tls-cert "
                                    "and --admin-tls-key (the bearer token must not cross the "
                                    "network in clear text); use unix:/path or 127.0.0.1 "
                                    "otherwise");
      return 2;
    }
  } else if (!o.admin_tls_cert.empty() || !o.admin_tls_key.empty()) {
    common::LogError("serve", "--admin-tls-cert/--admin-tls-key are for a TCP admin listener; "
                              "--admin " + o.admin + " is a unix socket");
    return 2;
  } else {
    std::filesystem::path sock(o.admin.substr(5));
    if (!sock.parent_path().empty()) std::filesystem::create_directories(sock.parent_path(), fs_ec);
  }

  std::vector<http::ListenerConfig> listeners;
  for (const auto& g : guests) {
    http::ListenerConfig l;
    l.endpoint = g.endpoint;
    l.network = g.network;
    l.handler = g.proxy_mode ? static_cast<http::Handler*>(&*proxied) : &metadata;
    l.name = g.proxy_mode ? "proxied" : "guest";
    // Behind a proxy every guest shares the proxy's address: no per-source cap.
    l.limits.max_connections_per_source =
        g.proxy_mode ? 0 : static_cast<size_t>(o.max_connections_per_source);
    listeners.push_back(std::move(l));
  }
  {
    http::ListenerConfig l;
    l.endpoint = o.admin;
    l.handler = admin_handler;
    l.name = "admin";
    l.dedicated_thread = true;  // imports parse megabytes; keep them off guest threads
    l.background = true;        // and behind guests for the CPU
    l.limits.max_body_bytes = 64 * 1024 * 1024;  // bulk imports
    l.limits.header_timeout = std::chrono::seconds(60);
    l.limits.max_connections = kAdminConnections;
    l.tls_certificate_file = o.admin_tls_cert;
    l.tls_key_file = o.admin_tls_key;
    listeners.push_back(std::move(l));
  }

  http::ServerOptions server_options;
  server_options.threads = o.threads;
  // Connections are descriptors: the guest listeners together stay below the
  // limit by what the admin listener and the store need, so a flood of guest
  // connections never locks out the admin API.
  const size_t descriptors = http::RaiseDescriptorLimit();
  server_options.max_connections =
      o.max_connections > 0
          ? static_cast<size_t>(o.max_connections)
          : http::DefaultConnectionCap(descriptors, kReservedDescriptors, 65'536);
  if (server_options.max_connections + kReservedDescriptors > descriptors) {
    common::LogWarn("serve", "--max-connections " +
                                 std::to_string(server_options.max_connections) +
                                 " leaves fewer than " + std::to_string(kReservedDescriptors) +
                                 " of the " + std::to_string(descriptors) +
                                 " descriptors for the admin API and the store");
  }
  common::LogInfo("serve", "guest connections: at most " +
                               std::to_string(server_options.max_connections) + " open, " +
                               (o.max_connections_per_source > 0
                                    ? std::to_string(o.max_connections_per_source)
                                    : std::string("any number")) +
                               " per source address (descriptor limit " +
                               std::to_string(descriptors) + ")");
  http::Server server(server_options, std::move(listeners), metrics);
  common::Status started = server.Start();
  if (!started.ok()) {
    common::LogError("serve", started.message());
    return 1;
  }
  auto bound = server.BoundEndpoints();
  boost::json::object ready;
  boost::json::array guest_json;
  for (size_t i = 0; i < guests.size(); ++i) {
    guest_json.push_back(boost::json::object{{"endpoint", bound[i]},
                                             {"network", guests[i].network},
                                             {"mode", guests[i].proxy_mode ? "proxy" : "direct"}});
    common::LogInfo("serve", guests[i].proxy_mode
                                 ? "proxy-facing listener " + bound[i]
                                 : "guest listener " + bound[i] + " serves network " +
                                       guests[i].network);
  }
  ready["guest"] = std::move(guest_json);
  ready["admin"] = bound.back();
  ready["pid"] = static_cast<int64_t>(getpid());
  common::LogInfo("serve", "admin API on " + bound.back() + "; " +
                               std::to_string(catalog.Current()->size()) + " instances loaded");
  if (!o.ready_file.empty()) {
    const std::string text = boost::json::serialize(ready) + "\n";
    if (common::Status s = common::WriteReadyFile(o.ready_file, text); !s.ok()) {
      common::LogError("serve", s.message());
      return 1;
    }
  }
  // How many stored records exceed the limits is a report, not a condition
  // of serving: at a million instances the walk is a good part of a start,
  // so it runs once guests are answered, below the I/O threads' priority.
  std::thread over_limits([&catalog, &limits, &metrics] {
    common::NameCurrentThread("imds-limits");
    common::LowerCurrentThreadPriority();
    admin::ReportInstancesOverLimits(catalog, limits, metrics);
  });
  (*tokens)->Start();
  for (const auto& module : o.flavours) module->Start();
  // SIGHUP: re-read the proxy keys and the Neutron secret (docs/proxy.md §2).
  std::function<void()> reload;
  if (proxy_resolver->has_value()) {
    constexpr std::string_view kReload = "identity_key_reload_total";
    constexpr std::string_view kReloadHelp =
        "SIGHUP reloads of --proxy-keys-file/--neutron-secret-file, by result.";
    common::Counter* reload_ok = &metrics.GetCounter(kReload, kReloadHelp, "result=\"ok\"");
    common::Counter* reload_error = &metrics.GetCounter(kReload, kReloadHelp, "result=\"error\"");
    identity::Resolver* r = &**proxy_resolver;
    reload = [&o, r, reload_ok, reload_error] {
      auto done = identity::ReloadProxyResolver(o.identity, *r);
      if (!done.ok()) {
        reload_error->Inc();
        common::LogError("serve", "SIGHUP: key reload failed, keeping the keys in use: " +
                                      done.status().message());
        return;
      }
      reload_ok->Inc();
      common::LogInfo("serve", "SIGHUP: reloaded; now accepting " + *done);
    };
  }
  signals.Start({.stop = [&server] { server.Shutdown(); }, .reload = std::move(reload)});
  server.Run();
  over_limits.join();
  signals.Stop();  // before the resolver and the server it uses go away
  follower.Stop();
  for (const auto& module : o.flavours) module->Stop();
  common::LogInfo("serve", "stopped");
  return 0;
}

}  // namespace openimds::app
