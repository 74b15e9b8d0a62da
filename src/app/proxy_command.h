#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace openimds::app {

// Flags of `openimds proxy`, every field defaulted (see RegisterProxyCommand
// for their meaning and docs/proxy.md for deployments).
struct ProxyCommandOptions {
  std::vector<std::string> listen;  // ADDRESS:PORT[,network=NAME][,interface=IF]
  std::string network;              // for --listen entries without network=
  std::vector<std::string> upstreams;
  std::string key_file;
  std::vector<std::string> trust_proxies;
  std::string trust_key_file;  // empty: key_file
  int replay_window_seconds = 30;
  int threads = 0;
  int connect_timeout_ms = 300;
  int upstream_timeout_ms = 900;
  int health_interval_ms = 1000;
  int health_timeout_ms = 500;
  std::string health_path = "/healthz";
  int retry_after_seconds = 1;
  std::vector<std::string> forward_headers;
  size_t max_connections = 0;  // 0: from the descriptor limit
  size_t max_connections_per_source = 256;
  size_t max_in_flight_per_source = 32;
  std::string metrics;  // unix:/path or ADDRESS:PORT; empty: none
  std::string log_level = "info";
  std::string ready_file;
  bool selected = false;  // set when the subcommand was given
};

// Registers `openimds proxy` on `app`; `options` must outlive parsing.
void RegisterProxyCommand(CLI::App& app, ProxyCommandOptions& options);

// Builds and runs the proxy until SIGINT/SIGTERM. Exit codes: 0 after a
// clean shutdown, 1 when it cannot start (bind, keys), 2 for bad flags.
int RunProxy(const ProxyCommandOptions& options);

}  // namespace openimds::app
