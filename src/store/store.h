#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "model/instance.h"

namespace openimds::store {

// An instance as stored, with the revision of its last write. Revisions come
// from one store-wide sequence, so they only grow (an ETag never repeats,
// even across delete and re-create). Every record a store returns (Get, List,
// Scan, ChangesSince) carries its incarnation in instance.managed: assigned by
// the write that created the record (the id did not exist), kept by every
// later update, new after a delete and a re-create, and the same for every
// reader of the store. Stores ignore the incarnation of a record given to
// them to write.
struct StoredInstance {
  model::Instance instance;
  int64_t revision = 0;
};

// A stored instance as a shared, immutable record (Store::Scan), so whoever
// loads a whole store can keep the very record the store parsed.
struct SharedInstance {
  std::shared_ptr<const model::Instance> instance;
  int64_t revision = 0;
};

// What a write must find, for optimistic concurrency.
struct Precondition {
  // nullopt: no check. 0: the instance must not exist (create only).
  // N > 0: the stored revision must be N.
  std::optional<int64_t> expected_revision;
};

// Computes an instance's next state from its current one, inside the write
// transaction (so nothing can change it in between). `current` is nullptr when
// the instance is absent. Returns the new record (the store Normalize()s and
// Validate()s it), nullopt to delete it, or an error that refuses this write
// (FailedPrecondition for a lost If-Match, NotFound, ...). Returning a record
// equal to `current->instance` after normalization writes nothing and takes no
// revision (a no-op PATCH leaves no phantom change in the feed). Called exactly
// once per attempt, on the store's writing thread; must not call the store.
// A commit may be attempted twice (the second time after a full disk released
// the store's reserve), so mutate must give the same answer when called again.
using MutateFn = std::function<common::Result<std::optional<model::Instance>>(
    const StoredInstance* current)>;

// One instance's part of a Write.
struct Mutation {
  std::string id;
  MutateFn mutate;
  // Instead of mutate: write exactly this record (non-null), whatever is
  // stored. The store normalizes and validates it in place, sets its
  // `managed` part, and hands that very object to the change feed, so a bulk
  // import does not copy every record once more. Give it a record nothing
  // else reads or writes until the Write's outcome is known.
  std::shared_ptr<model::Instance> put = nullptr;
  // Optional: the record the caller believes is stored (the catalog's) and
  // its revision. When the stored row has that revision and no other
  // connection has committed since this store last looked, the store takes
  // it as the current record instead of parsing the row. Never changes an
  // outcome, only what it costs.
  std::shared_ptr<const model::Instance> current_hint = nullptr;
  int64_t current_hint_revision = 0;
};

// Writes that take effect in order, each only if every earlier one of the
// chain did: the parts of one import stream, which may be committed together
// (one transaction, one fsync) yet must not apply after a refused one. A
// chain is broken by the first of its Writes that is refused or fails to
// commit; the store then refuses every later Write of the chain with
// FailedPrecondition kChainBrokenMessage, without running its mutations.
// Writes of one chain must be given to the store in chain order (one
// WriteQueue keeps the order it was given).
struct WriteChain {
  // Set by the store, on its committing thread; anyone may read it.
  std::atomic<bool> broken{false};
};
inline constexpr std::string_view kChainBrokenMessage =
    "not applied: an earlier write of its chain was refused";

// One all-or-nothing unit of work: its mutations commit together or not at all.
// Mutations of one Write must name distinct ids.
struct Write {
  std::vector<Mutation> mutations;
  // Null: independent of every other Write.
  std::shared_ptr<WriteChain> chain = nullptr;
};

// What one mutation did, when its Write committed.
struct MutationOutcome {
  // The revision written; for an unchanged record, its existing revision; 0
  // when mutate deleted an absent instance (nothing happened).
  int64_t revision = 0;
  bool existed = false;  // the instance was present before the write
  bool changed = false;  // something was written (a put or a delete)
  // The incarnation of the record the write left (model::ServerManaged):
  // new when the write created it, the existing one otherwise; 0 when the
  // instance is absent after the write.
  int64_t incarnation = 0;
};

// The result of one Write.
struct WriteOutcome {
  // OK, or why the whole Write was refused (the mutation's own error, with
  // "instance N (id): " prepended when the Write has several mutations;
  // Conflict for an address another instance holds; InsufficientStorage for a
  // full disk or --max-instances; Unavailable when the store is away).
  common::Status status;
  std::vector<MutationOutcome> mutations;  // one per Mutation when status is OK
};

// One entry of the change feed: instance `id` changed at `revision`, and
// `instance` is its newest state as of the read (nullopt: absent, i.e.
// deleted). A change that a later one superseded is folded into the later
// state, so applying a page leaves every id it names in a state at least as
// new as `through`.
struct Change {
  int64_t revision = 0;  // the revision of the newest change to `id` in the page
  std::string id;
  // Null: deleted. Shared and immutable: a store may hand out the record it
  // just wrote instead of parsing it again.
  std::shared_ptr<const model::Instance> instance;
  int64_t instance_revision = 0;  // the stored revision of `instance` (0 if deleted)
};

// A page of the change feed (Store::ChangesSince).
struct ChangePage {
  // When true, the feed cannot say what changed after `since` (the log was
  // compacted past it, the store predates the feed, or the log has a gap or a
  // corrupt entry: `resync_reason` says which). The reader must rebuild its
  // view from Scan() and follow on from the revision Scan returns.
  bool resync_required = false;
  std::string resync_reason;
  // One entry per id changed in (since, through], ordered by Change::revision.
  std::vector<Change> changes;
  // Every revision in (since, through] is accounted for. == since when nothing
  // changed.
  int64_t through = 0;
  // The store's latest revision at the time of the read (>= through); more
  // pages follow while through < latest.
  int64_t latest = 0;
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

  // Why the store serves reads but not every write right now ("storage full:
  // only deletes are accepted"), for /readyz; empty when it takes writes.
  virtual std::string DegradedReason() const { return {}; }

  // Drops what the store keeps in memory only to be faster (page caches), for
  // a caller that knows a burst of writes is over. Never loses data; the next
  // write may be slower. Thread-safe.
  virtual void ReleaseCaches() {}

  // --- Batched writes and the change feed ---

  // Commits `writes` in one transaction (one fsync for all of them: group
  // commit); each Write is all-or-nothing on its own (a savepoint each), so a
  // refused Write does not affect the others. Returns one outcome per Write,
  // in order. Every committed change takes the next revision of the store-wide
  // sequence and appends one entry per changed id to the change feed. A
  // non-OK Result (Unavailable, InsufficientStorage) means nothing committed.
  // Put, PutMany and Delete are Commit with one Write.
  virtual common::Result<std::vector<WriteOutcome>> Commit(std::vector<Write>& writes) = 0;

  // The changes committed after revision `since` (by any process using this
  // store), at most `max_changes` entries. See ChangePage. Errors:
  // Unavailable when the store is away; anything else is reported as
  // resync_required, never as a silently partial page.
  virtual common::Result<ChangePage> ChangesSince(int64_t since, size_t max_changes) = 0;

  // Streams every instance, in no particular order, to `sink` on the calling
  // thread, all from one consistent read; returns the revision that read
  // reflects (follow the feed from there). Records may be parsed (and
  // allocated as shared records, ready for a catalog) on several threads
  // internally. Stops and returns sink's error if sink fails. Internal when
  // a stored record does not parse (the message names its id).
  virtual common::Result<int64_t> Scan(
      const std::function<common::Status(SharedInstance&&)>& sink) = 0;

  // Registers `listener`, called with the new latest revision after every
  // commit made through this Store object that changed an instance (on the
  // committing thread; keep it short: set a flag, signal a condition). Commits
  // by other processes are not signalled: readers also poll ChangesSince.
  // Replaces any previous listener; nullptr removes it. Not to be called
  // concurrently with writes.
  virtual void SetCommitListener(std::function<void(int64_t latest)> listener) = 0;
};

// The secret that holds the password a guest posted for instance `id`
// (OpenStack's /openstack/latest/password). One place names it, so the
// flavour's reader, the admin API and instance deletion agree.
inline std::string InstancePasswordSecret(std::string_view id) {
  return "openstack_password/" + std::string(id);
}

}  // namespace openimds::store
