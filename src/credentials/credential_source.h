#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "catalog/catalog.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/result.h"
#include "common/time_format.h"
#include "feed/follower.h"
#include "model/instance.h"

namespace openimds::credentials {

// Role credentials produced by an operator's command (`serve
// --credential-source-command`), for instances whose record carries an IAM
// role but no fresh credentials of its own. Flavours never see this class:
// app/ hands Find() to each through the interface the flavour declares (EC2:
// flavour::ec2::CredentialProvider); GCE service accounts and Azure managed
// identities will take theirs from here too.
//
// The command is run (common::RunSubprocess: no shell, stdin /dev/null, no
// inherited descriptors, signals reset) as `COMMAND <instance-id> <role-name>`
// with the server's environment plus OPENIMDS_INSTANCE_ID, OPENIMDS_ROLE,
// OPENIMDS_ACCOUNT_ID, OPENIMDS_REGION and OPENIMDS_INSTANCE_PROFILE_ARN, and
// must print what the AWS CLI's `credential_process` prints:
//   {"Version": 1, "AccessKeyId": "...", "SecretAccessKey": "...",
//    "SessionToken": "...", "Expiration": "2026-11-25T19:00:00Z"}
// so any existing credential_process helper (aws-vault, STS AssumeRole
// wrappers) can be used as is.
//
// A background thread keeps the set of instances that carry a role (seeded
// from the catalog once, then kept by Changed(), which the change feed calls
// for every applied page). It wakes on a change, or every `scan_interval` to
// catch credentials nearing expiry, and runs the command for each instance of
// that set that needs credentials (none cached, or the
// cached ones within `refresh_before` of expiry, EC2's "at least five minutes
// before" rule), validates the output and caches it. A failure (exit status,
// timeout, invalid output) keeps the previous credentials until they expire,
// never longer, and is retried with exponential backoff. Expired credentials
// are never handed out: the guest then gets 404 for the role's leaf.
//
// Counters: credential_source_runs_total{result="ok|failed|invalid|timeout"}.
// One warning log line per failed run (the command's first stderr line,
// never its stdout, which holds the secret).
//
// Thread-safe: Find may be called from any I/O thread (it takes a mutex
// around a map lookup; it is called only on credential paths).
class CredentialSource final {
 public:
  struct Options {
    // Executable (absolute path, or looked up in PATH). Required.
    std::string command;
    // Refresh credentials this long before they expire (EC2: at least 5 min).
    std::chrono::seconds refresh_before{300};
    // How often the instances with a role are checked for credentials nearing
    // expiry (changes to instances wake the thread at once).
    std::chrono::milliseconds scan_interval{2000};
    // A run that takes longer is killed (SIGKILL, with its process group)
    // and counted as "timeout".
    std::chrono::milliseconds timeout{10000};
    // Standard output beyond this kills the command and counts as "invalid"
    // (credentials are < 4 KiB).
    size_t max_output_bytes = 64 * 1024;
    // Backoff after a failed run: doubles from min to max.
    std::chrono::seconds min_retry{5};
    std::chrono::seconds max_retry{300};
  };

  // `catalog`, `clock` and `metrics` are borrowed and must outlive this.
  CredentialSource(Options options, const catalog::Catalog& catalog, const common::Clock& clock,
                   common::MetricsRegistry& metrics);
  ~CredentialSource();  // stops the background thread
  CredentialSource(const CredentialSource&) = delete;
  CredentialSource& operator=(const CredentialSource&) = delete;

  // Starts the background thread; its first pass begins at once.
  void Start();

  // Cached credentials for `instance`'s role, or null when there are none
  // (yet, or any more: a failed refresh keeps the old ones until they
  // expire). The caller still checks the expiry against its clock. Never
  // blocks on I/O.
  std::shared_ptr<const model::Credentials> Find(const model::Instance& instance) const;

  // One pass over the instances with a role: runs the command wherever
  // needed now. The first pass reads them from the catalog. Used by the
  // thread, and directly by tests.
  void RefreshOnce();

  // The change feed's subscription: tracks instances that gained, changed or
  // lost a role, and wakes the thread. Cheap; any thread.
  void Changed(const std::vector<feed::Applied>& changes);

 private:
  struct Entry {
    std::string role;
    std::shared_ptr<const model::Credentials> credentials;
    common::TimePoint next_attempt{};  // after a failure
    std::chrono::seconds backoff{0};
  };

  bool NeedsSource(const model::Instance& instance, common::TimePoint now) const;
  common::Result<model::Credentials> Fetch(const model::Instance& instance);

  const Options options_;
  const catalog::Catalog& catalog_;
  const common::Clock& clock_;
  common::Counter& runs_ok_;
  common::Counter& runs_failed_;
  common::Counter& runs_invalid_;
  common::Counter& runs_timeout_;

  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;  // by instance id; guarded by mu_
  // Instances whose record has a role, by id. Guarded by mu_.
  std::unordered_map<std::string, std::shared_ptr<const model::Instance>> candidates_;
  bool seeded_ = false;   // candidates_ read from the catalog; guarded by mu_
  bool changed_ = false;  // Changed() since the last pass; guarded by mu_
  bool stop_ = false;     // guarded by mu_
  std::condition_variable wake_;
  std::thread thread_;
};

// Validates a credential_process document. `now` + `min_validity` must be
// before its Expiration (credentials that would need refreshing at once are
// refused). InvalidArgument saying which field is wrong; never echoes values.
common::Result<model::Credentials> ParseCredentialProcessOutput(std::string_view text,
                                                                common::TimePoint now,
                                                                std::chrono::seconds min_validity);

}  // namespace openimds::credentials
