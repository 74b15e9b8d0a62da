#pragma once

#include <CLI/CLI.hpp>
#include <iosfwd>
#include <string>
#include <vector>

#include "netsetup/command_runner.h"

namespace openimds::app {

// Flags of `openimds redirect show|apply|remove` and
// `openimds redirect address add|remove`.
struct RedirectCommandOptions {
  // "show", "apply", "remove", "address-add" or "address-remove".
  std::string action;
  std::vector<std::string> interfaces;  // --interface (repeatable)
  std::string to;                       // --to ADDRESS:PORT
  std::string to6;                      // --to6 [ADDRESS]:PORT
  std::string table = "openimds";       // --table
  int port = 80;                        // --port (what guests connect to)
  std::string netns;                    // --netns NAME: act inside that namespace
  bool installed = false;               // show --installed: what the kernel has now
  bool ipv6 = false;                    // address add|remove --ipv6
  bool selected = false;                // set when the subcommand was given
};

// Registers `openimds redirect` and its subcommands; `options` must outlive parsing.
void RegisterRedirectCommand(CLI::App& app, RedirectCommandOptions& options);

// Runs the chosen action with the real `nft` and `ip`. Exit codes: 0 done,
// 1 nft/ip failed (their message on stderr), 2 bad flags.
int RunRedirect(const RedirectCommandOptions& options);

// The same with an injected runner and streams (tests).
int RunRedirectWith(const RedirectCommandOptions& options, netsetup::CommandRunner& runner,
                    std::ostream& out, std::ostream& err);

}  // namespace openimds::app
