#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "model/instance.h"
#include "store/store.h"

namespace openimds::store {

class SqliteDb;  // RAII owner of the sqlite3* connection (sqlite_store.cc).

// The embedded Store: one SQLite file in WAL mode.
//
// Layout (schema version kSchemaVersion, kept in PRAGMA user_version and
// migrated forward on Open, one transaction per step):
//   instances(id PRIMARY KEY, revision, json)   json = model::ToJsonText
//   addresses(network, address, instance_id)    PRIMARY KEY (network, address):
//                                               the one-holder-per-address rule
//   meta(key PRIMARY KEY, value)                'revision': the store-wide sequence
//   secrets(name PRIMARY KEY, value BLOB)
//
// Several processes may open the same file (SQLite's file locks order their
// writes; each write is one IMMEDIATE transaction, so a writer waits up to
// Options::busy_timeout for another and then fails Unavailable).
//
// Writes Normalize() a copy of the instance and Validate() it first
// (InvalidArgument, message starting with the JSON pointer); Get/List return
// the normalized record. Besides the results Store documents:
//   InsufficientStorage "store disk is full" when SQLite reports SQLITE_FULL;
//   Unavailable, with SQLite's message, when the file is read-only, cannot be
//     opened, fails with an I/O error, or stays locked past busy_timeout;
//   Internal when a stored record no longer parses.
// A write that fails leaves the previous state intact (the transaction rolls back).
//
// Thread-safe: one connection, serialised by a mutex.
class SqliteStore final : public Store {
 public:
  // The schema version this build writes. A file with a higher user_version
  // was written by a newer build: Open refuses it (FailedPrecondition).
  static constexpr int kSchemaVersion = 1;

  struct Options {
    // Database file; created (mode 0600: it holds secrets) if missing and
    // !read_only. Its directory must exist.
    std::string path;

    // How long a write waits for another connection's lock before it fails
    // Unavailable.
    std::chrono::milliseconds busy_timeout{5000};

    // PRAGMA synchronous. kFull makes every acknowledged write durable across
    // power loss, as Store promises. kNormal (WAL) may lose the last writes on
    // power loss (never on a process crash) and breaks that promise: only for
    // benchmarks and throwaway stores.
    enum class Synchronous { kFull, kNormal };
    Synchronous synchronous = Synchronous::kFull;

    // Open with SQLITE_OPEN_READONLY: reads work, every write is Unavailable
    // ("attempt to write a readonly database"). A read-only replica or a
    // diagnostic tool. The file must exist and be at kSchemaVersion already
    // (no migration is possible), else Open fails FailedPrecondition.
    bool read_only = false;
  };

  // Opens (creating if needed) and migrates the database. Several processes
  // may open (and so migrate) one file at once.
  // InvalidArgument: empty path. Unavailable: the file or its directory cannot
  //   be opened or created, it is not a database, or it stays locked past
  //   busy_timeout (SQLite's message included). FailedPrecondition: the schema
  //   is newer than this build; or older and read_only; or the file is some
  //   other program's SQLite database. InsufficientStorage: no room to migrate.
  static common::Result<std::unique_ptr<SqliteStore>> Open(Options options);

  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  common::Result<int64_t> Put(const model::Instance& instance, Precondition pre) override;
  common::Result<std::vector<int64_t>> PutMany(
      const std::vector<model::Instance>& instances) override;
  common::Result<StoredInstance> Get(std::string_view id) override;
  common::Status Delete(std::string_view id, Precondition pre) override;
  common::Result<std::vector<StoredInstance>> List() override;
  common::Result<std::string> GetOrCreateSecret(std::string_view name,
                                                std::string_view candidate) override;
  common::Result<std::optional<std::string>> GetSecret(std::string_view name) override;
  common::Status PutSecret(std::string_view name, std::string_view value) override;
  common::Status DeleteSecret(std::string_view name) override;
  common::Result<int64_t> LatestRevision() override;

 private:
  SqliteStore(Options options, std::unique_ptr<SqliteDb> db);

  // Constant after construction.
  const Options options_;

  // Guards every use of db_: one sqlite3 connection is not to be used by two
  // threads at once (opened SQLITE_OPEN_NOMUTEX; this mutex is the lock).
  std::mutex mu_;
  std::unique_ptr<SqliteDb> db_;  // guarded by mu_
};

}  // namespace openimds::store
