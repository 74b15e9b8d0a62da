#include "app/credential_source.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "common/time_format.h"

extern char** environ;

namespace openimds::app {
namespace {

using common::Result;
using common::Status;

constexpr std::string_view kComponent = "credential-source";
constexpr std::string_view kRunsHelp =
    "Runs of the credential-source command, by result (ok, failed: non-zero exit or not "
    "started, invalid: output refused, timeout)";

// An fd closed when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

}  // namespace

Result<model::Credentials> ParseCredentialProcessOutput(std::string_view text,
                                                        common::TimePoint now,
                                                        std::chrono::seconds min_validity) {
  boost::system::error_code ec;
  boost::json::value doc = boost::json::parse(text, ec);
  if (ec || !doc.is_object()) return common::InvalidArgument("output is not a JSON object");
  const boost::json::object& o = doc.get_object();
  const auto* version = o.if_contains("Version");
  if (version == nullptr || !version->is_int64() || version->get_int64() != 1) {
    return common::InvalidArgument("\"Version\" must be 1");
  }
  model::Credentials c;
  const std::pair<const char*, model::Str*> fields[] = {
      {"AccessKeyId", &c.access_key_id},
      {"SecretAccessKey", &c.secret_access_key},
      {"SessionToken", &c.token},
  };
  for (const auto& [name, out] : fields) {
    const auto* v = o.if_contains(name);
    if (v == nullptr || !v->is_string() || v->get_string().empty()) {
      return common::InvalidArgument(std::string("\"") + name + "\" must be a non-empty string");
    }
    if (HasControl(v->get_string()) || v->get_string().size() > 4096) {
      return common::InvalidArgument(std::string("\"") + name +
                                     "\" has control characters or is too long");
    }
    *out = model::Str(std::string_view(v->get_string()));
  }
  const auto* expiration = o.if_contains("Expiration");
  if (expiration == nullptr || !expiration->is_string()) {
    return common::InvalidArgument("\"Expiration\" is required (instance credentials expire)");
  }
  auto t = common::ParseRfc3339(expiration->get_string());
  if (!t) return common::InvalidArgument("\"Expiration\" is not an RFC 3339 time");
  c.expiration = std::chrono::floor<std::chrono::seconds>(*t);
  if (c.expiration <= now + min_validity) {
    return common::InvalidArgument("\"Expiration\" " + common::FormatRfc3339(c.expiration) +
                                   " is not after now + " + std::to_string(min_validity.count()) +
                                   " s");
  }
  c.last_updated = std::chrono::floor<std::chrono::seconds>(now);
  return c;
}

Result<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                 const std::vector<std::string>& extra_env,
                                 std::chrono::milliseconds timeout, size_t max_output_bytes) {
  if (argv.empty() || argv[0].empty()) return common::InvalidArgument("empty command");
  int out_fds[2];
  int err_fds[2];
  if (pipe2(out_fds, O_CLOEXEC) != 0) return common::Internal("pipe failed");
  Fd out_read(out_fds[0]), out_write(out_fds[1]);
  if (pipe2(err_fds, O_CLOEXEC) != 0) return common::Internal("pipe failed");
  Fd err_read(err_fds[0]), err_write(err_fds[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_write.get(), 2);
  // Sockets and the store's files are not the command's business (and a
  // child holding a listening socket would keep the port busy after us).
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // serve blocks SIGINT/SIGTERM in every thread for its signal watcher; the
  // child must not inherit that mask, nor ignored dispositions.
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) env.push_back(*e);
  for (const auto& e : extra_env) env.push_back(const_cast<char*>(e.c_str()));
  env.push_back(nullptr);

  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, argv[0].c_str(), &actions, &attr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return common::Internal("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  out_write.Reset();
  err_write.Reset();

  CommandResult result;
  std::string err_text;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      break;
    }
    pollfd fds[2] = {{out_open ? out_read.get() : -1, POLLIN, 0},
                     {err_open ? err_read.get() : -1, POLLIN, 0}};
    const int n = ::poll(fds, 2, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (n < 0 && errno != EINTR) break;
    char buf[4096];
    if (out_open && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const ssize_t got = ::read(out_read.get(), buf, sizeof(buf));
      if (got <= 0) {
        out_open = false;
      } else {
        result.stdout_text.append(buf, static_cast<size_t>(got));
        if (result.stdout_text.size() > max_output_bytes) {
          result.output_too_large = true;
          break;
        }
      }
    }
    if (err_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const ssize_t got = ::read(err_read.get(), buf, sizeof(buf));
      if (got <= 0) {
        err_open = false;
      } else if (err_text.size() < 4096) {
        err_text.append(buf, static_cast<size_t>(got));
      }
    }
  }
  if (result.timed_out || result.output_too_large) ::kill(pid, SIGKILL);
  // The pipes may close before the process ends (it closed them, or left a
  // child holding them): the deadline still applies to the process itself.
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) break;
    if (r == 0 && std::chrono::steady_clock::now() >= deadline) {
      result.timed_out = true;
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    ::usleep(5000);
  }
  result.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  const size_t eol = err_text.find('\n');
  result.stderr_first_line = err_text.substr(0, std::min<size_t>(eol, 200));
  if (HasControl(result.stderr_first_line)) result.stderr_first_line = "(unprintable)";
  return result;
}

CredentialSource::CredentialSource(Options options, const catalog::Catalog& catalog,
                                   const common::Clock& clock, common::MetricsRegistry& metrics)
    : options_(std::move(options)),
      catalog_(catalog),
      clock_(clock),
      runs_ok_(metrics.GetCounter("credential_source_runs_total", kRunsHelp, "result=\"ok\"")),
      runs_failed_(
          metrics.GetCounter("credential_source_runs_total", kRunsHelp, "result=\"failed\"")),
      runs_invalid_(
          metrics.GetCounter("credential_source_runs_total", kRunsHelp, "result=\"invalid\"")),
      runs_timeout_(
          metrics.GetCounter("credential_source_runs_total", kRunsHelp, "result=\"timeout\"")) {}

CredentialSource::~CredentialSource() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CredentialSource::Start() {
  // The first pass runs at once, on the thread: start-up does not wait for
  // a command per instance (guests asking meanwhile get 404 and retry).
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      RefreshOnce();
      lock.lock();
      wake_.wait_for(lock, options_.scan_interval, [this] { return stop_ || changed_; });
      changed_ = false;
    }
  });
}

std::shared_ptr<const model::Credentials> CredentialSource::Find(
    const model::Instance& instance) const {
  if (!instance.iam.has_value()) return nullptr;
  std::lock_guard lock(mu_);
  auto it = entries_.find(instance.id);
  if (it == entries_.end() || it->second.role != instance.iam->name) return nullptr;
  return it->second.credentials;
}

bool CredentialSource::NeedsSource(const model::Instance& instance, common::TimePoint now) const {
  if (!instance.iam.has_value()) return false;
  const auto& own = instance.iam->credentials;
  // The record's own credentials serve while fresh; the command covers the
  // rest (none pushed, or pushed ones about to expire).
  return !own.has_value() || own->expiration <= now + options_.refresh_before;
}

Result<model::Credentials> CredentialSource::Fetch(const model::Instance& instance) {
  const std::vector<std::string> argv = {options_.command, instance.id, instance.iam->name};
  const std::vector<std::string> env = {
      "OPENIMDS_INSTANCE_ID=" + instance.id,
      "OPENIMDS_ROLE=" + instance.iam->name,
      "OPENIMDS_ACCOUNT_ID=" + instance.account_id,
      "OPENIMDS_REGION=" + instance.region,
      "OPENIMDS_INSTANCE_PROFILE_ARN=" + instance.iam->instance_profile_arn,
  };
  const std::string who = instance.id + "/" + instance.iam->name;
  auto run = RunCommand(argv, env, options_.timeout, options_.max_output_bytes);
  if (!run.ok()) {
    runs_failed_.Inc();
    common::LogWarn(kComponent, who + ": " + run.status().message());
    return run.status();
  }
  if (run->timed_out) {
    runs_timeout_.Inc();
    common::LogWarn(kComponent,
                    who + ": killed after " + std::to_string(options_.timeout.count()) + " ms");
    return common::Unavailable("credential source timed out");
  }
  if (run->output_too_large) {
    runs_invalid_.Inc();
    common::LogWarn(kComponent, who + ": output longer than " +
                                    std::to_string(options_.max_output_bytes) + " bytes");
    return common::InvalidArgument("credential source output too large");
  }
  if (run->exit_status != 0) {
    runs_failed_.Inc();
    common::LogWarn(
        kComponent,
        who + ": exit status " + std::to_string(run->exit_status) +
            (run->stderr_first_line.empty() ? std::string() : ": " + run->stderr_first_line));
    return common::Unavailable("credential source failed");
  }
  auto creds =
      ParseCredentialProcessOutput(run->stdout_text, clock_.Now(), options_.refresh_before);
  if (!creds.ok()) {
    runs_invalid_.Inc();
    common::LogWarn(kComponent, who + ": output refused: " + creds.status().message());
    return creds.status();
  }
  runs_ok_.Inc();
  return creds;
}

void CredentialSource::Changed(const std::vector<feed::Applied>& changes) {
  {
    std::lock_guard lock(mu_);
    for (const feed::Applied& c : changes) {
      if (c.instance && c.instance->iam.has_value()) {
        candidates_[c.id] = c.instance;
      } else {
        candidates_.erase(c.id);
      }
    }
    changed_ = true;
  }
  wake_.notify_all();
}

void CredentialSource::RefreshOnce() {
  const common::TimePoint now = clock_.Now();
  std::vector<std::shared_ptr<const model::Instance>> due;
  {
    std::lock_guard lock(mu_);
    if (!seeded_) {
      // Once: later changes arrive through Changed(). Changes applied before
      // this read are in the catalog already, so nothing is missed.
      catalog_.Current()->ForEach([this](const catalog::Entry& entry) {
        if (entry.instance->iam.has_value()) candidates_[entry.instance->id] = entry.instance;
      });
      seeded_ = true;
    }
    // Forget instances that are gone or no longer need the command.
    std::unordered_map<std::string, Entry> kept;
    for (const auto& [id, instance] : candidates_) {
      const model::Instance& in = *instance;
      if (!NeedsSource(in, now)) continue;
      auto it = entries_.find(in.id);
      Entry e;
      if (it != entries_.end() && it->second.role == in.iam->name) e = std::move(it->second);
      e.role = in.iam->name;
      const bool fresh_enough =
          e.credentials != nullptr && now < e.credentials->expiration - options_.refresh_before;
      if (!fresh_enough && now >= e.next_attempt) due.push_back(instance);
      kept.emplace(in.id, std::move(e));
    }
    entries_ = std::move(kept);
  }
  for (const auto& instance : due) {
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
    auto creds = Fetch(*instance);
    std::lock_guard lock(mu_);
    auto it = entries_.find(instance->id);
    if (it == entries_.end()) continue;
    Entry& e = it->second;
    if (creds.ok()) {
      e.credentials = std::make_shared<const model::Credentials>(std::move(*creds));
      e.backoff = std::chrono::seconds(0);
      e.next_attempt = {};
    } else {
      // Previous credentials (if any) stay until they expire; the flavour
      // checks the expiry on every read.
      e.backoff =
          e.backoff.count() == 0 ? options_.min_retry : std::min(options_.max_retry, e.backoff * 2);
      e.next_attempt = clock_.Now() + e.backoff;
    }
  }
}

}  // namespace openimds::app
