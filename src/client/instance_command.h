#pragma once

#include <CLI/CLI.hpp>
#include <iosfwd>
#include <optional>

namespace openimds::client {

// Where `openimds instance ...` reads and writes; defaults are the process's
// stdin, stdout and stderr. Tests substitute string streams.
struct InstanceCommandIo {
  std::istream* in = nullptr;   // nullptr: std::cin (for FILE "-")
  std::ostream* out = nullptr;  // nullptr: std::cout (the server's JSON, pretty-printed)
  std::ostream* err = nullptr;  // nullptr: std::cerr (errors, progress, one-line summaries)
  // Whether to draw import progress; nullopt: isatty(STDERR_FILENO).
  std::optional<bool> err_is_terminal;
};

// Exit codes of `openimds instance ...`.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;      // the server refused, or a local file could not be read
inline constexpr int kExitUsage = 2;        // bad arguments, endpoint or token file
inline constexpr int kExitUnreachable = 3;  // cannot connect to the admin API

// Registers `openimds instance` and its subcommands (put, patch, get, list,
// delete, import, render) on `app`. The chosen subcommand runs from its CLI11
// callback during app.parse() and stores its exit code in `exit_code`
// (untouched when no instance subcommand was given); it never throws.
// Common options: --admin ENDPOINT (env OPENIMDS_ADMIN, default
// unix:/run/openimds/admin.sock) and --token-file FILE (env
// OPENIMDS_ADMIN_TOKEN_FILE), accepted before or after the subcommand name.
// `app` and `exit_code` must outlive parsing.
void RegisterInstanceCommand(CLI::App& app, int& exit_code, InstanceCommandIo io = {});

// For main(): reports a CLI11 parse error through app.exit() (help and
// --version print and yield 0) and returns kExitUsage for every real usage
// error, so scripts can tell "wrong arguments" (2) from "refused" (1).
int ExitForParseError(CLI::App& app, const CLI::ParseError& error);

}  // namespace openimds::client
