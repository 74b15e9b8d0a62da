#include "common/subprocess.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace openimds::common {
namespace {

SubprocessOptions Sh(const std::string& script) {
  SubprocessOptions o;
  o.argv = {"sh", "-c", script};
  o.env = CurrentEnvironment();
  return o;
}

// The state letter of /proc/PID/stat ('Z' for a zombie), or 0 when there is
// no such process.
char ProcessState(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos || paren + 2 >= text.size()) return 0;
  return text[paren + 2];
}

// True once `pid`, killed but not our child, is gone or a zombie: its new
// parent (init or a subreaper) reaps it when it will. SIGKILL takes effect
// asynchronously, so look for a while; a process that was never killed
// stays asleep and fails the test.
bool Dies(pid_t pid) {
  for (int i = 0; i < 1000; ++i) {
    const char state = ProcessState(pid);
    if (state == 0 || state == 'Z') return true;
    ::usleep(10'000);
  }
  return false;
}

TEST(SubprocessTest, ExitCodeStdinAndCapture) {
  SubprocessOptions o = Sh("cat; echo err >&2; exit 3");
  o.stdin_text = "hello";
  auto r = RunSubprocess(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->term_signal, 0);
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->stdout_text, "hello");
  EXPECT_EQ(r->stderr_text, "err\n");
}

TEST(SubprocessTest, LargeInputAndOutputDoNotDeadlock) {
  // More than a pipe holds, both ways at once: the child blocks writing its
  // stdout unless we read while we write its stdin.
  std::string input;
  for (int i = 0; input.size() < 1024 * 1024; ++i) input += std::to_string(i) + "\n";
  SubprocessOptions o = Sh("cat");
  o.stdin_text = input;
  o.max_stdout_bytes = 2 * input.size();
  auto r = RunSubprocess(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->stdout_text, input);
}

TEST(SubprocessTest, StdinIsDevNullUnlessGiven) {
  auto r = RunSubprocess(Sh("readlink /proc/self/fd/0; cat"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->stdout_text, "/dev/null\n");
}

TEST(SubprocessTest, AChildThatIgnoresItsInputDoesNotKillUs) {
  // Our write gets EPIPE once `true` has exited; the SIGPIPE it raises must
  // not reach the process (its default action would end this test binary).
  SubprocessOptions o = Sh("exit 0");
  o.stdin_text = std::string(4 * 1024 * 1024, 'x');
  auto r = RunSubprocess(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 0);
  sigset_t pending;
  sigpending(&pending);
  EXPECT_EQ(sigismember(&pending, SIGPIPE), 0) << "a SIGPIPE was left pending";
}

TEST(SubprocessTest, ASignalIsReported) {
  auto r = RunSubprocess(Sh("kill -TERM $$"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, -1);
  EXPECT_EQ(r->term_signal, SIGTERM);
}

TEST(SubprocessTest, StartFailures) {
  SubprocessOptions o;
  o.argv = {"/nonexistent/oimds-no-such-program", "x"};
  auto missing = RunSubprocess(o);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kUnavailable);
  EXPECT_NE(missing.status().message().find("/nonexistent/oimds-no-such-program"),
            std::string::npos)
      << missing.status().message();
  o.argv = {"oimds-no-such-program-in-path"};
  EXPECT_EQ(RunSubprocess(o).status().code(), Code::kUnavailable);
  o.argv.clear();
  EXPECT_EQ(RunSubprocess(o).status().code(), Code::kInvalidArgument);
}

TEST(SubprocessTest, TheStdoutCapKillsTheChild) {
  SubprocessOptions o;
  o.argv = {"yes"};
  o.max_stdout_bytes = 1000;
  o.timeout = std::chrono::minutes(5);  // never reached: the cap ends it
  auto r = RunSubprocess(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->stdout_overflow);
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->stdout_text.size(), 1000u);
  EXPECT_EQ(r->term_signal, SIGKILL);
}

TEST(SubprocessTest, StderrPastItsCapIsDroppedNotFatal) {
  SubprocessOptions o = Sh("head -c 100000 /dev/zero | tr '\\0' e >&2; echo done");
  o.max_stderr_bytes = 4096;
  auto r = RunSubprocess(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->stdout_text, "done\n");
  EXPECT_EQ(r->stderr_text, std::string(4096, 'e'));
  EXPECT_TRUE(r->stderr_truncated);
  EXPECT_FALSE(r->stdout_overflow);
}

TEST(SubprocessTest, TheTimeoutKillsTheGroupAndReapsTheChild) {
  // The child prints its own pid and a grandchild's, then waits forever.
  SubprocessOptions o = Sh("sleep 600 & echo $$ $!; wait");
  o.timeout = std::chrono::milliseconds(300);
  auto r = RunSubprocess(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->term_signal, SIGKILL);
  std::istringstream pids(r->stdout_text);
  pid_t child = 0, grandchild = 0;
  ASSERT_TRUE(pids >> child >> grandchild) << r->stdout_text;
  // Reaped: no process, not even a zombie, and nothing left for us to wait for.
  EXPECT_EQ(ProcessState(child), 0) << "child " << child << " still there";
  errno = 0;
  EXPECT_EQ(::waitpid(child, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  // The grandchild was killed with the group.
  EXPECT_TRUE(Dies(grandchild)) << "grandchild " << grandchild << " still runs";
}

TEST(SubprocessTest, AGrandchildHoldingThePipesDoesNotHideTheExit) {
  // The child exits at once; what it left behind keeps stdout open until the
  // timeout, which then kills it. The child's own result stands.
  SubprocessOptions o = Sh("sleep 600 & echo $!; exit 7");
  o.timeout = std::chrono::milliseconds(300);
  auto r = RunSubprocess(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->exit_code, 7);
  const pid_t grandchild = std::stoi(r->stdout_text);
  EXPECT_TRUE(Dies(grandchild)) << "grandchild " << grandchild << " still runs";
}

TEST(SubprocessTest, DescriptorsAbove2AreClosed) {
  // A descriptor without close-on-exec, as a library might leave one.
  const int fd = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::dup2(fd, 77), 77);
  SubprocessOptions o;
  o.argv = {"ls", "/proc/self/fd"};
  o.env = CurrentEnvironment();
  auto r = RunSubprocess(o);
  ::close(77);
  ::close(fd);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::istringstream listed(r->stdout_text);
  std::set<int> fds;
  for (int n; listed >> n;) fds.insert(n);
  // 0-2, and the directory ls itself opened to list them.
  EXPECT_EQ(fds, (std::set<int>{0, 1, 2, 3})) << r->stdout_text;
}

TEST(SubprocessTest, SignalMaskAndDispositionsAreReset) {
  // As serve and proxy leave them for their signal watcher.
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &block, &old_mask);
  struct sigaction ignore {
  }, old_usr1{}, old_pipe{};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGUSR1, &ignore, &old_usr1);
  sigaction(SIGPIPE, &ignore, &old_pipe);
  SubprocessOptions o;
  o.argv = {"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"};
  o.env = CurrentEnvironment();
  auto r = RunSubprocess(o);
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  sigaction(SIGUSR1, &old_usr1, nullptr);
  sigaction(SIGPIPE, &old_pipe, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // glibc's posix_spawn leaves its two internal signals (32 and 33, below
  // SIGRTMIN) ignored, and no program's own signal depends on them: every
  // other bit must be clear.
  uint64_t reserved = 0;
  for (int sig = 32; sig < SIGRTMIN; ++sig) reserved |= uint64_t{1} << (sig - 1);
  std::istringstream lines(r->stdout_text);
  std::string name, hex;
  int seen = 0;
  while (lines >> name >> hex) {
    ++seen;
    EXPECT_EQ(std::stoull(hex, nullptr, 16) & ~reserved, 0u) << name << " " << hex;
  }
  EXPECT_EQ(seen, 2) << r->stdout_text;
}

TEST(SubprocessTest, TheEnvironmentIsExactlyWhatIsGiven) {
  SubprocessOptions o;
  o.argv = {"env"};
  o.env = {"OPENIMDS_A=1", "OPENIMDS_B=two words"};
  auto r = RunSubprocess(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stdout_text, "OPENIMDS_A=1\nOPENIMDS_B=two words\n");
}

}  // namespace
}  // namespace openimds::common
