#include "credentials/credential_source.h"

#include <algorithm>
#include <boost/json.hpp>

#include "common/log.h"
#include "common/subprocess.h"
#include "common/time_format.h"

namespace openimds::credentials {
namespace {

using common::Result;
using common::Status;

constexpr std::string_view kComponent = "credential-source";
constexpr std::string_view kRunsHelp =
    "Runs of the credential-source command, by result (ok, failed: non-zero exit or not "
    "started, invalid: output refused, timeout)";

bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// The first line of a command's stderr, for a log line: at most 200 bytes,
// and nothing unprintable (it is the command's text, not ours).
std::string FirstLine(const std::string& text) {
  std::string line = text.substr(0, std::min<size_t>(text.find('\n'), 200));
  return HasControl(line) ? "(unprintable)" : line;
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
  common::SubprocessOptions run_options;
  run_options.argv = {options_.command, instance.id, instance.iam->name};
  run_options.env = common::CurrentEnvironment();
  for (std::string var :
       {"OPENIMDS_INSTANCE_ID=" + instance.id, "OPENIMDS_ROLE=" + instance.iam->name,
        "OPENIMDS_ACCOUNT_ID=" + instance.account_id, "OPENIMDS_REGION=" + instance.region,
        "OPENIMDS_INSTANCE_PROFILE_ARN=" + instance.iam->instance_profile_arn}) {
    run_options.env.push_back(std::move(var));
  }
  run_options.timeout = options_.timeout;
  run_options.max_stdout_bytes = options_.max_output_bytes;
  run_options.max_stderr_bytes = 4096;  // only its first line is logged
  const std::string who = instance.id + "/" + instance.iam->name;
  auto run = common::RunSubprocess(run_options);
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
  if (run->stdout_overflow) {
    runs_invalid_.Inc();
    common::LogWarn(kComponent, who + ": output longer than " +
                                    std::to_string(options_.max_output_bytes) + " bytes");
    return common::InvalidArgument("credential source output too large");
  }
  if (run->exit_code != 0) {
    runs_failed_.Inc();
    const std::string how = run->term_signal != 0
                                ? "killed by signal " + std::to_string(run->term_signal)
                                : "exit status " + std::to_string(run->exit_code);
    const std::string line = FirstLine(run->stderr_text);
    common::LogWarn(kComponent, who + ": " + how + (line.empty() ? std::string() : ": " + line));
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

}  // namespace openimds::credentials
