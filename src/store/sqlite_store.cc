#include "store/sqlite_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>
#include <utility>

#include <sqlite3.h>

#include "common/log.h"
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

// A prepared statement, finalized on destruction. Borrows its connection.
class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(Statement&& other) noexcept
      : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)) {}
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

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

// Owns one sqlite3 connection. Not thread-safe: SqliteStore's mutex guards it.
class SqliteDb {
 public:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  ~SqliteDb() { sqlite3_close_v2(db_); }
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  sqlite3* get() { return db_; }

  Result<Statement> Prepare(std::string_view sql, std::string_view what) {
    sqlite3_stmt* stmt = nullptr;
    const int rc =
        sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return SqliteError(db_, rc, what);
    }
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
  sqlite3* db_;
};

namespace {

// A write transaction. BEGIN IMMEDIATE takes the write lock up front, so the
// busy handler (busy_timeout) applies and two writers never deadlock upgrading
// read locks. Rolled back on destruction unless committed.
class Transaction {
 public:
  explicit Transaction(SqliteDb& db) : db_(db) {}
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
    Status s = db_.Exec("BEGIN IMMEDIATE", what);
    begun_ = s.ok();
    return s;
  }
  Status Commit(std::string_view what) { return db_.Exec("COMMIT", what); }

 private:
  SqliteDb& db_;
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

// The stored revision of `id`, nullopt if absent.
Result<std::optional<int64_t>> ReadRevision(SqliteDb& db, std::string_view id,
                                            std::string_view what) {
  auto stmt = db.Prepare("SELECT revision FROM instances WHERE id = ?1", what);
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, id);
  auto row = stmt->Step(what);
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<int64_t>();
  return std::optional<int64_t>(stmt->Int64(0));
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

Status ReleaseAddresses(SqliteDb& db, std::string_view id, std::string_view what) {
  auto stmt = db.Prepare("DELETE FROM addresses WHERE instance_id = ?1", what);
  if (!stmt.ok()) return stmt.status();
  return stmt->Bind(1, id).Run(what);
}

// Claims every address of `in` for it. The primary key (network, address) is
// the guarantee; on a clash we look up the holder to name it.
Status ClaimAddresses(SqliteDb& db, const model::Instance& in, std::string_view what) {
  for (const std::string& address : model::CallerAddresses(in)) {
    auto insert = db.Prepare(
        "INSERT INTO addresses (network, address, instance_id) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (network, address) DO NOTHING",
        what);
    if (!insert.ok()) return insert.status();
    if (Status s = insert->Bind(1, in.network).Bind(2, address).Bind(3, in.id).Run(what); !s.ok()) {
      return s;
    }
    if (sqlite3_changes(db.get()) == 1) continue;
    auto holder =
        db.Prepare("SELECT instance_id FROM addresses WHERE network = ?1 AND address = ?2", what);
    if (!holder.ok()) return holder.status();
    holder->Bind(1, in.network).Bind(2, address);
    auto row = holder->Step(what);
    if (!row.ok()) return row.status();
    const std::string holder_id = *row ? holder->Text(0) : std::string("(unknown)");
    return common::Conflict("address " + address + " in network " + in.network +
                            " is held by instance " + holder_id);
  }
  return Status::Ok();
}

// The next value of the store-wide sequence. Part of the caller's transaction:
// a rolled-back write hands out no revision anyone saw, so none is reused.
Result<int64_t> NextRevision(SqliteDb& db, std::string_view what) {
  return db.QueryInt("UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value",
                     what);
}

Status UpsertInstance(SqliteDb& db, const model::Instance& in, int64_t revision,
                      std::string_view what) {
  auto stmt = db.Prepare(
      "INSERT INTO instances (id, revision, json) VALUES (?1, ?2, ?3) "
      "ON CONFLICT (id) DO UPDATE SET revision = excluded.revision, json = excluded.json",
      what);
  if (!stmt.ok()) return stmt.status();
  return stmt->Bind(1, in.id).Bind(2, revision).Bind(3, model::ToJsonText(in)).Run(what);
}

// Release (already done by the caller), claim, revision, row.
Result<int64_t> WriteInstance(SqliteDb& db, const model::Instance& in, std::string_view what) {
  if (Status s = ClaimAddresses(db, in, what); !s.ok()) return s;
  auto revision = NextRevision(db, what);
  if (!revision.ok()) return revision.status();
  if (Status s = UpsertInstance(db, in, *revision, what); !s.ok()) return s;
  return *revision;
}

Result<StoredInstance> ParseStored(std::string_view id, int64_t revision, const std::string& json) {
  auto in = model::FromJsonText(json);
  if (!in.ok()) {
    Status s = common::Internal("stored instance " + std::string(id) +
                                " does not parse: " + in.status().message());
    common::LogError(kLogComponent, s.message());
    return s;
  }
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

}  // namespace

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
  sqlite3* raw = nullptr;
  const int flags =
      (options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(options.path.c_str(), &raw, flags, nullptr);
  // Owned from here on, even when opening failed (SQLite still allocates).
  auto db = std::make_unique<SqliteDb>(raw);
  if (rc != SQLITE_OK) return SqliteError(raw, rc, what);
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, static_cast<int>(options.busy_timeout.count()));

  if (!options.read_only) {
    if (Status s = EnableWal(*db, options.busy_timeout, what); !s.ok()) return s;
  }
  const char* sync = options.synchronous == Options::Synchronous::kFull
                         ? "PRAGMA synchronous = FULL"
                         : "PRAGMA synchronous = NORMAL";
  if (Status s = db->Exec(sync, what); !s.ok()) return s;
  if (Status s = Migrate(*db, options); !s.ok()) return s;
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(options), std::move(db)));
}

SqliteStore::SqliteStore(Options options, std::unique_ptr<SqliteDb> db)
    : options_(std::move(options)), db_(std::move(db)) {}

SqliteStore::~SqliteStore() = default;

Result<int64_t> SqliteStore::Put(const model::Instance& instance, Precondition pre) {
  if (Status s = CheckPreconditionArgument(pre); !s.ok()) return s;
  auto in = Prepared(instance);
  if (!in.ok()) return in.status();
  const std::string what = "put " + in->id;

  std::lock_guard lock(mu_);
  Transaction txn(*db_);
  if (Status s = txn.Begin(what); !s.ok()) return s;
  auto current = ReadRevision(*db_, in->id, what);
  if (!current.ok()) return current.status();
  if (Status s = CheckPrecondition(in->id, *current, pre); !s.ok()) return s;
  if (*current) {
    if (Status s = ReleaseAddresses(*db_, in->id, what); !s.ok()) return s;
  }
  auto revision = WriteInstance(*db_, *in, what);
  if (!revision.ok()) return revision.status();
  if (Status s = txn.Commit(what); !s.ok()) return s;
  return *revision;
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
  const std::string what = "put " + std::to_string(batch.size()) + " instances";

  std::lock_guard lock(mu_);
  Transaction txn(*db_);
  if (Status s = txn.Begin(what); !s.ok()) return s;
  // Release every address the batch's instances hold first: the batch is
  // judged by the state it leaves, so one member may take over an address
  // another member gives up, whatever their order.
  for (const model::Instance& in : batch) {
    if (Status s = ReleaseAddresses(*db_, in.id, what); !s.ok()) return s;
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    auto revision = WriteInstance(*db_, batch[i], what);
    if (!revision.ok()) return AtIndex(i, batch[i].id, revision.status());
    revisions.push_back(*revision);
  }
  if (Status s = txn.Commit(what); !s.ok()) return s;
  return revisions;
}

Result<StoredInstance> SqliteStore::Get(std::string_view id) {
  const std::string what = "get " + std::string(id);
  std::lock_guard lock(mu_);
  auto stmt = db_->Prepare("SELECT revision, json FROM instances WHERE id = ?1", what);
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, id);
  auto row = stmt->Step(what);
  if (!row.ok()) return row.status();
  if (!*row) return common::NotFound("no instance " + std::string(id));
  return ParseStored(id, stmt->Int64(0), stmt->Text(1));
}

Status SqliteStore::Delete(std::string_view id, Precondition pre) {
  if (Status s = CheckPreconditionArgument(pre); !s.ok()) return s;
  const std::string what = "delete " + std::string(id);
  std::lock_guard lock(mu_);
  Transaction txn(*db_);
  if (Status s = txn.Begin(what); !s.ok()) return s;
  auto current = ReadRevision(*db_, id, what);
  if (!current.ok()) return current.status();
  if (!*current) return common::NotFound("no instance " + std::string(id));
  if (Status s = CheckPrecondition(id, *current, pre); !s.ok()) return s;
  if (Status s = ReleaseAddresses(*db_, id, what); !s.ok()) return s;
  auto stmt = db_->Prepare("DELETE FROM instances WHERE id = ?1", what);
  if (!stmt.ok()) return stmt.status();
  if (Status s = stmt->Bind(1, id).Run(what); !s.ok()) return s;
  // A delete takes a revision too, so LatestRevision tells a reader it happened.
  if (auto revision = NextRevision(*db_, what); !revision.ok()) return revision.status();
  return txn.Commit(what);
}

Result<std::vector<StoredInstance>> SqliteStore::List() {
  const std::string what = "list instances";
  std::lock_guard lock(mu_);
  auto stmt = db_->Prepare("SELECT id, revision, json FROM instances ORDER BY id", what);
  if (!stmt.ok()) return stmt.status();
  std::vector<StoredInstance> out;
  for (;;) {
    auto row = stmt->Step(what);
    if (!row.ok()) return row.status();
    if (!*row) break;
    auto stored = ParseStored(stmt->Text(0), stmt->Int64(1), stmt->Text(2));
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

}  // namespace openimds::store
