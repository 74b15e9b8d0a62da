#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "model/instance.h"

namespace openimds::store {

// An instance as stored, with the revision of its last write. Revisions come
// from one store-wide sequence, so they only grow (an ETag never repeats,
// even across delete and re-create).
struct StoredInstance {
  model::Instance instance;
  int64_t revision = 0;
};

// What a write must find, for optimistic concurrency.
struct Precondition {
  // nullopt: no check. 0: the instance must not exist (create only).
  // N > 0: the stored revision must be N.
  std::optional<int64_t> expected_revision;
};

// Persistent, durable storage of instances and server secrets.
// Implementations are safe for concurrent use from several threads.
// A write that returns OK is durable (survives a crash or power loss, as far
// as the file system keeps its fsync promises).
class Store {
 public:
  virtual ~Store() = default;

  // Creates or replaces `instance` (by id). Returns the new revision.
  // Conflict: another instance already holds one of its addresses in the same
  //   network; the message names that instance id and the address.
  // FailedPrecondition: `pre` did not hold; the message says the current revision.
  // InsufficientStorage: disk full. Unavailable: store read-only or away.
  virtual common::Result<int64_t> Put(const model::Instance& instance, Precondition pre) = 0;

  // All-or-nothing bulk write (import). Returns the revision of each, in order.
  // Errors as Put; the message names the index in `instances` of the offender.
  virtual common::Result<std::vector<int64_t>> PutMany(
      const std::vector<model::Instance>& instances) = 0;

  // NotFound if absent.
  virtual common::Result<StoredInstance> Get(std::string_view id) = 0;

  // NotFound if absent; FailedPrecondition as Put.
  virtual common::Status Delete(std::string_view id, Precondition pre) = 0;

  // Every instance, ordered by id.
  virtual common::Result<std::vector<StoredInstance>> List() = 0;

  // Server secrets (token keys, signing keys). GetOrCreateSecret returns the
  // stored value of `name`, storing `candidate` first if there is none; two
  // processes racing on one store agree on the winner.
  virtual common::Result<std::string> GetOrCreateSecret(std::string_view name,
                                                        std::string_view candidate) = 0;
  virtual common::Result<std::optional<std::string>> GetSecret(std::string_view name) = 0;
  virtual common::Status PutSecret(std::string_view name, std::string_view value) = 0;
  // Removes `name`; OK when it was absent too.
  virtual common::Status DeleteSecret(std::string_view name) = 0;

  // The highest revision written so far (0 for an empty store): lets a reader
  // tell whether another process changed anything.
  virtual common::Result<int64_t> LatestRevision() = 0;
};

// The secret that holds the password a guest posted for instance `id`
// (OpenStack's /openstack/latest/password). One place names it, so the
// flavour's reader, the admin API and instance deletion agree.
inline std::string InstancePasswordSecret(std::string_view id) {
  return "openstack_password/" + std::string(id);
}

}  // namespace openimds::store
