#include "app/proxy_command.h"

#include <sys/resource.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>

#include "app/flavours.h"
#include "auth/request_signer.h"
#include "auth/signer_holder.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/ready_file.h"
#include "common/signal_watcher.h"
#include "http/connection_gate.h"
#include "http/server.h"
#include "identity/identity_config.h"
#include "proxy/proxy_server.h"

namespace openimds::app {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

// "169.254.169.254:80,network=tenant-a,interface=veth-a".
common::Result<proxy::GuestListener> ParseProxyListen(const std::string& spec,
                                                      const std::string& default_network) {
  proxy::GuestListener l;
  l.network = default_network;
  size_t comma = spec.find(',');
  l.endpoint = spec.substr(0, comma);
  while (comma != std::string::npos) {
    size_t next = spec.find(',', comma + 1);
    std::string opt = spec.substr(comma + 1, next == std::string::npos ? next : next - comma - 1);
    if (opt.rfind("network=", 0) == 0 && opt.size() > 8) {
      l.network = opt.substr(8);
    } else if (opt.rfind("interface=", 0) == 0 && opt.size() > 10) {
      l.interface = opt.substr(10);
    } else {
      return common::InvalidArgument("--listen " + spec + ": unknown option '" + opt +
                                     "' (known: network=NAME, interface=IF)");
    }
    comma = next;
  }
  if (l.endpoint.empty()) return common::InvalidArgument("--listen needs ADDRESS:PORT");
  return l;
}

// Serves /metrics (Prometheus text) on the proxy's metrics endpoint.
class MetricsHandler final : public http::Handler {
 public:
  explicit MetricsHandler(common::MetricsRegistry& metrics) : metrics_(metrics) {}
  void Handle(const common::Request& request, common::Response& out) override {
    if (request.path == "/metrics") {
      out.content_type = "text/plain; version=0.0.4";
      out.body = metrics_.RenderPrometheus();
    } else if (request.path == "/healthz") {
      out.body = "ok\n";
    } else {
      out.status = 404;
      out.body = "not found\n";
    }
  }

 private:
  common::MetricsRegistry& metrics_;
};

}  // namespace

void RegisterProxyCommand(CLI::App& app, ProxyCommandOptions& o) {
  CLI::App* p = app.add_subcommand(
      "proxy", "Forward guests' metadata requests to openimds servers with a signed identity.");
  p->add_option("--listen", o.listen,
                "Where guests reach the proxy: ADDRESS:PORT[,network=NAME][,interface=IF]; "
                "repeatable. interface= binds to that device (several networks on one host).")
      ->required();
  p->add_option("--network", o.network,
                "Tenant network of guests on --listen entries without network=.");
  p->add_option("--upstream", o.upstreams,
                "Server endpoint ADDRESS:PORT or unix:/path (a mode=proxy listener of "
                "`openimds serve`, or another proxy); repeatable, failover in turn.")
      ->required();
  p->add_option("--key-file", o.key_file,
                "File (mode 0600) of 'KEY_ID SECRET' lines; the first key signs.")
      ->required();
  p->add_option("--trust-proxy", o.trust_proxies,
                "CIDR of proxies in front of this one (chains): their signed identity is kept; "
                "repeatable.");
  p->add_option("--trust-key-file", o.trust_key_file,
                "Keys that verify --trust-proxy peers' signatures (default: --key-file).");
  p->add_option("--replay-window", o.replay_window_seconds,
                "Seconds a chained signature stays valid either side of now.")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  p->add_option("--threads", o.threads, "I/O threads (0 = one per core).")->capture_default_str();
  p->add_option("--connect-timeout-ms", o.connect_timeout_ms, "Upstream connect timeout.")
      ->capture_default_str();
  p->add_option("--upstream-timeout-ms", o.upstream_timeout_ms,
                "Time for one request upstream, failover included; keep it below your guests' "
                "client timeout (AWS SDKs: 1000).")
      ->capture_default_str();
  p->add_option("--health-interval-ms", o.health_interval_ms, "Health check interval.")
      ->capture_default_str();
  p->add_option("--health-timeout-ms", o.health_timeout_ms, "Health check timeout.")
      ->capture_default_str();
  p->add_option("--health-path", o.health_path, "Health check path on the upstreams.")
      ->capture_default_str();
  p->add_option("--retry-after", o.retry_after_seconds,
                "Retry-After seconds on 503 when no server answers.")
      ->capture_default_str();
  p->add_option("--forward-header", o.forward_headers,
                "Also forward this request header (identity headers never are); repeatable.");
  p->add_option("--max-connections", o.max_connections,
                "Open guest connections at most; more are closed at accept. 0 = the descriptor "
                "limit (raised to its hard limit at start) minus 256 kept for upstream "
                "connections and files, at most 65536.")
      ->capture_default_str();
  p->add_option("--max-connections-per-source", o.max_connections_per_source,
                "Open connections from one guest address at most (trusted proxies: no cap); "
                "0 = no cap.")
      ->capture_default_str();
  p->add_option("--max-in-flight-per-source", o.max_in_flight_per_source,
                "Requests from one guest forwarded at once per I/O thread; more get 429; "
                "0 = no cap.")
      ->capture_default_str();
  p->add_option("--metrics", o.metrics,
                "Serve /metrics on unix:/path or ADDRESS:PORT (not on a guest-facing address).");
  p->add_option("--log-level", o.log_level, "debug, info, warn or error.")->capture_default_str();
  p->add_option("--ready-file", o.ready_file,
                "Write the bound endpoints as JSON here once listening (for scripts/tests).");
  p->footer(
      "\nExamples:\n"
      "  # inside the network's namespace, where 169.254.169.254 is on veth-a:\n"
      "  openimds proxy --listen 169.254.169.254:80,network=tenant-a \\\n"
      "      --upstream 10.255.0.2:8775 --key-file /etc/openimds/proxy.keys\n"
      "  # on a host, one listener per tenant interface (after `openimds redirect apply`):\n"
      "  openimds proxy --listen 10.0.0.1:9697,network=tenant-a,interface=veth-a \\\n"
      "      --upstream 10.255.0.2:8775 --upstream 10.255.0.3:8775 --key-file proxy.keys\n");
  p->callback([&o] { o.selected = true; });
}

int RunProxy(const ProxyCommandOptions& o) {
  common::LogLevel level;
  if (!common::ParseLogLevel(o.log_level, level)) {
    common::LogError("proxy", "--log-level must be debug, info, warn or error");
    return kExitUsage;
  }
  common::SetLogLevel(level);

  common::SignalWatcher signals("proxy");  // before any thread starts: all inherit its mask

  proxy::ProxyOptions po;
  for (const auto& spec : o.listen) {
    auto l = ParseProxyListen(spec, o.network);
    if (!l.ok()) {
      common::LogError("proxy", l.status().message());
      return kExitUsage;
    }
    po.listeners.push_back(*l);
  }
  po.upstreams = o.upstreams;
  po.threads = o.threads;
  po.upstream.connect_timeout = std::chrono::milliseconds(o.connect_timeout_ms);
  po.upstream_timeout = std::chrono::milliseconds(o.upstream_timeout_ms);
  po.upstream.health_interval = std::chrono::milliseconds(o.health_interval_ms);
  po.upstream.health_timeout = std::chrono::milliseconds(o.health_timeout_ms);
  po.upstream.health_path = o.health_path;
  po.retry_after_seconds = o.retry_after_seconds;
  // What the flavours' guests send (app/flavours.h), then the operator's.
  po.forward_headers = FlavourGuestHeaders(FlavourModules());
  po.forward_headers.insert(po.forward_headers.end(), o.forward_headers.begin(),
                            o.forward_headers.end());
  // Connections are descriptors: stay below the limit by what upstream
  // connections, health checks and files need.
  const size_t descriptors = http::RaiseDescriptorLimit();
  po.limits.max_connections = o.max_connections > 0
                                  ? o.max_connections
                                  : http::DefaultConnectionCap(descriptors, 256, 65'536);
  po.limits.max_connections_per_source = o.max_connections_per_source;
  po.limits.max_in_flight_per_source = o.max_in_flight_per_source;
  for (const auto& text : o.trust_proxies) {
    auto cidr = common::Cidr::Parse(text);
    if (!cidr) {
      auto ip = common::IpAddress::Parse(text);
      if (!ip) {
        common::LogError("proxy", "--trust-proxy " + text + ": not an address or CIDR");
        return kExitUsage;
      }
      cidr = common::Cidr{*ip, ip->is_v4() ? 32 : 128};
    }
    po.trusted_proxies.push_back(*cidr);
  }
  common::Status valid = po.Validate();
  if (!valid.ok()) {
    common::LogError("proxy", valid.message());
    return kExitUsage;
  }

  common::SystemClock clock;
  const bool chain = !po.trusted_proxies.empty();
  const identity::ProxySigningConfig key_config{o.key_file, o.trust_key_file,
                                               o.replay_window_seconds};
  auto keys = identity::LoadProxyKeys(key_config, chain, clock);
  if (!keys.ok()) {
    common::LogError("proxy", keys.status().message());
    // A key file to fix (missing, mode, owner, content) is a usage error, as in serve.
    const common::Code code = keys.status().code();
    return code == common::Code::kInvalidArgument || code == common::Code::kPermissionDenied ||
                   code == common::Code::kNotFound
               ? kExitUsage
               : kExitFailed;
  }
  // Replaced together on SIGHUP; the I/O threads read them lock-free.
  auth::SignerHolder signer(keys->signer);
  std::optional<auth::SignerHolder> verifier;
  if (chain) verifier.emplace(keys->verifier);

  common::MetricsRegistry metrics;
  constexpr std::string_view kReload = "proxy_key_reload_total";
  constexpr std::string_view kReloadHelp =
      "SIGHUP reloads of --key-file/--trust-key-file, by result.";
  common::Counter& reload_ok = metrics.GetCounter(kReload, kReloadHelp, "result=\"ok\"");
  common::Counter& reload_error = metrics.GetCounter(kReload, kReloadHelp, "result=\"error\"");
  proxy::ProxyServer server(po, signer, verifier ? &*verifier : nullptr, metrics);
  common::Status started = server.Start();
  if (!started.ok()) {
    common::LogError("proxy", started.message());
    return started.code() == common::Code::kInvalidArgument ? kExitUsage : kExitFailed;
  }

  MetricsHandler metrics_handler(metrics);
  std::unique_ptr<http::Server> metrics_server;
  std::thread metrics_thread;
  if (!o.metrics.empty()) {
    http::ListenerConfig l;
    l.endpoint = o.metrics;
    l.handler = &metrics_handler;
    l.name = "metrics";
    if (o.metrics.rfind("unix:", 0) == 0) {
      std::error_code ec;
      auto parent = std::filesystem::path(o.metrics.substr(5)).parent_path();
      if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    }
    http::ServerOptions mo;
    mo.threads = 1;
    metrics_server =
        std::make_unique<http::Server>(mo, std::vector<http::ListenerConfig>{l}, metrics);
    common::Status ms = metrics_server->Start();
    if (!ms.ok()) {
      common::LogError("proxy", ms.message());
      return kExitFailed;
    }
    metrics_thread = std::thread([&metrics_server] { metrics_server->Run(); });
  }

  auto bound = server.BoundEndpoints();
  boost::json::array guests;
  for (size_t i = 0; i < bound.size(); ++i) {
    const auto& l = po.listeners[i];
    guests.push_back(boost::json::object{
        {"endpoint", bound[i]}, {"network", l.network}, {"interface", l.interface}});
    common::LogInfo("proxy", "listening on " + bound[i] +
                                 (l.interface.empty() ? "" : " (interface " + l.interface + ")") +
                                 " for network " +
                                 (l.network.empty() ? "(proxies only)" : l.network));
  }
  std::string upstream_list;
  for (const auto& u : po.upstreams) upstream_list += (upstream_list.empty() ? "" : ", ") + u;
  common::LogInfo("proxy", "forwarding to " + upstream_list + ", " + keys->summary);
  if (!o.ready_file.empty()) {
    boost::json::object ready;
    ready["guest"] = std::move(guests);
    ready["metrics"] = metrics_server ? metrics_server->BoundEndpoints().front() : "";
    ready["pid"] = static_cast<int64_t>(getpid());
    const std::string text = boost::json::serialize(ready) + "\n";
    if (common::Status s = common::WriteReadyFile(o.ready_file, text); !s.ok()) {
      common::LogError("proxy", s.message());
      if (metrics_server) metrics_server->Shutdown();
      if (metrics_thread.joinable()) metrics_thread.join();
      return kExitFailed;
    }
  }

  // SIGHUP: re-read the key files and swap both signers, or neither (the old
  // keys stay in use when a file is bad). On this thread, off the I/O threads.
  auto reload = [&] {
    auto fresh = identity::LoadProxyKeys(key_config, chain, clock);
    if (!fresh.ok()) {
      reload_error.Inc();
      common::LogError("proxy", "SIGHUP: key reload failed, keeping the keys in use: " +
                                    fresh.status().message());
      return;
    }
    if (verifier) verifier->Set(fresh->verifier);
    signer.Set(fresh->signer);
    reload_ok.Inc();
    common::LogInfo("proxy", "SIGHUP: reloaded; now " + fresh->summary);
  };
  signals.Start({.stop =
                     [&server, &metrics_server] {
                       server.Shutdown();
                       if (metrics_server) metrics_server->Shutdown();
                     },
                 .reload = reload});
  server.Run();
  if (metrics_server) metrics_server->Shutdown();
  if (metrics_thread.joinable()) metrics_thread.join();
  signals.Stop();
  common::LogInfo("proxy", "stopped");
  return kExitOk;
}

}  // namespace openimds::app
