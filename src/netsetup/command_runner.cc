#include "netsetup/command_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <tuple>

extern char** environ;

namespace openimds::netsetup {
namespace {

struct Pipe {
  int fd[2] = {-1, -1};
  bool Open() { return pipe2(fd, O_CLOEXEC) == 0; }
  void Close(int i) {
    if (fd[i] >= 0) close(fd[i]);
    fd[i] = -1;
  }
  ~Pipe() {
    Close(0);
    Close(1);
  }
};

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
  Pipe in, out, err;
  if (!in.Open() || !out.Open() || !err.Open()) {
    return common::Unavailable(std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.fd[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out.fd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err.fd[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return common::Unavailable("cannot run " + argv[0] + ": " + std::strerror(rc));
  }
  in.Close(0);
  out.Close(1);
  err.Close(1);

  // Feed stdin and drain both outputs together, so no pipe fills up and
  // blocks the child.
  Output result;
  size_t written = 0;
  if (input.empty()) in.Close(1);
  const auto until = std::chrono::steady_clock::now() + timeout_;
  bool timed_out = false;
  while (out.fd[0] >= 0 || err.fd[0] >= 0) {
    pollfd fds[3];
    int n = 0;
    int idx_in = -1, idx_out = -1, idx_err = -1;
    if (in.fd[1] >= 0) {
      idx_in = n;
      fds[n++] = pollfd{in.fd[1], POLLOUT, 0};
    }
    if (out.fd[0] >= 0) {
      idx_out = n;
      fds[n++] = pollfd{out.fd[0], POLLIN, 0};
    }
    if (err.fd[0] >= 0) {
      idx_err = n;
      fds[n++] = pollfd{err.fd[0], POLLIN, 0};
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    int ready = poll(fds, static_cast<nfds_t>(n), static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    if (idx_in >= 0 && (fds[idx_in].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write(in.fd[1], input.data() + written, input.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if (w < 0 || written == input.size()) in.Close(1);
    }
    char buf[4096];
    for (auto [idx, pipe, sink] :
         {std::tuple{idx_out, &out, &result.out}, std::tuple{idx_err, &err, &result.err}}) {
      if (idx < 0 || !(fds[idx].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = read(pipe->fd[0], buf, sizeof(buf));
      if (r > 0) {
        sink->append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        pipe->Close(0);
      }
    }
  }
  in.Close(1);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return common::Unavailable(argv[0] + " did not finish within " +
                               std::to_string(timeout_.count()) + " ms");
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace openimds::netsetup
