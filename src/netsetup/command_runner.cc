#include "netsetup/command_runner.h"

#include "common/subprocess.h"

namespace openimds::netsetup {
namespace {

// `nft list ruleset` on a busy host is the largest output read; far below this.
constexpr size_t kMaxOutputBytes = 16 * 1024 * 1024;

}  // namespace

std::vector<std::string> InNetns(const std::string& netns, std::vector<std::string> argv) {
  if (netns.empty()) return argv;
  std::vector<std::string> out = {"ip", "netns", "exec", netns};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

common::Result<CommandRunner::Output> SystemCommandRunner::Run(const std::vector<std::string>& argv,
                                                               std::string_view input) {
  if (argv.empty()) return common::InvalidArgument("empty command");
  common::SubprocessOptions o;
  o.argv = argv;
  o.env = common::CurrentEnvironment();
  o.stdin_text = std::string(input);
  o.timeout = timeout_;
  o.max_stdout_bytes = kMaxOutputBytes;
  o.max_stderr_bytes = kMaxOutputBytes;
  auto run = common::RunSubprocess(o);
  if (!run.ok()) return common::Unavailable(run.status().message());
  if (run->timed_out) {
    return common::Unavailable(argv[0] + " did not finish within " +
                               std::to_string(timeout_.count()) + " ms");
  }
  if (run->stdout_overflow) {
    return common::Unavailable(argv[0] + " printed more than " +
                               std::to_string(kMaxOutputBytes) + " bytes");
  }
  Output result;
  result.exit_code = run->term_signal != 0 ? 128 + run->term_signal : run->exit_code;
  result.out = std::move(run->stdout_text);
  result.err = std::move(run->stderr_text);
  return result;
}

}  // namespace openimds::netsetup
