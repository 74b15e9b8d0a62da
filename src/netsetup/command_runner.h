#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace openimds::netsetup {

// Runs a program and collects what it says: the seam between netsetup and
// the host, so rule sets can be tested without touching a kernel.
class CommandRunner {
 public:
  struct Output {
    int exit_code = 0;
    std::string out;
    std::string err;
  };
  virtual ~CommandRunner() = default;

  // Runs argv (argv[0] looked up in PATH) with `input` on its stdin.
  // Unavailable if the program cannot be started or does not finish in
  // time; otherwise the exit code and output, whatever the exit code.
  virtual common::Result<Output> Run(const std::vector<std::string>& argv,
                                     std::string_view input) = 0;
};

// The real thing: common::RunSubprocess with this process's environment; a
// child that outlives `timeout` is killed with its process group and reaped.
// Thread-compatible.
class SystemCommandRunner final : public CommandRunner {
 public:
  explicit SystemCommandRunner(std::chrono::milliseconds timeout = std::chrono::seconds(10))
      : timeout_(timeout) {}
  common::Result<Output> Run(const std::vector<std::string>& argv, std::string_view input) override;

 private:
  std::chrono::milliseconds timeout_;
};

// "nft -f -" or "ip netns exec NS nft -f -": argv for a command to run in
// network namespace `netns` (empty: the current one).
std::vector<std::string> InNetns(const std::string& netns, std::vector<std::string> argv);

}  // namespace openimds::netsetup
