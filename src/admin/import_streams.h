#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "admin/pending_write.h"
#include "common/http_message.h"
#include "common/status.h"
#include "store/store.h"

namespace openimds::admin {

// Parts of a batched import (X-OpenIMDS-Import-Stream / -Part). The CLI sends
// a large file as numbered parts on a few connections at once, so parts are
// parsed while earlier ones commit; the parts must still commit in order (a
// later line wins, an address one part gives up may be taken by the next)
// and none may commit after one was refused (the CLI reports "everything
// before the refused part is committed"). A part is handed to the write queue
// as soon as the part before it has been (parts that arrive early are parked
// until then), joined to the stream's store::WriteChain: the queue keeps
// their order, may commit several in one transaction (one fsync, one pass
// over the store's indexes for many parts), and the store applies none after
// a refused one. Thread-safe.
class ImportStreams {
 public:
  // `writes` is borrowed and must outlive this object.
  explicit ImportStreams(WriteSubmitter& writes) : writes_(writes) {}

  ImportStreams(const ImportStreams&) = delete;
  ImportStreams& operator=(const ImportStreams&) = delete;

  // Parks `write` as part `part` of stream `stream` until the part before it
  // is queued, then queues it behind that one on the stream's
  // store::WriteChain; defers `out` on `pending`, which is marked ready once
  // the part committed or was refused (refused at once if an earlier part
  // was).
  // InvalidArgument for a bad stream name or part number; Conflict for a
  // part sent twice or after an earlier part was refused; ResourceExhausted
  // when too many streams are in progress, too many parts are parked, or the
  // part is too far ahead of the last one committed.
  common::Status SubmitPart(std::string_view stream, std::string_view part, store::Write write,
                            std::shared_ptr<PendingWrite> pending, common::Response& out);

  // A part refused before it reached the write queue (`request` names it in
  // its headers): no later part of its stream is applied, and parked ones
  // are refused now.
  void Stop(const common::Request& request);

  // On a resumed import part that timed out while parked: takes it (and the
  // parts after it) out of its stream, so it never commits afterwards.
  void ForgetParked(const common::Request& request);

 private:
  struct Stream;

  // With mu_ held: hands the stream's parked parts whose turn has come to the
  // write queue, in order; the calls to make after unlocking go to `later`.
  void Advance(const std::shared_ptr<Stream>& stream, std::vector<std::function<void()>>& later);

  WriteSubmitter& writes_;
  std::mutex mu_;
  // By the client's name for them.
  std::unordered_map<std::string, std::shared_ptr<Stream>> streams_;  // guarded by mu_
};

}  // namespace openimds::admin
