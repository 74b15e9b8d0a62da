#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <thread>
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
//   instances(id PRIMARY KEY, revision, json,   json = model::ToJsonText;
//             incarnation)                      incarnation = the revision of the
//                                               write that inserted the row, kept
//                                               by updates (v3; rows older than v3:
//                                               their revision at the migration)
//   addresses(network, address, instance_id)    PRIMARY KEY (network, address):
//                                               the one-holder-per-address rule;
//                                               a write releases what the record
//                                               it replaces claimed (no index by
//                                               instance since v4)
//   meta(key PRIMARY KEY, value)                'revision': the store-wide sequence;
//                                               'instance_count': rows in instances;
//                                               'feed_floor': every change after it
//                                               is in `changes`; 'feed_origin': the
//                                               revision the feed started at (v2)
//   secrets(name PRIMARY KEY, value BLOB)
//   changes(revision PRIMARY KEY, id)           the change feed: one row per changed
//                                               id per revision, puts and deletes alike
//
// Writes: every write is Commit (Put, PutMany and Delete build one Write). One
// Commit is one IMMEDIATE transaction and one fsync; each Write in it runs
// inside a SAVEPOINT, so a refused Write rolls back alone. Revisions are
// handed out from a counter read once per transaction and written back before
// COMMIT, so a Write that rolls back gives its revisions back and the feed
// stays contiguous (every revision in (feed_floor, revision] has exactly one
// row in `changes`). Statements are prepared once per connection and reused.
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
//   Internal when a stored record no longer parses (Get, List, Scan; in
//     Commit it refuses the Write that would mutate that record).
// A write that fails leaves the previous state intact (the transaction rolls back).
//
// ChangesSince reads the latest revision, the feed floor, the log rows and
// the current records in one read transaction (one snapshot). It sets
// resync_required, with one of these reasons, when `since` is older than the
// feed ("the store predates the change feed ..." for history before the
// migration to schema 2, "the change feed was compacted ..." past
// Options::feed_retention), newer than the store ("reader is ahead of the
// store ...: the store was replaced or restored"), when the log rows after
// `since` are not exactly since+1, since+2, ... ("gap in the change feed after
// revision N"), or when a record it would return does not parse (the reason
// names the id). Apart from failing to read at all (Unavailable), it never
// returns an error.
//
// Put and PutMany keep their historic meaning "write a new revision", even
// when the record is equal to the stored one; a Commit whose mutate returns
// an equal record writes nothing (MutateFn).
//
// Thread-safe: one connection, serialised by a mutex. Scan opens a second,
// private connection for the duration of the call, so a long scan does not
// hold writers up and its sink may call this store.
class SqliteStore final : public Store {
 public:
  // The schema version this build writes. A file with a higher user_version
  // was written by a newer build: Open refuses it (FailedPrecondition).
  static constexpr int kSchemaVersion = 4;

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

    // The most instances the store may hold; 0: no limit. A Write that would
    // leave more than this many (and more than before it) is refused
    // InsufficientStorage. Replacing or deleting instances is always allowed.
    // The count lives in the file, so it holds across processes.
    int64_t max_instances = 0;

    // How many revisions of history the change feed keeps: every
    // feed_compact_every revisions a write transaction deletes the entries at
    // or below latest - feed_retention, and a reader further behind than that
    // must resync (ChangePage::resync_required). 0 keeps no history at all.
    int64_t feed_retention = 100000;
    int64_t feed_compact_every = 1024;

    // Threads (the calling one included) that normalize, validate and
    // serialise the records of a large Write (256 mutations or more) inside
    // Commit; mutate itself always runs on the calling thread. 0 or 1: the
    // calling thread alone.
    unsigned write_threads = std::thread::hardware_concurrency();

    // Threads that parse records during Scan (besides the calling thread,
    // which reads rows and calls the sink). 0 or 1: parse on the calling
    // thread.
    unsigned scan_threads = std::thread::hardware_concurrency();

    // Bytes kept on the store's file system in PATH.reserve (made at Open
    // when there is room; 0: none). When a commit finds the disk full the
    // store deletes this file, retries, and from then on takes only deletes
    // (a Write that would add or change a record is refused
    // InsufficientStorage) so an operator can free space through the API;
    // once there is room for the reserve again it is remade and every write
    // is taken again.
    uint64_t reserve_bytes = 8u << 20;

    // WAL bytes after which a thread of the store's own copies the WAL back
    // into the database file (PASSIVE checkpoints, off the committing
    // thread), and after which the committing thread does it itself because
    // that thread fell behind (a reader pinning old frames). Not SQLite's
    // 1,000 pages: a checkpoint copies each page once however often it was
    // rewritten since the last one, and a bulk import rewrites the same index
    // pages in every commit, so checkpointing after each commit wrote them to
    // the database file as often as to the WAL.
    int64_t checkpoint_bytes = int64_t{256} << 20;
    int64_t inline_checkpoint_bytes = int64_t{1} << 30;
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
  std::string DegradedReason() const override;
  // The main connection's page cache (sqlite3_db_release_memory).
  void ReleaseCaches() override;

  common::Result<std::vector<WriteOutcome>> Commit(std::vector<Write>& writes) override;
  // max_changes 0 is taken as 1 (a page that can hold nothing would never
  // advance the reader).
  common::Result<ChangePage> ChangesSince(int64_t since, size_t max_changes) override;
  common::Result<int64_t> Scan(
      const std::function<common::Status(SharedInstance&&)>& sink) override;
  void SetCommitListener(std::function<void(int64_t latest)> listener) override;

 private:
  SqliteStore(Options options, std::unique_ptr<SqliteDb> db);

  // How Put and PutMany's contract differs from Commit's.
  struct CommitMode {
    // A record equal to the stored one is still written under a new revision.
    bool replace_equal = false;
    // Refusals carry "instance N (id): " even in a one-mutation Write.
    bool prefix_single = false;
  };
  // Commit in `mode`; `what` names the operation in SQLite error messages.
  // On a full disk: releases the reserve and retries taking deletes only.
  common::Result<std::vector<WriteOutcome>> CommitWrites(std::vector<Write>& writes,
                                                         CommitMode mode, std::string_view what);
  common::Result<std::vector<WriteOutcome>> CommitOnce(std::vector<Write>& writes,
                                                       CommitMode mode, bool deletes_only,
                                                       std::string_view what);

  // The reserve file (Options::reserve_bytes): made when there is room for
  // it plus as much again; true when it exists afterwards.
  bool MakeReserve();
  std::string ReservePath() const { return options_.path + ".reserve"; }

  // Constant after construction.
  const Options options_;

  // Guards every use of db_: one sqlite3 connection is not to be used by two
  // threads at once (opened SQLITE_OPEN_NOMUTEX; this mutex is the lock).
  std::mutex mu_;
  std::unique_ptr<SqliteDb> db_;                     // guarded by mu_
  // A commit found the disk full and no later one has written since.
  std::atomic<bool> storage_full_{false};
  // The reserve was released for deletes: only deletes are taken until it
  // can be made again. Guarded by mu_.
  bool deletes_only_ = false;
  std::function<void(int64_t latest)> listener_;     // guarded by mu_
  // What this object committed lately, by id: the record and its revision.
  // ChangesSince hands these out instead of parsing the row again (the
  // follower of this process reads back every write it made); an entry is
  // used only while the row still has the revision this process gave it and
  // no other connection has committed since (data_version_), and taken out
  // when used.
  // Bounded: cleared when it grows past kRecentMax (then rows are parsed).
  static constexpr size_t kRecentMax = 200000;
  struct Recent {
    int64_t revision = 0;
    std::shared_ptr<const model::Instance> instance;
  };
  std::unordered_map<std::string, Recent> recent_;  // guarded by mu_
  // Checkpoints the WAL into the database file on a thread of its own, with
  // its own connection, so a commit pays for its WAL frames and not for
  // copying earlier ones back (SQLite's automatic checkpoint runs inside the
  // committing call). Null for a read-only store.
  class Checkpointer;
  std::unique_ptr<Checkpointer> checkpointer_;
  // PRAGMA data_version as last seen on db_: it changes when any other
  // connection (another process, the sqlite3 shell) commits, and then
  // recent_ is dropped, since a row may have been rewritten behind it.
  int64_t data_version_ = -1;  // guarded by mu_
};

}  // namespace openimds::store
