#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace openimds::common {

// How to run one child process (RunSubprocess).
struct SubprocessOptions {
  // The program and its arguments; no shell. argv[0] is looked up in PATH
  // when it has no '/'. Required.
  std::vector<std::string> argv;
  // The child's whole environment, "NAME=value" each: nothing is inherited
  // that is not listed (start from CurrentEnvironment() to pass ours on).
  std::vector<std::string> env;
  // Written to the child's stdin, which is then closed; nullopt: stdin is
  // /dev/null.
  std::optional<std::string> stdin_text;
  // The child's whole life, from start to reaping. Past it the child's
  // process group is killed (SIGKILL) and the child reaped.
  std::chrono::milliseconds timeout{10'000};
  // Standard output kept. One byte more kills the child's process group at
  // once (a caller that caps the output has no use for the rest, and a
  // runaway writer should not run until the timeout): stdout_overflow.
  size_t max_stdout_bytes = 64 * 1024;
  // Standard error kept; the rest is read and dropped (stderr_truncated),
  // so the child never blocks on a full pipe.
  size_t max_stderr_bytes = 4 * 1024;
};

// What became of the child.
struct SubprocessResult {
  int exit_code = -1;             // its exit status, or -1 when a signal ended it
  int term_signal = 0;            // the signal that ended it (SIGKILL after a timeout), or 0
  bool timed_out = false;         // killed at the timeout
  bool stdout_overflow = false;   // killed for writing more than max_stdout_bytes
  bool stderr_truncated = false;  // wrote more than max_stderr_bytes (not killed for it)
  std::string stdout_text;        // at most max_stdout_bytes
  std::string stderr_text;        // at most max_stderr_bytes
};

// Runs a child process and waits for it: the one place that starts
// processes (netsetup's nft/ip commands, credential-source commands).
//
// The child starts with: argv as given (no shell); `env` as its whole
// environment; stdin from `stdin_text` or /dev/null; stdout and stderr on
// pipes read by this call; no descriptor above 2 (sockets, the store's files
// and listening ports are not the child's business, and a child holding a
// listening socket would keep the port busy after we exit); an empty signal
// mask and every signal at its default disposition (serve and proxy block
// SIGINT/SIGTERM/SIGHUP in all threads for their signal watcher, and a
// child must not inherit that); its own process group, so a timeout kills
// whatever it started too.
//
// Returns when the child has exited and both pipes are closed, or at the
// timeout. Either way the child is reaped before returning (no zombie), and
// at the timeout whatever is left of its process group is killed: a
// grandchild that still holds a pipe does not hold the caller. timed_out is
// set only if the child itself had not exited by then.
//
// Errors: InvalidArgument (empty argv), Unavailable (the program cannot be
// started: not found, not executable; the message names argv[0]), Internal
// (pipes or /dev/null cannot be opened). Whatever the child did (any exit
// status, a signal, the timeout) is a SubprocessResult, not an error.
//
// Blocks the calling thread; thread-safe (distinct calls share nothing).
// SIGPIPE from writing stdin to a child that exited is absorbed, never
// delivered to the process.
Result<SubprocessResult> RunSubprocess(const SubprocessOptions& options);

// This process's environment, "NAME=value" each, for SubprocessOptions::env.
std::vector<std::string> CurrentEnvironment();

}  // namespace openimds::common
