#include "store/sqlite_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>

#include <sqlite3.h>

#include "common/log.h"
#include "common/parallel_for.h"
#include "common/thread_name.h"
#include "common/thread_priority.h"
#include "model/instance_json.h"

namespace openimds::store {

using common::Code;
using common::Result;
using common::Status;

namespace {

constexpr std::string_view kLogComponent = "store";

// The one mapping from SQLite result codes to Status. `what` says what we were
// doing ("put i-1", "open /var/lib/openimds/store.db").
Status SqliteError(sqlite3* db, int rc, std::string_view what) {
  const std::string detail =
      std::string(what) + ": " + (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  Status status;
  switch (rc & 0xff) {
    case SQLITE_FULL:
      status = Status(Code::kInsufficientStorage, "store disk is full (" + detail + ")");
      break;
    // The store is there but cannot take writes (or reads) right now: a
    // read-only file or file system, a vanished or unreadable file, a failing
    // disk, or another writer holding the lock past busy_timeout.
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_PROTOCOL:
    case SQLITE_PERM:
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      status = common::Unavailable("store unavailable: " + detail);
      break;
    default:
      status = common::Internal("store: " + detail);
      break;
  }
  common::LogWarn(kLogComponent, status.ToString());
  return status;
}

// A prepared statement borrowed from its connection's cache (SqliteDb):
// reset and unbound on destruction, so the next user finds it fresh and no
// read stays open behind the caller's back.
class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(Statement&& other) noexcept
      : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)) {}
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  ~Statement() {
    if (stmt_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }

  // Binding only fails on a bad index or out of memory: programming errors,
  // which then surface as the step's error (SQLite keeps the first one).
  Statement& Bind(int index, std::string_view text) {
    sqlite3_bind_text64(stmt_, index, text.data() != nullptr ? text.data() : "", text.size(),
                        SQLITE_TRANSIENT, SQLITE_UTF8);
    return *this;
  }
  Statement& BindBlob(int index, std::string_view bytes) {
    // A null pointer would bind NULL, not an empty blob.
    sqlite3_bind_blob64(stmt_, index, bytes.data() != nullptr ? bytes.data() : "", bytes.size(),
                        SQLITE_TRANSIENT);
    return *this;
  }
  Statement& Bind(int index, int64_t value) {
    sqlite3_bind_int64(stmt_, index, value);
    return *this;
  }

  // true: a row is available; false: done.
  Result<bool> Step(std::string_view what) {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(db_, rc, what);
  }
  // Steps to completion (statements without rows).
  Status Run(std::string_view what) {
    for (;;) {
      auto row = Step(what);
      if (!row.ok()) return row.status();
      if (!*row) return Status::Ok();
    }
  }

  int64_t Int64(int column) const { return sqlite3_column_int64(stmt_, column); }
  std::string Text(int column) const {
    const auto* p = sqlite3_column_text(stmt_, column);
    return p == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(p),
                                      static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
  }
  std::string Blob(int column) const {
    const void* p = sqlite3_column_blob(stmt_, column);
    return p == nullptr ? std::string()
                        : std::string(static_cast<const char*>(p),
                                      static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

}  // namespace

// Owns one sqlite3 connection and its prepared statements. Not thread-safe:
// SqliteStore's mutex guards it (Scan's private connection is used by one
// thread at a time).
class SqliteDb {
 public:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  ~SqliteDb() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  sqlite3* get() { return db_; }

  // The statement for `sql`, prepared on first use and kept: an import of
  // thousands of rows per transaction would otherwise spend much of its time
  // in the SQL compiler. At most one Statement per SQL text may be alive.
  Result<Statement> Prepare(std::string_view sql, std::string_view what) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) return Statement(db_, it->second);
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return SqliteError(db_, rc, what);
    }
    cache_.emplace(std::string(sql), stmt);
    return Statement(db_, stmt);
  }

  // One or more statements without parameters or rows of interest.
  Status Exec(const char* sql, std::string_view what) {
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_, rc, what);
    return Status::Ok();
  }

  // A single-row, single-column integer query (PRAGMAs, counts).
  Result<int64_t> QueryInt(std::string_view sql, std::string_view what) {
    auto stmt = Prepare(sql, what);
    if (!stmt.ok()) return stmt.status();
    auto row = stmt->Step(what);
    if (!row.ok()) return row.status();
    if (!*row) return common::Internal(std::string(what) + ": no row");
    return stmt->Int64(0);
  }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*, Hash, std::equal_to<>> cache_;
};

namespace {

// A write transaction. BEGIN IMMEDIATE takes the write lock up front, so the
// busy handler (busy_timeout) applies and two writers never deadlock upgrading
// read locks. Rolled back on destruction unless committed.
// With `read`, BEGIN DEFERRED: a read transaction, one consistent snapshot
// from its first read to its end (WAL), taking no write lock.
class Transaction {
 public:
  explicit Transaction(SqliteDb& db, bool read = false) : db_(db), read_(read) {}
  ~Transaction() {
    // SQLite may already have rolled back (e.g. after SQLITE_FULL); roll back
    // only what is still open, so the connection is clean for the next call.
    if (begun_ && sqlite3_get_autocommit(db_.get()) == 0) {
      sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Status Begin(std::string_view what) {
    Status s = db_.Exec(read_ ? "BEGIN DEFERRED" : "BEGIN IMMEDIATE", what);
    begun_ = s.ok();
    return s;
  }
  Status Commit(std::string_view what) { return db_.Exec("COMMIT", what); }

 private:
  SqliteDb& db_;
  const bool read_;
  bool begun_ = false;
};

// Ordered schema steps. Each runs in its own transaction and sets
// user_version to its number; never edit a released step, append a new one.
struct Migration {
  int version;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, R"sql(
      CREATE TABLE instances (
        id TEXT PRIMARY KEY NOT NULL,
        revision INTEGER NOT NULL,
        json TEXT NOT NULL
      );
      CREATE TABLE addresses (
        network TEXT NOT NULL,
        address TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        PRIMARY KEY (network, address)
      ) WITHOUT ROWID;
      CREATE INDEX addresses_by_instance ON addresses (instance_id);
      CREATE TABLE meta (
        key TEXT PRIMARY KEY NOT NULL,
        value
      );
      INSERT INTO meta (key, value) VALUES ('revision', 0);
      CREATE TABLE secrets (
        name TEXT PRIMARY KEY NOT NULL,
        value BLOB NOT NULL
      );
    )sql"},
    // The change feed. History before this step is unknown, so the feed starts
    // at the revision the store had then (0 for a fresh store): a reader
    // asking for older changes is told to resync.
    {2, R"sql(
      CREATE TABLE changes (
        revision INTEGER PRIMARY KEY NOT NULL,
        id TEXT NOT NULL
      );
      INSERT INTO meta (key, value) SELECT 'feed_floor', value FROM meta WHERE key = 'revision';
      INSERT INTO meta (key, value) SELECT 'feed_origin', value FROM meta WHERE key = 'revision';
      INSERT INTO meta (key, value) SELECT 'instance_count', count(*) FROM instances;
    )sql"},
    // The incarnation: the revision of the write that created the row, kept
    // by updates (model::ServerManaged). A row's creating write is unknown
    // for rows older than this step; their latest revision stands in for it,
    // which is unique per row and below every revision to come.
    {3, R"sql(
      ALTER TABLE instances ADD COLUMN incarnation INTEGER NOT NULL DEFAULT 0;
      UPDATE instances SET incarnation = revision;
    )sql"},
    // Addresses are released from the record that claimed them (its
    // CallerAddresses), by primary key, so the index by instance only cost
    // writes: every commit rewrote the pages its random ids touched, which
    // at a million instances was a third of what a bulk import wrote.
    {4, R"sql(
      DROP INDEX IF EXISTS addresses_by_instance;
    )sql"},
};

constexpr int LastMigration() {
  int v = 0;
  for (const auto& m : kMigrations) v = m.version;
  return v;
}
static_assert(LastMigration() == SqliteStore::kSchemaVersion,
              "kSchemaVersion must be the last migration's version");

Status Migrate(SqliteDb& db, const SqliteStore::Options& options) {
  auto version = db.QueryInt("PRAGMA user_version", "read schema version");
  if (!version.ok()) return version.status();
  if (*version > SqliteStore::kSchemaVersion) {
    return common::FailedPrecondition(
        "store " + options.path + " has schema version " + std::to_string(*version) +
        ", newer than this build understands (" + std::to_string(SqliteStore::kSchemaVersion) +
        "): run a newer openimds");
  }
  if (*version == SqliteStore::kSchemaVersion) return Status::Ok();
  if (options.read_only) {
    return common::FailedPrecondition(
        "store " + options.path + " has schema version " + std::to_string(*version) +
        ", older than " + std::to_string(SqliteStore::kSchemaVersion) +
        ", and cannot be migrated read-only: open it read-write once");
  }
  for (const Migration& m : kMigrations) {
    const std::string what = "migrate store to schema version " + std::to_string(m.version);
    Transaction txn(db);
    if (Status s = txn.Begin(what); !s.ok()) return s;
    // Another process may have migrated while we waited for the lock.
    auto current = db.QueryInt("PRAGMA user_version", what);
    if (!current.ok()) return current.status();
    if (*current >= m.version) continue;
    if (*current == 0) {
      // A fresh file has no tables; anything else at user_version 0 is some
      // other program's database, which we must not write into. Checked under
      // the write lock: another process may be creating our tables right now.
      auto tables = db.QueryInt("SELECT count(*) FROM sqlite_master", what);
      if (!tables.ok()) return tables.status();
      if (*tables != 0) {
        return common::FailedPrecondition("store " + options.path +
                                          " is a SQLite database but not an openimds store");
      }
    }
    if (Status s = db.Exec(m.sql, what); !s.ok()) return s;
    const std::string set_version = "PRAGMA user_version = " + std::to_string(m.version);
    if (Status s = db.Exec(set_version.c_str(), what); !s.ok()) return s;
    if (Status s = txn.Commit(what); !s.ok()) return s;
    common::LogInfo(kLogComponent,
                    "migrated " + options.path + " to schema version " + std::to_string(m.version));
  }
  return Status::Ok();
}

// WAL: readers never block the writer, and a commit is one append + fsync.
// The mode is stored in the file, so this only changes something the first
// time. Switching needs an exclusive lock, and SQLite does not call the busy
// handler for it (several processes opening a fresh file at once get
// SQLITE_BUSY straight away), so we retry until busy_timeout ourselves.
Status EnableWal(SqliteDb& db, std::chrono::milliseconds timeout, std::string_view what) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::string mode;
    const int rc = sqlite3_exec(
        db.get(), "PRAGMA journal_mode = WAL",
        [](void* out, int columns, char** values, char**) {
          if (columns > 0 && values[0] != nullptr) *static_cast<std::string*>(out) = values[0];
          return 0;
        },
        &mode, nullptr);
    if (rc == SQLITE_OK) {
      if (mode == "wal") return Status::Ok();
      return common::Unavailable("store unavailable: " + std::string(what) +
                                 ": cannot switch to WAL mode (journal mode is " + mode + ")");
    }
    if ((rc & 0xff) != SQLITE_BUSY || std::chrono::steady_clock::now() >= deadline) {
      return SqliteError(db.get(), rc, what);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

Status CheckPreconditionArgument(Precondition pre) {
  if (pre.expected_revision && *pre.expected_revision < 0) {
    return common::InvalidArgument("expected revision " + std::to_string(*pre.expected_revision) +
                                   " is negative");
  }
  return Status::Ok();
}

Status CheckPrecondition(std::string_view id, std::optional<int64_t> current, Precondition pre) {
  if (!pre.expected_revision) return Status::Ok();
  const int64_t want = *pre.expected_revision;
  const std::string name = "instance " + std::string(id);
  if (want == 0) {
    if (current) {
      return common::FailedPrecondition(name + " already exists (revision " +
                                        std::to_string(*current) + ")");
    }
    return Status::Ok();
  }
  if (!current) {
    return common::FailedPrecondition(name + " does not exist (expected revision " +
                                      std::to_string(want) + ")");
  }
  if (*current != want) {
    return common::FailedPrecondition(name + " is at revision " + std::to_string(*current) +
                                      ", not " + std::to_string(want));
  }
  return Status::Ok();
}

// Gives up `addresses` of network `network` held by instance `id` (rows
// another instance holds stay: the table is the truth about who holds what).
Status ReleaseAddresses(SqliteDb& db, std::string_view network, std::string_view id,
                        const std::vector<std::string>& addresses, std::string_view what) {
  for (const std::string& address : addresses) {
    auto stmt = db.Prepare(
        "DELETE FROM addresses WHERE network = ?1 AND address = ?2 AND instance_id = ?3", what);
    if (!stmt.ok()) return stmt.status();
    if (Status s = stmt->Bind(1, network).Bind(2, address).Bind(3, id).Run(what); !s.ok()) {
      return s;
    }
  }
  return Status::Ok();
}

// True iff instance `holder`'s stored record claims `address` in `network`.
// A row of `addresses` whose holder does not (the record was rewritten behind
// the store's back, by hand or by a build that kept the table otherwise) is
// stale, and the address is free.
Result<bool> HolderClaims(SqliteDb& db, std::string_view holder, std::string_view network,
                          std::string_view address, std::string_view what) {
  auto stmt = db.Prepare("SELECT json FROM instances WHERE id = ?1", what);
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, holder);
  auto row = stmt->Step(what);
  if (!row.ok()) return row.status();
  if (!*row) return false;
  auto in = model::FromJsonText(stmt->Text(0));
  if (!in.ok()) return true;  // unreadable: keep its claims rather than guess
  if (in->network != network) return false;
  bool claims = false;
  model::ForEachCallerAddress(*in, [&](const common::IpAddress& a) {
    if (!claims && a.ToString() == address) claims = true;
  });
  return claims;
}

// Claims `addresses` (model::CallerAddresses of `in`, or the part of them it
// did not hold before) for `in`. The primary key (network, address) is the
// guarantee; on a clash we look up the holder to name it in `conflict`, or
// take the address over when that holder's record does not claim it (a stale
// row, counted in `stale`). The returned Status is SQLite failing.
Status ClaimAddresses(SqliteDb& db, const model::Instance& in,
                      const std::vector<std::string>& addresses, Status& conflict,
                      int64_t& stale, std::string_view what) {
  for (const std::string& address : addresses) {
    auto insert = db.Prepare(
        "INSERT INTO addresses (network, address, instance_id) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (network, address) DO NOTHING",
        what);
    if (!insert.ok()) return insert.status();
    if (Status s = insert->Bind(1, in.network).Bind(2, address).Bind(3, in.id).Run(what); !s.ok()) {
      return s;
    }
    if (sqlite3_changes(db.get()) == 1) continue;
    std::string holder_id = "(unknown)";
    {
      auto holder =
          db.Prepare("SELECT instance_id FROM addresses WHERE network = ?1 AND address = ?2", what);
      if (!holder.ok()) return holder.status();
      holder->Bind(1, in.network).Bind(2, address);
      auto row = holder->Step(what);
      if (!row.ok()) return row.status();
      if (*row) holder_id = holder->Text(0);
    }
    if (holder_id == in.id) continue;  // held already (a row the diff kept)
    auto claims = HolderClaims(db, holder_id, in.network, address, what);
    if (!claims.ok()) return claims.status();
    if (!*claims) {
      auto take = db.Prepare(
          "UPDATE addresses SET instance_id = ?3 WHERE network = ?1 AND address = ?2", what);
      if (!take.ok()) return take.status();
      if (Status s = take->Bind(1, in.network).Bind(2, address).Bind(3, in.id).Run(what);
          !s.ok()) {
        return s;
      }
      ++stale;
      continue;
    }
    conflict = common::Conflict("address " + address + " in network " + in.network +
                                " is held by instance " + holder_id);
    return Status::Ok();
  }
  return Status::Ok();
}

// Creates the row with incarnation `revision`, or updates it and keeps its
// incarnation: only a write that finds no row starts a new one.
Status UpsertInstance(SqliteDb& db, std::string_view id, std::string_view json, int64_t revision,
                      std::string_view what) {
  auto stmt = db.Prepare(
      "INSERT INTO instances (id, revision, json, incarnation) VALUES (?1, ?2, ?3, ?2) "
      "ON CONFLICT (id) DO UPDATE SET revision = excluded.revision, json = excluded.json",
      what);
  if (!stmt.ok()) return stmt.status();
  return stmt->Bind(1, id).Bind(2, revision).Bind(3, json).Run(what);
}

Status DeleteInstance(SqliteDb& db, std::string_view id, std::string_view what) {
  auto stmt = db.Prepare("DELETE FROM instances WHERE id = ?1", what);
  if (!stmt.ok()) return stmt.status();
  return stmt->Bind(1, id).Run(what);
}

Status AppendChange(SqliteDb& db, int64_t revision, std::string_view id, std::string_view what) {
  auto stmt = db.Prepare("INSERT INTO changes (revision, id) VALUES (?1, ?2)", what);
  if (!stmt.ok()) return stmt.status();
  return stmt->Bind(1, revision).Bind(2, id).Run(what);
}

Result<int64_t> ReadMeta(SqliteDb& db, std::string_view key, std::string_view what) {
  auto stmt = db.Prepare("SELECT value FROM meta WHERE key = ?1", what);
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, key);
  auto row = stmt->Step(what);
  if (!row.ok()) return row.status();
  if (!*row) return common::Internal(std::string(what) + ": meta." + std::string(key) + " missing");
  return stmt->Int64(0);
}

Status WriteMeta(SqliteDb& db, std::string_view key, int64_t value, std::string_view what) {
  auto stmt = db.Prepare("UPDATE meta SET value = ?2 WHERE key = ?1", what);
  if (!stmt.ok()) return stmt.status();
  return stmt->Bind(1, key).Bind(2, value).Run(what);
}

// Statements without parameters run often enough (one savepoint per Write) to
// be worth keeping prepared.
Status Run(SqliteDb& db, std::string_view sql, std::string_view what) {
  auto stmt = db.Prepare(sql, what);
  if (!stmt.ok()) return stmt.status();
  return stmt->Run(what);
}

// A row as read: its JSON, plus what the store keeps beside it.
Result<StoredInstance> ParseStored(std::string_view id, int64_t revision, const std::string& json,
                                   int64_t incarnation) {
  auto in = model::FromJsonText(json);
  if (!in.ok()) {
    Status s = common::Internal("stored instance " + std::string(id) +
                                " does not parse: " + in.status().message());
    common::LogError(kLogComponent, s.message());
    return s;
  }
  in->managed.incarnation = incarnation;
  return StoredInstance{std::move(*in), revision};
}

// Normalize + Validate, so that what is stored reads back equal.
Result<model::Instance> Prepared(const model::Instance& instance) {
  model::Instance in = instance;
  model::Normalize(in);
  if (Status s = model::Validate(in); !s.ok()) return s;
  return in;
}

// Adds "instance 3 (i-x): " to the errors that one instance of a batch caused.
Status AtIndex(size_t index, std::string_view id, const Status& s) {
  if (s.code() != Code::kInvalidArgument && s.code() != Code::kConflict &&
      s.code() != Code::kFailedPrecondition) {
    return s;
  }
  return Status(s.code(),
                "instance " + std::to_string(index) + " (" + std::string(id) + "): " + s.message());
}


// "instance 3 (i-x): " before a refusal of one mutation of a multi-mutation Write.
Status Prefixed(size_t index, std::string_view id, const Status& s) {
  return Status(s.code(),
                "instance " + std::to_string(index) + " (" + std::string(id) + "): " + s.message());
}

// The counters one Commit keeps in memory from BEGIN to COMMIT, when they are
// written back to meta. Handing revisions out of memory instead of an UPDATE
// per row is what lets one transaction take thousands of rows quickly; a
// refused Write restores the copy taken at its savepoint, so the revisions it
// had taken are handed out again and the feed stays contiguous.
struct Counters {
  int64_t revision = 0;   // meta 'revision': the last revision handed out
  int64_t instances = 0;  // meta 'instance_count'
  // Not in meta: address rows taken over from a holder whose record does not
  // claim them (ClaimAddresses), logged after COMMIT.
  int64_t stale_addresses = 0;
};

struct ApplyOptions {
  // No other connection has committed since this store last looked
  // (data_version): a Mutation::current_hint whose revision matches the row
  // is the row.
  bool trust_hints = false;
  bool replace_equal = false;  // write an unchanged record under a new revision
  bool deletes_only = false;   // the disk is full: refuse any Write that adds or changes
  bool prefix_single = false;  // prefix refusals even of one-mutation Writes
  int64_t max_instances = 0;
  unsigned threads = 0;        // SqliteStore::Options::write_threads
};

// A record one Commit wrote, kept for ChangesSince (SqliteStore::recent_).
struct Committed {
  std::string id;
  int64_t revision = 0;
  std::shared_ptr<const model::Instance> instance;
};

// One mutation between the phases of ApplyWrite.
struct Step {
  std::optional<StoredInstance> current;
  // Null: delete. Shared so that the record written is the one the change
  // feed hands out (Mutation::put needs no copy at all).
  std::shared_ptr<model::Instance> next;
  std::string json;                    // ToJsonText(*next), when changed
  std::vector<std::string> addresses;  // CallerAddresses(*next)
  // When changed: the addresses of `current` to give up and those of `next`
  // to claim. Addresses both hold in one network are neither released nor
  // claimed again, so a write that keeps its addresses (most updates: tags,
  // credentials) writes nothing to the address table.
  std::vector<std::string> release;
  std::vector<std::string> claim;
  bool changed = false;
  Status refusal;  // from normalizing and validating `next`
};

// Fills step.release and step.claim for a changed member: what `current`
// held and `next` does not, and what `next` claims that `current` did not
// hold; all of one and all of the other when the network changes.
void SplitAddresses(Step& step) {
  std::vector<std::string> old;
  if (step.current) old = model::CallerAddresses(step.current->instance);
  if (!step.next) {
    step.release = std::move(old);
    return;
  }
  if (!step.current || step.current->instance.network != step.next->network) {
    step.release = std::move(old);
    step.claim = step.addresses;
    return;
  }
  std::vector<std::string> kept = old;
  std::vector<std::string> now = step.addresses;
  std::sort(kept.begin(), kept.end());
  std::sort(now.begin(), now.end());
  for (const std::string& a : old) {
    if (!std::binary_search(now.begin(), now.end(), a)) step.release.push_back(a);
  }
  for (const std::string& a : step.addresses) {
    if (!std::binary_search(kept.begin(), kept.end(), a)) step.claim.push_back(a);
  }
}

// Runs `write` inside the caller's savepoint. A refusal of this Write goes to
// `outcome.status` (the caller then rolls the savepoint back and restores
// `counters`); the returned Status is SQLite failing, which aborts the whole
// Commit.
//
// Phases: (1) read every current record and call mutate, in order, on this
// thread; then normalize, validate, compare and serialise every result (pure
// work, spread over threads for a large Write); then check addresses within
// the Write, in order. Nothing is written before all of that passed, and the
// refusal reported is that of the lowest-numbered offending mutation.
// (2) The instance limit. (3) Release the addresses of every changed member.
// (4) Claim addresses and write rows in order. Releasing first judges the
// Write by the state it leaves: one member may take over an address another
// gives up, whatever their order.
Status ApplyWrite(SqliteDb& db, Write& write, const ApplyOptions& opt, Counters& counters,
                  WriteOutcome& outcome, std::vector<Committed>& committed,
                  std::string_view what) {
  const size_t n = write.mutations.size();
  const bool prefix = n > 1 || opt.prefix_single;
  auto refuse = [&](size_t i, Status s) {
    outcome.status = prefix ? Prefixed(i, write.mutations[i].id, s) : std::move(s);
    return Status::Ok();
  };
  std::vector<Step> steps(n);
  std::unordered_map<std::string_view, size_t> ids;
  ids.reserve(n);

  // (1a) Current records and mutate, up to the first refusal.
  size_t mutated = n;
  Status mutate_refusal;
  for (size_t i = 0; i < n && mutated == n; ++i) {
    Mutation& m = write.mutations[i];
    Step& step = steps[i];
    if (auto [it, fresh] = ids.emplace(m.id, i); !fresh) {
      mutate_refusal = common::InvalidArgument("id repeated (also instance " +
                                               std::to_string(it->second) + ")");
      mutated = i;
      break;
    }
    if (m.current_hint && opt.trust_hints) {
      auto head = db.Prepare("SELECT revision, incarnation FROM instances WHERE id = ?1", what);
      if (!head.ok()) return head.status();
      head->Bind(1, m.id);
      auto row = head->Step(what);
      if (!row.ok()) return row.status();
      if (*row && head->Int64(0) == m.current_hint_revision) {
        step.current = StoredInstance{*m.current_hint, m.current_hint_revision};
        step.current->instance.managed.incarnation = head->Int64(1);
      }
    }
    if (!step.current) {
      auto stmt =
          db.Prepare("SELECT revision, json, incarnation FROM instances WHERE id = ?1", what);
      if (!stmt.ok()) return stmt.status();
      stmt->Bind(1, m.id);
      auto row = stmt->Step(what);
      if (!row.ok()) return row.status();
      if (*row) {
        auto stored = ParseStored(m.id, stmt->Int64(0), stmt->Text(1), stmt->Int64(2));
        if (!stored.ok()) {
          mutate_refusal = stored.status();
          mutated = i;
          break;
        }
        step.current = std::move(*stored);
      }
    }
    if (m.put) {
      step.next = m.put;
      continue;
    }
    auto next = m.mutate(step.current ? &*step.current : nullptr);
    if (!next.ok()) {
      mutate_refusal = next.status();
      mutated = i;
      break;
    }
    if (*next) step.next = std::make_shared<model::Instance>(std::move(**next));
  }

  // (1b) The pure part, on several threads for a large Write.
  common::ParallelFor(mutated, opt.threads, [&](size_t i) {
    Step& step = steps[i];
    if (!step.next) {
      step.changed = step.current.has_value();
      if (step.changed) SplitAddresses(step);
      return;
    }
    model::Instance& in = *step.next;
    model::Normalize(in);
    if (in.id != write.mutations[i].id) {
      step.refusal = common::InvalidArgument("/id: the write is for instance " +
                                             write.mutations[i].id + ", not " + in.id);
      return;
    }
    if (Status s = model::Validate(in); !s.ok()) {
      step.refusal = std::move(s);
      return;
    }
    step.changed = opt.replace_equal || !step.current || !(step.current->instance == in);
    if (step.changed) step.json = model::ToJsonText(in);
    step.addresses = model::CallerAddresses(in);
    if (step.changed) SplitAddresses(step);
  });

  // (1c) In order: the first refusal wins; addresses within the Write.
  std::map<std::pair<std::string_view, std::string_view>, size_t> claimed;
  int64_t delta = 0;  // change in the number of instances
  for (size_t i = 0; i < mutated; ++i) {
    Step& step = steps[i];
    if (!step.refusal.ok()) return refuse(i, step.refusal);
    if (step.next) {
      // Unchanged members count too: they keep their addresses.
      for (const std::string& address : step.addresses) {
        if (auto [it, fresh] = claimed.emplace(std::make_pair(std::string_view(step.next->network),
                                                              std::string_view(address)),
                                               i);
            !fresh) {
          return refuse(i, common::Conflict("address " + address + " in network " +
                                            step.next->network + " is also claimed by instance " +
                                            std::to_string(it->second) + " (" +
                                            write.mutations[it->second].id + ") in this batch"));
        }
      }
    }
    delta += (step.next ? 1 : 0) - (step.current ? 1 : 0);
  }
  if (mutated < n) return refuse(mutated, mutate_refusal);
  if (opt.deletes_only) {
    for (size_t i = 0; i < n; ++i) {
      if (steps[i].next && steps[i].changed) {
        return refuse(i, Status(Code::kInsufficientStorage,
                                "store disk is full: only deletes are accepted until there is "
                                "room again (free space on the store's file system)"));
      }
    }
  }

  if (opt.max_instances > 0 && delta > 0 && counters.instances + delta > opt.max_instances) {
    const std::string limit = std::to_string(opt.max_instances);
    outcome.status =
        counters.instances >= opt.max_instances
            ? Status(Code::kInsufficientStorage,
                     "the store holds " + std::to_string(counters.instances) +
                         " instances, the limit set by --max-instances (" + limit +
                         "); delete some or raise the limit")
            : Status(Code::kInsufficientStorage,
                     "this write would bring the store to " +
                         std::to_string(counters.instances + delta) +
                         " instances, over the limit of " + limit +
                         " set by --max-instances; delete some or raise the limit");
    return Status::Ok();
  }

  for (size_t i = 0; i < n; ++i) {
    const Step& step = steps[i];
    if (step.changed && !step.release.empty()) {
      if (Status s = ReleaseAddresses(db, step.current->instance.network, write.mutations[i].id,
                                      step.release, what);
          !s.ok()) {
        return s;
      }
    }
  }

  outcome.mutations.resize(n);
  for (size_t i = 0; i < n; ++i) {
    Step& step = steps[i];
    MutationOutcome& out = outcome.mutations[i];
    out.existed = step.current.has_value();
    if (!step.changed) {
      out.revision = step.current ? step.current->revision : 0;
      if (step.current && step.next) out.incarnation = step.current->instance.managed.incarnation;
      continue;
    }
    if (step.next) {
      Status conflict;
      if (Status s =
              ClaimAddresses(db, *step.next, step.claim, conflict, counters.stale_addresses, what);
          !s.ok()) {
        return s;
      }
      if (!conflict.ok()) return refuse(i, conflict);
    }
    const int64_t revision = ++counters.revision;
    if (step.next) {
      // Whatever the mutation's record said: the store alone decides (as
      // UpsertInstance does in the row).
      step.next->managed.incarnation =
          step.current ? step.current->instance.managed.incarnation : revision;
      out.incarnation = step.next->managed.incarnation;
      if (Status s = UpsertInstance(db, write.mutations[i].id, step.json, revision, what);
          !s.ok()) {
        return s;
      }
    } else {
      if (Status s = DeleteInstance(db, write.mutations[i].id, what); !s.ok()) return s;
    }
    if (Status s = AppendChange(db, revision, write.mutations[i].id, what); !s.ok()) return s;
    out.revision = revision;
    out.changed = true;
    if (step.next) {
      committed.push_back(Committed{write.mutations[i].id, revision, std::move(step.next)});
    }
  }
  counters.instances += delta;
  return Status::Ok();
}

// Trims the change feed to the last `retention` revisions, once every
// `every` revisions (when [before, latest] crosses a multiple of it), so the
// cost is spread thinly over the writes.
Status CompactFeed(SqliteDb& db, int64_t before, int64_t latest, int64_t retention, int64_t every,
                   std::string_view what) {
  if (every <= 0 || before / every == latest / every) return Status::Ok();
  const int64_t floor = latest - std::max<int64_t>(retention, 0);
  if (floor <= 0) return Status::Ok();
  auto trim = db.Prepare("DELETE FROM changes WHERE revision <= ?1", what);
  if (!trim.ok()) return trim.status();
  if (Status s = trim->Bind(1, floor).Run(what); !s.ok()) return s;
  auto raise =
      db.Prepare("UPDATE meta SET value = max(value, ?1) WHERE key = 'feed_floor'", what);
  if (!raise.ok()) return raise.status();
  return raise->Bind(1, floor).Run(what);
}

// Opens a connection with the options' mode and busy timeout.
Result<std::unique_ptr<SqliteDb>> Connect(const SqliteStore::Options& options,
                                          std::string_view what) {
  sqlite3* raw = nullptr;
  const int flags =
      (options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(options.path.c_str(), &raw, flags, nullptr);
  // Owned from here on, even when opening failed (SQLite still allocates).
  auto db = std::make_unique<SqliteDb>(raw);
  if (rc != SQLITE_OK) return SqliteError(raw, rc, what);
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, static_cast<int>(options.busy_timeout.count()));
  return db;
}

// Scan's parsing stage. Parsing ~2 KiB of JSON into an Instance (and checking
// it) costs far more than reading the row, so the calling thread reads rows in
// batches and a few threads parse them; the calling thread then hands batches
// to the sink in the order it read them. At most a few batches are in flight,
// so memory stays bounded however large the store.
constexpr size_t kScanBatchRows = 512;

struct ScanBatch {
  struct Row {
    std::string id;
    int64_t revision;
    std::string json;
    int64_t incarnation;
  };
  std::vector<Row> rows;
  std::vector<SharedInstance> parsed;
  Status status;      // the first row that does not parse
  bool done = false;  // guarded by ParsePool::mu_

  void Parse() {
    parsed.reserve(rows.size());
    for (Row& row : rows) {
      auto stored = ParseStored(row.id, row.revision, row.json, row.incarnation);
      if (!stored.ok()) {
        status = stored.status();
        break;
      }
      parsed.push_back(SharedInstance{
          std::make_shared<const model::Instance>(std::move(stored->instance)), stored->revision});
    }
    rows.clear();
    rows.shrink_to_fit();
  }
};

class ParsePool {
 public:
  explicit ParsePool(unsigned threads) {
    for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] {
      common::NameCurrentThread("imds-scan");
      Work();
    });
  }
  // Joins; batches still queued are left unparsed.
  ~ParsePool() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  ParsePool(const ParsePool&) = delete;
  ParsePool& operator=(const ParsePool&) = delete;

  // `batch` must outlive the pool or be waited for.
  void Submit(ScanBatch* batch) {
    {
      std::lock_guard lock(mu_);
      queue_.push_back(batch);
    }
    work_cv_.notify_one();
  }
  void Wait(ScanBatch* batch) {
    std::unique_lock lock(mu_);
    done_cv_.wait(lock, [batch] { return batch->done; });
  }

 private:
  void Work() {
    for (;;) {
      ScanBatch* batch = nullptr;
      {
        std::unique_lock lock(mu_);
        work_cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        batch = queue_.front();
        queue_.pop_front();
      }
      batch->Parse();
      {
        std::lock_guard lock(mu_);
        batch->done = true;
      }
      done_cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::deque<ScanBatch*> queue_;  // guarded by mu_
  bool stop_ = false;             // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace

// Woken by db_'s WAL hook after a commit leaves Options::checkpoint_bytes or
// more in the WAL; runs PASSIVE checkpoints (they never wait for, nor block, a
// writer or a reader) until the WAL is copied back. Should it fall far behind
// (a reader pinning old frames), the committing thread checkpoints itself
// past Options::inline_checkpoint_bytes, as SQLite would, so the WAL stays
// bounded.
class SqliteStore::Checkpointer {
 public:
  Checkpointer(std::unique_ptr<SqliteDb> db, sqlite3* writer, int64_t page_bytes,
               int64_t start_bytes, int64_t inline_bytes)
      : db_(std::move(db)),
        writer_(writer),
        start_frames_(Frames(start_bytes, page_bytes)),
        inline_frames_(Frames(inline_bytes, page_bytes)),
        thread_([this] {
          common::NameCurrentThread("imds-checkpoint");
          common::LowerCurrentThreadPriority();
          Run();
        }) {
    sqlite3_wal_hook(writer_, &Checkpointer::Hook, this);
  }
  ~Checkpointer() {
    sqlite3_wal_hook(writer_, nullptr, nullptr);
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  // On the committing thread, with its connection (writer_) in use.
  static int Hook(void* self, sqlite3* db, const char* schema, int frames) {
    auto* c = static_cast<Checkpointer*>(self);
    if (frames >= c->inline_frames_) {
      sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    } else if (frames >= c->start_frames_) {
      {
        std::lock_guard lock(c->mu_);
        c->pending_ = true;
      }
      c->cv_.notify_one();
    }
    return SQLITE_OK;
  }

  void Run() {
    // A connection opens the WAL with its first read; until then a checkpoint
    // through it does nothing at all.
    if (auto read = db_->QueryInt("PRAGMA schema_version", "open the WAL for checkpoints");
        !read.ok()) {
      common::LogRefusal(kLogComponent, "WAL checkpoints: " + read.status().message() +
                                            " (the committing thread checkpoints instead)");
    }
    for (;;) {
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stop_ || pending_; });
        if (stop_) return;
        pending_ = false;
      }
      int log = 0;
      int copied = 0;
      const int rc =
          sqlite3_wal_checkpoint_v2(db_->get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
      if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY) {
        common::LogRefusal(kLogComponent, std::string("WAL checkpoint failed: ") +
                                              sqlite3_errstr(rc) + " (retried after the next commit)");
      }
    }
  }

  static int Frames(int64_t bytes, int64_t page_bytes) {
    return static_cast<int>(std::clamp<int64_t>(bytes / std::max<int64_t>(page_bytes, 512), 1,
                                                std::numeric_limits<int>::max()));
  }

  std::unique_ptr<SqliteDb> db_;
  sqlite3* const writer_;
  const int start_frames_;
  const int inline_frames_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool pending_ = false;  // guarded by mu_
  bool stop_ = false;     // guarded by mu_
  std::thread thread_;
};

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(Options options) {
  const std::string what = "open " + options.path;
  if (options.path.empty()) return common::InvalidArgument("store path is empty");
  if (!options.read_only) {
    // Create the file ourselves so that it starts private: it holds secrets.
    // SQLite gives its -wal and -shm files the database file's mode.
    const int fd = ::open(options.path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::close(fd);
    } else if (errno != EEXIST) {
      return common::Unavailable("store unavailable: " + what + ": " + std::strerror(errno));
    }
  }
  auto connected = Connect(options, what);
  if (!connected.ok()) return connected.status();
  std::unique_ptr<SqliteDb> db = std::move(*connected);

  if (!options.read_only) {
    // 16 KiB pages for a new file (an existing one keeps its own: the size is
    // fixed once the file has content). A record is about 2-4 KiB of JSON, so
    // a 4 KiB page held one and wasted a quarter; and SQLite writes the WAL a
    // page at a time, so a bulk import made four times the system calls.
    if (Status s = db->Exec("PRAGMA page_size = 16384", what); !s.ok()) return s;
    if (Status s = EnableWal(*db, options.busy_timeout, what); !s.ok()) return s;
  }
  const char* sync = options.synchronous == Options::Synchronous::kFull
                         ? "PRAGMA synchronous = FULL"
                         : "PRAGMA synchronous = NORMAL";
  if (Status s = db->Exec(sync, what); !s.ok()) return s;
  // 32 MiB of page cache instead of SQLite's 2 MiB: a large import keeps the
  // hot index pages (instances' id index, addresses) in memory rather than
  // re-reading them through the OS on every row.
  if (Status s = db->Exec("PRAGMA cache_size = -32768", what); !s.ok()) return s;
  // Once a checkpoint has copied everything back, the next writer starts the
  // WAL over; it is then cut back to this size, so the disk does not keep the
  // largest WAL a bulk import ever made (Options::checkpoint_bytes).
  if (Status s = db->Exec("PRAGMA journal_size_limit = 67108864", what); !s.ok()) return s;
  if (Status s = Migrate(*db, options); !s.ok()) return s;
  auto store = std::unique_ptr<SqliteStore>(new SqliteStore(std::move(options), std::move(db)));
  if (auto v = store->db_->QueryInt("PRAGMA data_version", what); v.ok()) store->data_version_ = *v;
  if (!store->options_.read_only) {
    auto checkpoints = Connect(store->options_, what);
    if (!checkpoints.ok()) return checkpoints.status();
    auto page_bytes = store->db_->QueryInt("PRAGMA page_size", what);
    if (!page_bytes.ok()) return page_bytes.status();
    store->checkpointer_ = std::make_unique<Checkpointer>(
        std::move(*checkpoints), store->db_->get(), *page_bytes,
        store->options_.checkpoint_bytes, store->options_.inline_checkpoint_bytes);
  }
  if (!store->options_.read_only && store->options_.reserve_bytes > 0) {
    struct stat st {};
    const bool present = ::stat(store->ReservePath().c_str(), &st) == 0 &&
                         static_cast<uint64_t>(st.st_size) >= store->options_.reserve_bytes;
    if (!present && !store->MakeReserve()) {
      common::LogWarn(kLogComponent, "no room for the " +
                                         std::to_string(store->options_.reserve_bytes >> 10) +
                                         " KiB reserve at " + store->ReservePath() +
                                         ": on a full disk even deletes may fail");
    }
  }
  return store;
}

SqliteStore::SqliteStore(Options options, std::unique_ptr<SqliteDb> db)
    : options_(std::move(options)), db_(std::move(db)) {}

SqliteStore::~SqliteStore() {
  // Before db_ closes: the hook points at the checkpointer.
  checkpointer_.reset();
}

Result<int64_t> SqliteStore::Put(const model::Instance& instance, Precondition pre) {
  if (Status s = CheckPreconditionArgument(pre); !s.ok()) return s;
  auto in = Prepared(instance);
  if (!in.ok()) return in.status();
  const std::string id = in->id;
  std::vector<Write> writes(1);
  writes[0].mutations.push_back(
      {id, [&](const StoredInstance* current) -> Result<std::optional<model::Instance>> {
         std::optional<int64_t> revision;
         if (current != nullptr) revision = current->revision;
         if (Status s = CheckPrecondition(id, revision, pre); !s.ok()) return s;
         // A copy: a commit retried (after a full disk) calls mutate again.
         return std::optional<model::Instance>(*in);
       }});
  auto outcomes = CommitWrites(writes, {.replace_equal = true}, "put " + id);
  if (!outcomes.ok()) return outcomes.status();
  WriteOutcome& outcome = (*outcomes)[0];
  if (!outcome.status.ok()) return outcome.status;
  return outcome.mutations[0].revision;
}

Result<std::vector<int64_t>> SqliteStore::PutMany(const std::vector<model::Instance>& instances) {
  // Everything that needs no database first, so a bad batch costs no lock.
  std::vector<model::Instance> batch;
  batch.reserve(instances.size());
  std::map<std::string, size_t> ids;
  std::map<std::pair<std::string, std::string>, size_t> claimed;  // (network, address) -> index
  for (size_t i = 0; i < instances.size(); ++i) {
    auto in = Prepared(instances[i]);
    if (!in.ok()) return AtIndex(i, instances[i].id, in.status());
    if (auto [it, fresh] = ids.emplace(in->id, i); !fresh) {
      return AtIndex(i, in->id,
                     common::InvalidArgument("id repeated (also instance " +
                                             std::to_string(it->second) + ")"));
    }
    for (const std::string& address : model::CallerAddresses(*in)) {
      if (auto [it, fresh] = claimed.emplace(std::make_pair(in->network, address), i); !fresh) {
        return AtIndex(
            i, in->id,
            common::Conflict("address " + address + " in network " + in->network +
                             " is also claimed by instance " + std::to_string(it->second) + " (" +
                             batch[it->second].id + ") in this batch"));
      }
    }
    batch.push_back(std::move(*in));
  }
  std::vector<int64_t> revisions;
  if (batch.empty()) return revisions;
  revisions.reserve(batch.size());

  std::vector<Write> writes(1);
  writes[0].mutations.reserve(batch.size());
  for (model::Instance& in : batch) {
    std::string id = in.id;
    writes[0].mutations.push_back(
        {std::move(id), [&in](const StoredInstance*) -> Result<std::optional<model::Instance>> {
           return std::optional<model::Instance>(in);  // may be called again on a retry
         }});
  }
  auto outcomes =
      CommitWrites(writes, {.replace_equal = true, .prefix_single = true},
                   "put " + std::to_string(batch.size()) + " instances");
  if (!outcomes.ok()) return outcomes.status();
  WriteOutcome& outcome = (*outcomes)[0];
  if (!outcome.status.ok()) return outcome.status;
  for (const MutationOutcome& m : outcome.mutations) revisions.push_back(m.revision);
  return revisions;
}

Result<StoredInstance> SqliteStore::Get(std::string_view id) {
  const std::string what = "get " + std::string(id);
  std::lock_guard lock(mu_);
  auto stmt =
      db_->Prepare("SELECT revision, json, incarnation FROM instances WHERE id = ?1", what);
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, id);
  auto row = stmt->Step(what);
  if (!row.ok()) return row.status();
  if (!*row) return common::NotFound("no instance " + std::string(id));
  return ParseStored(id, stmt->Int64(0), stmt->Text(1), stmt->Int64(2));
}

Status SqliteStore::Delete(std::string_view id, Precondition pre) {
  if (Status s = CheckPreconditionArgument(pre); !s.ok()) return s;
  const std::string name(id);
  std::vector<Write> writes(1);
  writes[0].mutations.push_back(
      {name, [&](const StoredInstance* current) -> Result<std::optional<model::Instance>> {
         if (current == nullptr) return common::NotFound("no instance " + name);
         if (Status s = CheckPrecondition(name, current->revision, pre); !s.ok()) return s;
         return std::optional<model::Instance>();
       }});
  auto outcomes = CommitWrites(writes, {}, "delete " + name);
  if (!outcomes.ok()) return outcomes.status();
  return (*outcomes)[0].status;
}

Result<std::vector<StoredInstance>> SqliteStore::List() {
  const std::string what = "list instances";
  std::lock_guard lock(mu_);
  auto stmt = db_->Prepare(
      "SELECT id, revision, json, incarnation FROM instances ORDER BY id", what);
  if (!stmt.ok()) return stmt.status();
  std::vector<StoredInstance> out;
  for (;;) {
    auto row = stmt->Step(what);
    if (!row.ok()) return row.status();
    if (!*row) break;
    auto stored = ParseStored(stmt->Text(0), stmt->Int64(1), stmt->Text(2), stmt->Int64(3));
    if (!stored.ok()) return stored.status();
    out.push_back(std::move(*stored));
  }
  return out;
}

Result<std::string> SqliteStore::GetOrCreateSecret(std::string_view name,
                                                   std::string_view candidate) {
  if (name.empty()) return common::InvalidArgument("secret name is empty");
  // A secret that exists needs no write lock (and works on a read-only store).
  auto existing = GetSecret(name);
  if (!existing.ok()) return existing.status();
  if (*existing) return std::move(**existing);

  const std::string what = "create secret " + std::string(name);
  std::lock_guard lock(mu_);
  // INSERT OR IGNORE then SELECT in one write transaction: whichever process
  // inserts first wins, and every one reads the winner's value.
  Transaction txn(*db_);
  if (Status s = txn.Begin(what); !s.ok()) return s;
  auto insert = db_->Prepare(
      "INSERT INTO secrets (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING", what);
  if (!insert.ok()) return insert.status();
  if (Status s = insert->Bind(1, name).BindBlob(2, candidate).Run(what); !s.ok()) return s;
  auto select = db_->Prepare("SELECT value FROM secrets WHERE name = ?1", what);
  if (!select.ok()) return select.status();
  select->Bind(1, name);
  auto row = select->Step(what);
  if (!row.ok()) return row.status();
  if (!*row) return common::Internal(what + ": secret vanished inside its transaction");
  std::string value = select->Blob(0);
  if (Status s = txn.Commit(what); !s.ok()) return s;
  return value;
}

Result<std::optional<std::string>> SqliteStore::GetSecret(std::string_view name) {
  const std::string what = "get secret " + std::string(name);
  std::lock_guard lock(mu_);
  auto stmt = db_->Prepare("SELECT value FROM secrets WHERE name = ?1", what);
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, name);
  auto row = stmt->Step(what);
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<std::string>();
  return std::optional<std::string>(stmt->Blob(0));
}

Status SqliteStore::PutSecret(std::string_view name, std::string_view value) {
  if (name.empty()) return common::InvalidArgument("secret name is empty");
  const std::string what = "put secret " + std::string(name);
  std::lock_guard lock(mu_);
  auto stmt = db_->Prepare(
      "INSERT INTO secrets (name, value) VALUES (?1, ?2) "
      "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
      what);
  if (!stmt.ok()) return stmt.status();
  return stmt->Bind(1, name).BindBlob(2, value).Run(what);
}

Status SqliteStore::DeleteSecret(std::string_view name) {
  if (name.empty()) return common::InvalidArgument("secret name is empty");
  const std::string what = "delete secret " + std::string(name);
  std::lock_guard lock(mu_);
  auto stmt = db_->Prepare("DELETE FROM secrets WHERE name = ?1", what);
  if (!stmt.ok()) return stmt.status();
  return stmt->Bind(1, name).Run(what);
}

Result<int64_t> SqliteStore::LatestRevision() {
  std::lock_guard lock(mu_);
  return db_->QueryInt("SELECT value FROM meta WHERE key = 'revision'", "read latest revision");
}


Result<std::vector<WriteOutcome>> SqliteStore::Commit(std::vector<Write>& writes) {
  size_t mutations = 0;
  for (const Write& w : writes) mutations += w.mutations.size();
  return CommitWrites(writes, {},
                      "commit " + std::to_string(writes.size()) + " writes (" +
                          std::to_string(mutations) + " mutations)");
}

Result<std::vector<WriteOutcome>> SqliteStore::CommitWrites(std::vector<Write>& writes,
                                                            CommitMode mode,
                                                            std::string_view what) {
  bool deletes_only;
  {
    std::lock_guard lock(mu_);
    // Room again for the reserve: every write is taken again.
    if (deletes_only_ && MakeReserve()) {
      deletes_only_ = false;
      common::LogInfo(kLogComponent, "store disk has room again: the reserve is back and "
                                     "every write is accepted");
    }
    deletes_only = deletes_only_;
  }
  auto result = CommitOnce(writes, mode, deletes_only, what);
  // Whatever happens below, a chain whose Write did not commit is broken.
  auto break_chains = [&writes](const Result<std::vector<WriteOutcome>>& r) {
    if (r.ok()) return;
    for (Write& w : writes) {
      if (w.chain) w.chain->broken = true;
    }
  };
  if (!result.ok() && result.status().code() == Code::kInsufficientStorage) {
    storage_full_ = true;
    bool released = false;
    {
      std::lock_guard lock(mu_);
      if (!deletes_only_ && ::unlink(ReservePath().c_str()) == 0) {
        deletes_only_ = true;
        released = true;
      }
    }
    if (released) {
      common::LogWarn(kLogComponent,
                      "store disk is full: released the " +
                          std::to_string(options_.reserve_bytes >> 10) + " KiB reserve at " +
                          ReservePath() + "; only deletes are accepted until there is room again");
      result = CommitOnce(writes, mode, /*deletes_only=*/true, what);
    }
  } else if (result.ok()) {
    bool wrote = false;
    for (const auto& o : *result) wrote = wrote || (o.status.ok() && !o.mutations.empty());
    if (wrote) {
      std::lock_guard lock(mu_);
      if (!deletes_only_) storage_full_ = false;
    }
  }
  break_chains(result);
  return result;
}

bool SqliteStore::MakeReserve() {
  if (options_.reserve_bytes == 0 || options_.read_only) return false;
  struct statvfs fs {};
  const std::string dir = std::filesystem::path(options_.path).parent_path().string();
  if (::statvfs(dir.empty() ? "." : dir.c_str(), &fs) != 0) return false;
  const uint64_t free_bytes = uint64_t{fs.f_bavail} * fs.f_frsize;
  if (free_bytes < 2 * options_.reserve_bytes) return false;
  const std::string path = ReservePath();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(options_.reserve_bytes));
  ::close(fd);
  if (rc != 0) {
    ::unlink(path.c_str());
    return false;
  }
  return true;
}

void SqliteStore::ReleaseCaches() {
  std::lock_guard lock(mu_);
  sqlite3_db_release_memory(db_->get());
}

std::string SqliteStore::DegradedReason() const {
  if (!storage_full_) return {};
  return "storage full: writes that add or change records fail with 507; deletes are accepted";
}

Result<std::vector<WriteOutcome>> SqliteStore::CommitOnce(std::vector<Write>& writes,
                                                          CommitMode mode, bool deletes_only,
                                                          std::string_view what) {
  std::vector<WriteOutcome> outcomes(writes.size());
  if (writes.empty()) return outcomes;
  ApplyOptions apply{.replace_equal = mode.replace_equal,
                     .deletes_only = deletes_only,
                     .prefix_single = mode.prefix_single,
                     .max_instances = options_.max_instances,
                     .threads = options_.write_threads};
  int64_t before = 0;
  int64_t latest = 0;
  std::function<void(int64_t)> listener;
  {
    std::lock_guard lock(mu_);
    Transaction txn(*db_);
    if (Status s = txn.Begin(what); !s.ok()) return s;
    // Read once under the write lock: no other connection can move them
    // until COMMIT.
    Counters counters;
    auto revision = ReadMeta(*db_, "revision", what);
    if (!revision.ok()) return revision.status();
    auto instances = ReadMeta(*db_, "instance_count", what);
    if (!instances.ok()) return instances.status();
    counters = {*revision, *instances};
    before = counters.revision;
    // Whether another connection has committed since this one last looked:
    // then a record that rows of this process's writes were rewritten, and
    // neither the callers' hints nor recent_ may stand for a row.
    auto data_version = db_->QueryInt("PRAGMA data_version", what);
    if (!data_version.ok()) return data_version.status();
    if (*data_version != data_version_) {
      recent_.clear();
      data_version_ = *data_version;
    } else {
      apply.trust_hints = true;
    }

    std::vector<Committed> committed;
    for (size_t w = 0; w < writes.size(); ++w) {
      WriteChain* chain = writes[w].chain.get();
      if (chain != nullptr && chain->broken.load()) {
        outcomes[w].status = common::FailedPrecondition(std::string(kChainBrokenMessage));
        continue;
      }
      if (writes[w].mutations.empty()) continue;
      if (Status s = Run(*db_, "SAVEPOINT write", what); !s.ok()) return s;
      const Counters saved = counters;
      const size_t committed_before = committed.size();
      if (Status s = ApplyWrite(*db_, writes[w], apply, counters, outcomes[w], committed, what);
          !s.ok()) {
        return s;
      }
      if (!outcomes[w].status.ok()) {
        if (Status s = Run(*db_, "ROLLBACK TO write", what); !s.ok()) return s;
        counters = saved;
        outcomes[w].mutations.clear();
        committed.resize(committed_before);
        // Later Writes of its chain, in this transaction or a later one,
        // must not apply. (A second attempt after a full disk runs the same
        // mutations on the same state and refuses this one again.)
        if (chain != nullptr) chain->broken = true;
      }
      if (Status s = Run(*db_, "RELEASE write", what); !s.ok()) return s;
    }

    if (counters.revision != before) {
      if (Status s = WriteMeta(*db_, "revision", counters.revision, what); !s.ok()) return s;
      if (Status s = WriteMeta(*db_, "instance_count", counters.instances, what); !s.ok()) {
        return s;
      }
      if (Status s = CompactFeed(*db_, before, counters.revision, options_.feed_retention,
                                 options_.feed_compact_every, what);
          !s.ok()) {
        return s;
      }
    }
    if (Status s = txn.Commit(what); !s.ok()) return s;
    if (counters.stale_addresses > 0) {
      common::LogRefusal(kLogComponent,
                         "took over " + std::to_string(counters.stale_addresses) +
                             " address row(s) whose holder's record does not claim them (the "
                             "instances table was changed behind the store)");
    }
    latest = counters.revision;
    if (latest != before) listener = listener_;
    if (recent_.size() + committed.size() > kRecentMax) recent_.clear();
    for (Committed& c : committed) {
      recent_.insert_or_assign(std::move(c.id),
                               Recent{c.revision, std::move(c.instance)});
    }
  }
  // Outside the mutex: the listener may wake a reader that calls the store.
  if (listener) listener(latest);
  return outcomes;
}

Result<ChangePage> SqliteStore::ChangesSince(int64_t since, size_t max_changes) {
  max_changes = std::max<size_t>(max_changes, 1);
  const std::string what = "read changes since revision " + std::to_string(since);
  ChangePage page;
  page.through = since;
  auto resync = [&](std::string reason) {
    page.resync_required = true;
    page.resync_reason = std::move(reason);
    page.changes.clear();
    page.through = since;
    return page;
  };

  std::lock_guard lock(mu_);
  Transaction txn(*db_, /*read=*/true);
  if (Status s = txn.Begin(what); !s.ok()) return s;
  auto latest = ReadMeta(*db_, "revision", what);
  if (!latest.ok()) return latest.status();
  auto floor = ReadMeta(*db_, "feed_floor", what);
  if (!floor.ok()) return floor.status();
  page.latest = *latest;
  if (since < *floor) {
    auto origin = ReadMeta(*db_, "feed_origin", what);
    if (!origin.ok()) return origin.status();
    if (since < *origin) {
      return resync("the store predates the change feed: it records changes after revision " +
                    std::to_string(*origin) + " only, not since " + std::to_string(since));
    }
    return resync("the change feed was compacted: it keeps changes after revision " +
                  std::to_string(*floor) + ", not since " + std::to_string(since));
  }
  if (since > *latest) {
    std::string reason = "reader is ahead of the store (revision " + std::to_string(since) +
                         ", store at " + std::to_string(*latest) +
                         "): the store was replaced or restored";
    common::LogWarn(kLogComponent, reason);
    return resync(std::move(reason));
  }
  if (since == *latest) return page;
  // Another connection committed since this one last looked: whatever it
  // wrote, the records kept from this process's own writes may be stale.
  auto data_version = db_->QueryInt("PRAGMA data_version", what);
  if (!data_version.ok()) return data_version.status();
  if (*data_version != data_version_) {
    recent_.clear();
    data_version_ = *data_version;
  }

  // Rows in revision order; an id changed several times in the page is folded
  // into one entry carrying its last revision. The rows must be exactly
  // since+1, since+2, ...: a hole means a change we cannot report.
  std::unordered_map<std::string, size_t> index;  // id -> position in page.changes
  int64_t expected = since + 1;
  size_t count = 0;
  bool hole = false;
  {
    auto rows = db_->Prepare(
        "SELECT revision, id FROM changes WHERE revision > ?1 ORDER BY revision LIMIT ?2", what);
    if (!rows.ok()) return rows.status();
    rows->Bind(1, since).Bind(2, static_cast<int64_t>(max_changes));
    for (;;) {
      auto row = rows->Step(what);
      if (!row.ok()) return row.status();
      if (!*row) break;
      ++count;
      if (rows->Int64(0) != expected) {
        hole = true;
        break;
      }
      std::string id = rows->Text(1);
      if (auto it = index.find(id); it != index.end()) {
        page.changes[it->second].revision = expected;
      } else {
        index.emplace(id, page.changes.size());
        Change change;
        change.revision = expected;
        change.id = std::move(id);
        page.changes.push_back(std::move(change));
      }
      ++expected;
    }
  }
  // Fewer rows than asked for must reach `latest`.
  if (hole || (count < max_changes && expected - 1 < *latest)) {
    std::string reason = "gap in the change feed after revision " + std::to_string(expected - 1) +
                         " (store at " + std::to_string(*latest) + ")";
    common::LogWarn(kLogComponent, reason);
    return resync(std::move(reason));
  }
  page.through = expected - 1;

  for (Change& change : page.changes) {
    // A write of this process whose record is at hand at the very revision
    // this page reports needs no read at all: no other connection has
    // committed since (data_version), so nothing else can have rewritten the
    // row, and the record as of `through` is exactly that one. (A later write
    // of the same id, past this page, replaced the entry and shows up in the
    // next page.) This keeps the follower from holding the store's lock for a
    // random read per change while the writer waits.
    if (auto mine = recent_.find(change.id);
        mine != recent_.end() && mine->second.revision == change.revision) {
      change.instance = std::move(mine->second.instance);
      change.instance_revision = change.revision;
      recent_.erase(mine);
      continue;
    }
    // The row's head next: for a write of this process the record may still
    // be at hand, and its json is then not read at all.
    int64_t revision = 0;
    int64_t incarnation = 0;
    {
      auto head = db_->Prepare("SELECT revision, incarnation FROM instances WHERE id = ?1", what);
      if (!head.ok()) return head.status();
      head->Bind(1, change.id);
      auto row = head->Step(what);
      if (!row.ok()) return row.status();
      if (!*row) {
        recent_.erase(change.id);
        continue;  // deleted
      }
      revision = head->Int64(0);
      incarnation = head->Int64(1);
    }
    if (auto mine = recent_.find(change.id); mine != recent_.end()) {
      const bool current = mine->second.revision == revision;
      if (current) {
        change.instance = std::move(mine->second.instance);
        change.instance_revision = revision;
      }
      recent_.erase(mine);
      if (current) continue;
    }
    std::string json;
    {
      auto body = db_->Prepare("SELECT json FROM instances WHERE id = ?1", what);
      if (!body.ok()) return body.status();
      body->Bind(1, change.id);
      auto row = body->Step(what);
      if (!row.ok()) return row.status();
      if (!*row) continue;  // cannot happen inside this read transaction
      json = body->Text(0);
    }
    auto stored = ParseStored(change.id, revision, json, incarnation);
    if (!stored.ok()) return resync(stored.status().message());
    change.instance = std::make_shared<const model::Instance>(std::move(stored->instance));
    change.instance_revision = stored->revision;
  }
  std::sort(page.changes.begin(), page.changes.end(),
            [](const Change& a, const Change& b) { return a.revision < b.revision; });
  return page;
}

Result<int64_t> SqliteStore::Scan(const std::function<Status(SharedInstance&&)>& sink) {
  const std::string what = "scan instances";
  // A private connection: a long scan holds no lock a writer waits for, and
  // the sink may call this store.
  auto connected = Connect(options_, what);
  if (!connected.ok()) return connected.status();
  SqliteDb& db = **connected;
  Transaction txn(db, /*read=*/true);
  if (Status s = txn.Begin(what); !s.ok()) return s;
  auto latest = ReadMeta(db, "revision", what);
  if (!latest.ok()) return latest.status();
  auto rows =
      // In the table's own order: rows come off the file sequentially, not
      // through the id index (about twice as fast on a large store).
      db.Prepare("SELECT id, revision, json, incarnation FROM instances", what);
  if (!rows.ok()) return rows.status();

  // Declared before the pool, so the pool (and its threads) is gone first.
  std::deque<std::unique_ptr<ScanBatch>> in_flight;
  const unsigned threads = options_.scan_threads;
  std::optional<ParsePool> pool;
  if (threads > 1) pool.emplace(threads);
  const size_t max_in_flight = pool ? 2 * size_t{threads} : 1;

  // Hands the oldest batch to the sink.
  auto emit = [&]() -> Status {
    ScanBatch* batch = in_flight.front().get();
    if (pool) {
      pool->Wait(batch);
    } else {
      batch->Parse();
    }
    if (!batch->status.ok()) return batch->status;
    for (SharedInstance& stored : batch->parsed) {
      if (Status s = sink(std::move(stored)); !s.ok()) return s;
    }
    in_flight.pop_front();
    return Status::Ok();
  };
  auto submit = [&](std::unique_ptr<ScanBatch> batch) -> Status {
    ScanBatch* raw = batch.get();
    in_flight.push_back(std::move(batch));
    if (pool) pool->Submit(raw);
    while (in_flight.size() >= max_in_flight) {
      if (Status s = emit(); !s.ok()) return s;
    }
    return Status::Ok();
  };

  auto batch = std::make_unique<ScanBatch>();
  batch->rows.reserve(kScanBatchRows);
  for (;;) {
    auto row = rows->Step(what);
    if (!row.ok()) return row.status();
    if (!*row) break;
    batch->rows.push_back({rows->Text(0), rows->Int64(1), rows->Text(2), rows->Int64(3)});
    if (batch->rows.size() == kScanBatchRows) {
      if (Status s = submit(std::move(batch)); !s.ok()) return s;
      batch = std::make_unique<ScanBatch>();
      batch->rows.reserve(kScanBatchRows);
    }
  }
  if (!batch->rows.empty()) {
    ScanBatch* raw = batch.get();
    in_flight.push_back(std::move(batch));
    if (pool) pool->Submit(raw);
  }
  while (!in_flight.empty()) {
    if (Status s = emit(); !s.ok()) return s;
  }
  return *latest;
}

void SqliteStore::SetCommitListener(std::function<void(int64_t latest)> listener) {
  std::lock_guard lock(mu_);
  listener_ = std::move(listener);
}

}  // namespace openimds::store
