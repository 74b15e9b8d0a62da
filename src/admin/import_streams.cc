#include "admin/import_streams.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>
#include <utility>

#include "admin/admin_http.h"

namespace openimds::admin {

using common::Code;
using common::Request;
using common::Response;
using common::Status;

// One stream: which part is next, which are parked, its chain in the store.
struct ImportStreams::Stream {
  using Clock = std::chrono::steady_clock;
  struct Parked {
    store::Write write;
    std::shared_ptr<PendingWrite> pending;
  };
  int64_t submitted = 0;   // the last part handed to the write queue
  int64_t finished = 0;    // parts whose commit came back, in order: 1..finished
  int64_t refused = 0;     // the first part refused; no later part is applied
  std::map<int64_t, Parked> parked;
  std::shared_ptr<store::WriteChain> chain = std::make_shared<store::WriteChain>();
  Clock::time_point touched = Clock::now();

  bool idle() const { return finished == submitted && parked.empty(); }

  // Part `part` was refused (the earliest refused part counts): takes the
  // parked parts out; the caller refuses them once mu_ is released.
  // Parts after `part` that were already handed to the store are refused
  // there (the store broke the chain); parts before it still commit.
  // Parts before it that are parked stay parked: they still commit, in
  // order, whenever the parts before them arrive.
  std::vector<std::shared_ptr<PendingWrite>> Stop(int64_t part) {
    if (refused == 0 || part < refused) refused = part;
    std::vector<std::shared_ptr<PendingWrite>> out;
    for (auto it = parked.upper_bound(refused); it != parked.end();) {
      out.push_back(std::move(it->second.pending));
      it = parked.erase(it);
    }
    return out;
  }
  // True when `part` comes after the refused part and must not be applied.
  bool AfterRefusal(int64_t part) const { return refused != 0 && part > refused; }
};

namespace {

// Streams at once, how far ahead of the last part handed to the store a part
// may be, parts parked in all (each holds up to a whole parsed import body),
// and how long an idle stream (no part in flight or parked) is remembered. A
// part waiting for one that never comes is dropped when its wait ends
// (PendingWrite::MaxWait).
constexpr size_t kMaxImportStreams = 16;
constexpr int64_t kMaxPartsAhead = 8;
constexpr size_t kMaxParkedParts = 16;
constexpr auto kStreamIdle = std::chrono::minutes(10);

bool ValidStreamName(std::string_view name) {
  return !name.empty() && name.size() <= 64 &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
         });
}

// The header's part number (from 1), or nullopt.
std::optional<int64_t> ParsePart(std::string_view text) {
  int64_t part = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), part);
  if (ec != std::errc() || end != text.data() + text.size() || part < 1) return std::nullopt;
  return part;
}

Status NotApplied(int64_t refused) {
  return common::Conflict("this part of the import was not applied: part " +
                          std::to_string(refused) + " was refused");
}

// Parts "not applied" because an earlier one was refused (or timed out
// while parked).
void RefuseParked(const std::vector<std::shared_ptr<PendingWrite>>& parts, int64_t refused) {
  for (const auto& pending : parts) {
    pending->outcome.status = NotApplied(refused);
    pending->MarkReady();
  }
}

}  // namespace

Status ImportStreams::SubmitPart(std::string_view stream_name, std::string_view part_text,
                                 store::Write write, std::shared_ptr<PendingWrite> pending,
                                 Response& out) {
  if (!ValidStreamName(stream_name)) {
    return common::InvalidArgument(
        "X-OpenIMDS-Import-Stream must be 1 to 64 letters, digits, '-' or '_'");
  }
  const std::optional<int64_t> parsed_part = ParsePart(part_text);
  if (!parsed_part) {
    return common::InvalidArgument("X-OpenIMDS-Import-Part must be a number from 1");
  }
  const int64_t part = *parsed_part;
  std::vector<std::function<void()>> later;
  {
    std::lock_guard lock(mu_);
    const auto now = Stream::Clock::now();
    std::erase_if(streams_, [&](const auto& entry) {
      const Stream& s = *entry.second;
      return s.idle() && now - s.touched > kStreamIdle;
    });
    auto it = streams_.find(std::string(stream_name));
    if (it == streams_.end()) {
      // Any part may come first: the parts travel on different connections.
      if (streams_.size() >= kMaxImportStreams) {
        return common::ResourceExhausted(std::to_string(streams_.size()) +
                                         " import streams are in progress; retry when one "
                                         "finishes");
      }
      it = streams_.emplace(std::string(stream_name), std::make_shared<Stream>()).first;
    }
    std::shared_ptr<Stream> stream = it->second;
    stream->touched = now;
    if (stream->AfterRefusal(part)) return NotApplied(stream->refused);
    if (part <= stream->submitted || stream->parked.count(part) != 0) {
      return common::Conflict("part " + std::to_string(part) + " of import stream " +
                              Quote(stream_name) + " was already sent");
    }
    size_t parked_everywhere = 0;
    for (const auto& [name, other] : streams_) parked_everywhere += other->parked.size();
    if (parked_everywhere >= kMaxParkedParts) {
      return common::ResourceExhausted(std::to_string(parked_everywhere) +
                                       " import parts are waiting for earlier ones; retry when "
                                       "they have committed");
    }
    if (part > stream->finished + kMaxPartsAhead) {
      return common::ResourceExhausted(
          "part " + std::to_string(part) + " is too far ahead: part " +
          std::to_string(stream->finished + 1) + " has not committed yet (at most " +
          std::to_string(kMaxPartsAhead) + " parts may be sent ahead)");
    }
    out.deferred = pending;
    stream->parked.emplace(part, Stream::Parked{std::move(write), std::move(pending)});
    Advance(stream, later);
  }
  for (auto& fn : later) fn();
  return Status::Ok();
}

void ImportStreams::Stop(const Request& request) {
  auto name = request.Header("X-OpenIMDS-Import-Stream");
  auto part_text = request.Header("X-OpenIMDS-Import-Part");
  if (!name || !part_text || !ValidStreamName(*name)) return;
  const std::optional<int64_t> part = ParsePart(*part_text);
  if (!part) return;
  std::vector<std::shared_ptr<PendingWrite>> refused;
  int64_t first = 0;
  {
    std::lock_guard lock(mu_);
    auto it = streams_.find(std::string(*name));
    if (it == streams_.end()) {
      // Refused before any other part of its stream arrived (the parts
      // travel on different connections, in any order): the parts after it
      // must hear why they are not applied, and must not wait for it.
      if (streams_.size() >= kMaxImportStreams) return;
      it = streams_.emplace(std::string(*name), std::make_shared<Stream>()).first;
    }
    Stream& stream = *it->second;
    stream.touched = Stream::Clock::now();
    refused = stream.Stop(*part);
    first = stream.refused;
  }
  RefuseParked(refused, first);
}

void ImportStreams::ForgetParked(const Request& request) {
  auto pending = std::dynamic_pointer_cast<const PendingWrite>(request.resumed_from);
  auto name = request.Header("X-OpenIMDS-Import-Stream");
  if (!pending || pending->ready() || !name) return;
  // Timed out while parked: it must not commit later, behind the client's
  // back, and nothing after it may either.
  std::vector<std::shared_ptr<PendingWrite>> refused;
  int64_t forgotten = 0;
  {
    std::lock_guard lock(mu_);
    auto it = streams_.find(std::string(*name));
    if (it == streams_.end()) return;
    Stream& stream = *it->second;
    auto mine = std::find_if(stream.parked.begin(), stream.parked.end(),
                             [&](const auto& entry) { return entry.second.pending == pending; });
    if (mine == stream.parked.end()) return;  // already handed to the write queue
    forgotten = mine->first;
    stream.parked.erase(mine);  // answered 503 by its own handler
    refused = stream.Stop(forgotten);
  }
  RefuseParked(refused, forgotten);
}

void ImportStreams::Advance(const std::shared_ptr<Stream>& stream,
                            std::vector<std::function<void()>>& later) {
  for (;;) {
    if (stream->AfterRefusal(stream->submitted + 1)) return;
    auto next = stream->parked.find(stream->submitted + 1);
    if (next == stream->parked.end()) return;
    const int64_t part = next->first;
    auto parked = std::make_shared<Stream::Parked>(std::move(next->second));
    stream->parked.erase(next);
    stream->submitted = part;
    parked->write.chain = stream->chain;
    // Handed over in part order: `later` runs in order, after the lock.
    later.push_back([this, stream, part, parked] {
      writes_.Submit(std::move(parked->write), parked->pending,
                     [this, stream, part](store::WriteOutcome& outcome) {
                       std::vector<std::shared_ptr<PendingWrite>> refused;
                       int64_t first = 0;
                       {
                         std::lock_guard lock(mu_);
                         stream->finished = std::max(stream->finished, part);
                         stream->touched = Stream::Clock::now();
                         if (!outcome.status.ok()) {
                           const bool behind_refusal =
                               outcome.status.code() == Code::kFailedPrecondition &&
                               outcome.status.message() == store::kChainBrokenMessage;
                           refused = stream->Stop(part);
                           first = stream->refused;
                           if (behind_refusal) outcome.status = NotApplied(first);
                         }
                       }
                       RefuseParked(refused, first);
                     });
    });
  }
}

}  // namespace openimds::admin
