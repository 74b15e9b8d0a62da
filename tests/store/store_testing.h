#pragma once

// Helpers shared by the store's tests: temporary directories, instances, raw
// SQLite access to a store file (to age, break or inspect it behind the
// store's back).

#include <sys/mount.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "model/instance.h"
#include "store/sqlite_store.h"

namespace openimds::store {

// A fresh directory per test, removed (with anything mounted on it) at the end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "openimds-store-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string File(std::string_view name) const { return path_ + "/" + std::string(name); }

  // Mounts a tmpfs of `size_bytes` on the directory. False (errno kept) if not
  // permitted, e.g. without CAP_SYS_ADMIN.
  bool MountTmpfs(size_t size_bytes) {
    const std::string opts = "size=" + std::to_string(size_bytes) + ",mode=0700";
    if (::mount("tmpfs", path_.c_str(), "tmpfs", 0, opts.c_str()) != 0) return false;
    mounted_ = true;
    return true;
  }
  bool RemountReadOnly() {
    return ::mount("tmpfs", path_.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) == 0;
  }

 private:
  std::string path_;
  bool mounted_ = false;
};

// One NIC holding `addresses` (IPv4 into private_ipv4s, IPv6 into ipv6s).
inline model::Instance MakeInstance(std::string id, std::vector<std::string> addresses = {},
                             std::string network = "default") {
  model::Instance in;
  in.id = std::move(id);
  in.network = std::move(network);
  in.name = "name of " + in.id;
  if (!addresses.empty()) {
    model::Nic nic;
    nic.mac = "02:00:00:00:00:01";
    for (auto& a : addresses) {
      (a.find(':') == std::string::npos ? nic.private_ipv4s : nic.ipv6s).push_back(a);
    }
    in.nics.push_back(nic);
  }
  return in;
}

inline std::unique_ptr<SqliteStore> OpenStore(const std::string& path, bool read_only = false) {
  SqliteStore::Options options;
  options.path = path;
  options.read_only = read_only;
  auto store = SqliteStore::Open(options);
  if (!store.ok()) {
    ADD_FAILURE() << "Open(" << path << "): " << store.status().ToString();
    return nullptr;
  }
  return std::move(*store);
}

inline std::vector<std::string> Ids(const std::vector<StoredInstance>& list) {
  std::vector<std::string> ids;
  for (const auto& s : list) ids.push_back(s.instance.id);
  return ids;
}

// Runs one SQL statement on the file through a separate raw connection.
inline void RawExec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (error ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
}

inline std::string RawQueryText(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string out;
  if (sqlite3_open(path.c_str(), &db) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return out;
}

// Mutations for Commit: put a fixed record, delete, or refuse with `status`.
inline Mutation PutOf(model::Instance in) {
  std::string id = in.id;
  return Mutation{std::move(id),
                  [in = std::move(in)](const StoredInstance*)
                      -> common::Result<std::optional<model::Instance>> {
                    return std::optional<model::Instance>(in);
                  }};
}
inline Mutation DeleteOf(std::string id) {
  return Mutation{std::move(id),
                  [](const StoredInstance*) -> common::Result<std::optional<model::Instance>> {
                    return std::optional<model::Instance>();
                  }};
}
inline Mutation RefuseOf(std::string id, common::Status status) {
  return Mutation{std::move(id),
                  [status](const StoredInstance*)
                      -> common::Result<std::optional<model::Instance>> { return status; }};
}
inline Write WriteOf(std::vector<Mutation> mutations) { return Write{std::move(mutations)}; }

// A store on a fresh file per test.
class StoreFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenStore(path_);
    ASSERT_NE(store_, nullptr);
  }

  TempDir dir_;
  std::string path_ = dir_.File("store.db");
  std::unique_ptr<SqliteStore> store_;
};

}  // namespace openimds::store
