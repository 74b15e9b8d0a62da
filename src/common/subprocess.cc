#include "common/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

extern char** environ;

namespace openimds::common {
namespace {

using Clock = std::chrono::steady_clock;

// A descriptor closed when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// Both ends of a pipe, close-on-exec (the child gets its end by dup2).
bool OpenPipe(Fd& read_end, Fd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  read_end.Reset(fds[0]);
  write_end.Reset(fds[1]);
  return true;
}

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Blocks SIGPIPE in this thread while stdin is written, and consumes one
// that our own write raised, so a child that exits without reading its
// input cannot kill the process.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_);
  }
  ~SigpipeGuard() {
    sigset_t pending;
    sigpending(&pending);
    if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
      sigset_t pipe_set;
      sigemptyset(&pipe_set);
      sigaddset(&pipe_set, SIGPIPE);
      const timespec zero{0, 0};
      while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t old_;
  bool was_pending_ = false;
};

// True once the child has exited; it stays a zombie (WNOWAIT) so that its
// pid, which is also its process group id, cannot be reused before we are
// done signalling the group.
bool HasExited(pid_t pid) {
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) < 0) {
    if (errno != EINTR) return true;  // ECHILD: nothing left to wait for
  }
  return info.si_pid == pid;
}

}  // namespace

std::vector<std::string> CurrentEnvironment() {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) out.emplace_back(*e);
  return out;
}

Result<SubprocessResult> RunSubprocess(const SubprocessOptions& o) {
  if (o.argv.empty() || o.argv[0].empty()) return InvalidArgument("empty command");
  const std::string& program = o.argv[0];
  Fd in_read, in_write, out_read, out_write, err_read, err_write;
  if ((o.stdin_text && !OpenPipe(in_read, in_write)) || !OpenPipe(out_read, out_write) ||
      !OpenPipe(err_read, err_write)) {
    return Internal(std::string("cannot run ") + program + ": pipe: " + std::strerror(errno));
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (o.stdin_text) {
    posix_spawn_file_actions_adddup2(&actions, in_read.get(), 0);
  } else {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_write.get(), 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t all;
  sigfillset(&all);  // SIGKILL and SIGSTOP cannot be changed and are skipped
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);  // a group of its own, led by the child
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  std::vector<char*> args;
  for (const auto& a : o.argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (const auto& e : o.env) env.push_back(const_cast<char*>(e.c_str()));
  env.push_back(nullptr);

  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, program.c_str(), &actions, &attr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Unavailable("cannot run " + program + ": " + std::strerror(rc));
  in_read.Reset();
  out_write.Reset();
  err_write.Reset();

  // Present only while stdin is written (see SigpipeGuard).
  std::optional<SigpipeGuard> sigpipe_guard;
  size_t written = 0;
  if (o.stdin_text) {
    if (o.stdin_text->empty()) {
      in_write.Reset();
    } else {
      sigpipe_guard.emplace();
      SetNonBlocking(in_write.get());
    }
  }
  SetNonBlocking(out_read.get());
  SetNonBlocking(err_read.get());
  // Readable when the child exits (Linux 5.3+); without it, poll in short
  // steps and look.
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));

  SubprocessResult result;
  const auto deadline = Clock::now() + o.timeout;
  bool exited = false;
  bool deadline_passed = false;
  auto kill_group = [pid] { ::kill(-pid, SIGKILL); };
  while (true) {
    if (!exited) exited = HasExited(pid);
    if (exited) in_write.Reset();  // nobody left to read it
    if (exited && !out_read.open() && !err_read.open()) break;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      deadline_passed = true;
      break;
    }
    pollfd fds[4];
    nfds_t n = 0;
    auto add = [&](const Fd& fd, short events) {
      if (!fd.open()) return -1;
      fds[n] = pollfd{fd.get(), events, 0};
      return static_cast<int>(n++);
    };
    const int i_in = add(in_write, POLLOUT);
    const int i_out = add(out_read, POLLIN);
    const int i_err = add(err_read, POLLIN);
    const int i_pid = exited ? -1 : add(pidfd, POLLIN);
    const int wait_ms = static_cast<int>(
        std::min<int64_t>(left.count(), (exited || i_pid >= 0) ? left.count() : 10));
    if (::poll(fds, n, wait_ms) < 0 && errno != EINTR) {
      kill_group();
      break;
    }
    if (i_in >= 0 && fds[i_in].revents != 0) {
      const std::string& text = *o.stdin_text;
      const ssize_t w = ::write(in_write.get(), text.data() + written, text.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == text.size()) {
        in_write.Reset();  // all written, or the child closed its end (EPIPE)
      }
    }
    char buf[16 * 1024];
    if (i_out >= 0 && fds[i_out].revents != 0) {
      const ssize_t r = ::read(out_read.get(), buf, sizeof(buf));
      if (r > 0) {
        const size_t room = o.max_stdout_bytes - result.stdout_text.size();
        result.stdout_text.append(buf, std::min(room, static_cast<size_t>(r)));
        if (static_cast<size_t>(r) > room) {
          result.stdout_overflow = true;
          kill_group();
          out_read.Reset();
        }
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        out_read.Reset();
      }
    }
    if (i_err >= 0 && fds[i_err].revents != 0) {
      const ssize_t r = ::read(err_read.get(), buf, sizeof(buf));
      if (r > 0) {
        const size_t room = o.max_stderr_bytes - result.stderr_text.size();
        result.stderr_text.append(buf, std::min(room, static_cast<size_t>(r)));
        if (static_cast<size_t>(r) > room) result.stderr_truncated = true;
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        err_read.Reset();
      }
    }
  }
  if (deadline_passed) {
    // The child (if it has not exited), or what it left holding the pipes.
    result.timed_out = !exited;
    kill_group();
  }
  int status = 0;
  pid_t reaped = -1;
  while ((reaped = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  sigpipe_guard.reset();
  // reaped < 0 only if someone else reaped it (SIGCHLD ignored): unknown.
  if (reaped == pid && WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (reaped == pid && WIFSIGNALED(status)) {
    result.term_signal = WTERMSIG(status);
  }
  return result;
}

}  // namespace openimds::common
