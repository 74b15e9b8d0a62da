#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace openimds::app {

// Flags of `openimds serve`, every field defaulted.
struct ServeOptions {
  std::vector<std::string> listen;  // ADDRESS:PORT[,network=NAME]; empty = 127.0.0.1:8169
  std::string admin = "unix:/run/openimds/admin.sock";
  std::string admin_token_file;
  std::string store = "sqlite:/var/lib/openimds/openimds.db";
  bool demo = false;
  int threads = 0;
  std::string log_level = "info";
  std::string ready_file;
  bool selected = false;  // set when the subcommand was given
};

void RegisterServeCommand(CLI::App& app, ServeOptions& options);

// The composition root: builds store, catalog, flavours, services and the
// HTTP server, and runs until SIGINT/SIGTERM. Returns the process exit code.
int RunServe(const ServeOptions& options);

}  // namespace openimds::app
