#pragma once

#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "flavour/module.h"  // each flavour's flags and runtime
#include "identity/identity_config.h"  // ProxyIdentityConfig: mode=proxy listeners
#include "service/instance_limiter.h"  // per-instance request limits

namespace openimds::app {

// Flags of `openimds serve`, every field defaulted.
struct ServeOptions {
  // ADDRESS:PORT[,network=NAME][,mode=proxy]; empty = 127.0.0.1:8169
  std::vector<std::string> listen;
  std::string admin = "unix:/run/openimds/admin.sock";
  std::string admin_token_file;
  // PEM certificate chain and key: the TCP admin listener speaks TLS. Needed
  // when it listens on an address other than loopback.
  std::string admin_tls_cert;
  std::string admin_tls_key;
  std::string store = "sqlite:/var/lib/openimds/openimds.db";
  bool demo = false;
  int threads = 0;
  std::string log_level = "info";
  std::string ready_file;
  // Refuse writes that would make the store hold more instances (0: no limit).
  int64_t max_instances = 0;
  // The most user-data (decoded) the admin API accepts in one record.
  int64_t max_user_data_bytes = 16 * 1024;
  // How often to look for changes other processes committed to the store.
  int feed_poll_ms = 200;
  // Guest connections open at once across every guest listener (0: the
  // descriptor limit minus what the admin API and the store keep, at most
  // 65,536) and from one source address on a direct listener.
  int64_t max_connections = 0;
  int64_t max_connections_per_source = 256;
  // Server-wide defaults of the per-instance request limits (--instance-rate-limit,
  // --instance-rate-burst, --instance-max-in-flight); records override them.
  service::InstanceLimiter::Options instance_limits;
  // --instance-refusal-delay-ms, copied into instance_limits.refusal_delay.
  int instance_refusal_delay_ms =
      static_cast<int>(service::InstanceLimiter::Options{}.refusal_delay.count());
  identity::ProxyIdentityConfig identity;  // for mode=proxy listeners
  // --token-key-period SECONDS: a new IMDSv2 token key epoch this often
  // (auth::TokenKeyRotator). Keys stay valid for the longest token lifetime
  // (6 h) after they stop issuing. Every serve sharing a store must use the
  // same period.
  int token_key_period_seconds = 6 * 3600;
  // The flavours (app/flavours.h), each holding the values of its own flags.
  std::vector<std::unique_ptr<flavour::Module>> flavours;
  bool selected = false;  // set when the subcommand was given
};

void RegisterServeCommand(CLI::App& app, ServeOptions& options);

// The composition root: builds store, catalog, flavours, services and the
// HTTP server, and runs until SIGINT/SIGTERM. Returns the process exit code.
int RunServe(const ServeOptions& options);

}  // namespace openimds::app
