#include "admin/admin_api.h"

#include <algorithm>
#include <atomic>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/stream_parser.hpp>
#include <cctype>
#include <charconv>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "admin/merge_patch.h"
#include "admin/url_parts.h"
#include "common/ip_address.h"
#include "common/log.h"
#include "common/parallel_for.h"
#include "model/instance_json.h"

namespace openimds::admin {
namespace {

using common::Code;
using common::Request;
using common::Response;
using common::Status;

constexpr std::string_view kComponent = "admin";
constexpr std::string_view kJson = "application/json";
constexpr std::string_view kInstancesPrefix = "/v1/instances/";
constexpr std::string_view kInstanceMethods = "GET, HEAD, PUT, PATCH, DELETE";
// Ids are [A-Za-z0-9._:-]{1,128} (model/instance.h); checked here too so that a
// URL with anything else is refused before any parsing or store access.
constexpr size_t kMaxIdBytes = 128;

bool IsGetOrHead(std::string_view method) { return method == "GET" || method == "HEAD"; }

bool IsIdChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

bool IsValidId(std::string_view id) {
  return !id.empty() && id.size() <= kMaxIdBytes && std::all_of(id.begin(), id.end(), IsIdChar);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// Log lines carry operator-sent text (paths, ids); control bytes would let it
// forge extra lines.
std::string Printable(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return out;
}

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string EtagFor(int64_t revision) { return "\"" + std::to_string(revision) + "\""; }

// The record's incarnation (model::ServerManaged), read-only: shown beside
// the record, never in it, so a GET, edit, PUT round trip does not carry it.
constexpr std::string_view kIncarnationHeader = "X-OpenIMDS-Incarnation";

std::optional<int64_t> ParsePositive(std::string_view text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v <= 0) return std::nullopt;
  return v;
}

// An If-Match / If-None-Match header: absent, "*", or one revision, written as
// the ETag we send ("7") or bare (7).
struct EtagCondition {
  enum class Kind { kAbsent, kAny, kRevision };
  Kind kind = Kind::kAbsent;
  int64_t revision = 0;

  bool Matches(int64_t current) const {
    return kind == Kind::kAny || (kind == Kind::kRevision && revision == current);
  }
};

common::Result<EtagCondition> ParseEtagHeader(const Request& request, std::string_view name) {
  EtagCondition cond;
  if (request.HeaderCount(name) > 1) {
    return common::InvalidArgument(std::string(name) + ": send the header once");
  }
  auto header = request.Header(name);
  if (!header) return cond;
  std::string_view text = Trim(*header);
  if (text == "*") {
    cond.kind = EtagCondition::Kind::kAny;
    return cond;
  }
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') {
    text = text.substr(1, text.size() - 2);
  }
  auto revision = ParsePositive(text);
  if (!revision) {
    return common::InvalidArgument(std::string(name) +
                                   ": expected * or one revision as sent in ETag, e.g. \"7\"");
  }
  cond.kind = EtagCondition::Kind::kRevision;
  cond.revision = *revision;
  return cond;
}

// Same wording as model::FromJsonText, so every syntax error reads alike.
common::Result<boost::json::value> ParseJson(std::string_view text) {
  boost::json::stream_parser parser;
  boost::system::error_code ec;
  const size_t consumed = parser.write(text.data(), text.size(), ec);
  if (!ec) parser.finish(ec);
  if (ec) {
    return common::InvalidArgument("invalid JSON: " + ec.message() + " at offset " +
                                   std::to_string(consumed));
  }
  return parser.release();
}

void WriteJson(Response& out, int status, const boost::json::value& body) {
  out.status = status;
  out.content_type = kJson;
  out.body = boost::json::serialize(body);
  out.body.push_back('\n');
}

// The media type of the request body, lower-cased, without parameters.
std::string MediaType(const Request& request) {
  auto header = request.Header("Content-Type");
  if (!header) return {};
  std::string type(Trim(header->substr(0, header->find(';'))));
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return type;
}

Status MethodNotAllowed(const Request& request, std::string_view allow, Response& out) {
  out.AddHeader("Allow", std::string(allow));
  return Status(Code::kMethodNotAllowed, std::string(request.method) + " is not allowed on " +
                                             std::string(request.path) +
                                             " (allowed: " + std::string(allow) + ")");
}

Status NoQuery(const Request& request) {
  if (request.query.empty()) return Status::Ok();
  return common::InvalidArgument(std::string(request.path) + " takes no query parameters");
}

bool HasCallerAddress(const model::Instance& instance, const std::string& canonical) {
  for (const auto& a : model::CallerAddresses(instance)) {
    if (a == canonical) return true;
  }
  return false;
}

boost::json::value ListItem(const catalog::Entry& entry) {
  boost::json::object item;
  item["revision"] = entry.revision;
  item["incarnation"] = entry.instance->managed.incarnation;
  item["instance"] = model::ToJson(*entry.instance);
  return item;
}

bool IsBlank(std::string_view line) {
  return std::all_of(line.begin(), line.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

bool IsHeaderNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

}  // namespace

// One admin write in flight: filled on the write queue's thread, read back by
// the resumed handler. The outcome and what the route recorded are written
// before MarkReady() and read only after the http core saw it ready (the
// mutex orders the two).
class PendingWrite final : public common::Deferred {
 public:
  void OnReady(std::function<void()> ready) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!ready_) {
        on_ready_ = std::move(ready);
        return;
      }
    }
    ready();
  }
  // A write waits for the disk and for its turn in the queue, not for a
  // remote peer; this is long enough for a busy store (its busy timeout is
  // 5 s) and a big import, and a bound on a connection parked for it.
  std::chrono::milliseconds MaxWait() const override { return std::chrono::seconds(60); }

  void MarkReady() {
    std::function<void()> fn;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_ = true;
      fn = std::move(on_ready_);
    }
    if (fn) fn();
  }
  bool ready() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ready_;
  }

  // Set before MarkReady().
  store::WriteOutcome outcome;
  common::Status visible;  // the follower's word: OK once the catalog has the write
  // What the route needs to answer: the record written (PUT, PATCH), the
  // number of instances (import).
  std::shared_ptr<model::Instance> written;
  std::string id;
  size_t count = 0;
  std::vector<int> lines;  // import: the body's line number of each mutation

 private:
  mutable std::mutex mu_;
  bool ready_ = false;                // guarded by mu_
  std::function<void()> on_ready_;    // guarded by mu_
};

AdminApi::AdminApi(Options options, store::Store& store, catalog::Catalog& catalog,
                   store::WriteQueue& writes, feed::Follower& follower,
                   common::MetricsRegistry& metrics)
    : options_(std::move(options)),
      store_(store),
      catalog_(catalog),
      writes_(writes),
      follower_(follower),
      metrics_(metrics),
      requests_total_(metrics.GetCounter("admin_requests_total", "Admin API requests received.")),
      writes_total_(metrics.GetCounter("admin_writes_total",
                                       "Admin API writes committed (put, patch, delete, import).")),
      imported_total_(metrics.GetCounter("admin_instances_imported_total",
                                         "Instances written by admin bulk imports.")) {
  // Registered up front so every reason shows in /metrics from the start (a
  // counter that appears only after its first increment hides rate()s).
  for (int c = static_cast<int>(Code::kNotFound); c <= static_cast<int>(Code::kInternal); ++c) {
    const auto code = static_cast<Code>(c);
    rejected_[c] = &metrics.GetCounter("admin_requests_rejected_total",
                                       "Admin API requests refused, by reason.",
                                       "reason=\"" + std::string(common::CodeName(code)) + "\"");
  }
  for (const model::LimitInfo& info : model::kLimits) {
    limit_refusals_[static_cast<size_t>(info.limit)] = &metrics.GetCounter(
        "admin_record_limit_refusals_total",
        "Records refused by the admin API (413) for exceeding a record limit, by limit.",
        "limit=\"" + std::string(info.name) + "\"");
  }
}

Status AdminApi::WithinLimits(const model::Instance& instance) const {
  model::Limit exceeded = model::Limit::kRecordBytes;
  Status s = model::CheckLimits(instance, options_.limits, &exceeded);
  if (!s.ok()) limit_refusals_[static_cast<size_t>(exceeded)]->Inc();
  return s;
}

Status AdminApi::WithinRecordBytes(size_t bytes) const {
  Status s = model::CheckRecordBytes(bytes, options_.limits);
  if (!s.ok()) limit_refusals_[static_cast<size_t>(model::Limit::kRecordBytes)]->Inc();
  return s;
}

void AdminApi::Handle(const Request& request, Response& out) {
  requests_total_.Inc();
  Status status = Route(request, out);
  if (!status.ok()) Refuse(request, status, out);
}

bool AdminApi::Admit(const Request& head, Response& out) {
  if (head.path == "/v1/instances:import" || head.path == "/v1/import") return true;
  auto length = head.Header("Content-Length");
  if (!length) return true;  // chunked: judged once read, against the same limit
  uint64_t bytes = 0;
  auto [end, ec] = std::from_chars(length->data(), length->data() + length->size(), bytes);
  if (ec != std::errc() || end != length->data() + length->size()) return true;
  Status s = WithinRecordBytes(static_cast<size_t>(std::min<uint64_t>(bytes, SIZE_MAX)));
  if (s.ok()) return true;
  requests_total_.Inc();
  Refuse(head, s, out);
  out.close = true;
  return false;
}

void AdminApi::ShapeRefusal(int status, std::string_view message, Response& out) {
  boost::json::object error;
  error["code"] = status == 413 || status == 431 ? "payload_too_large" : "invalid_argument";
  error["message"] = message;
  boost::json::object body;
  body["error"] = std::move(error);
  const bool close = out.close;
  WriteJson(out, status, body);
  out.close = close;
}

void AdminApi::Refuse(const Request& request, const Status& status, Response& out) {
  boost::json::object error;
  error["code"] = common::CodeName(status.code());
  error["message"] = status.message();
  boost::json::object body;
  body["error"] = std::move(error);
  WriteJson(out, common::HttpStatusFor(status.code()), body);
  out.head = request.method == "HEAD";
  // A busy write queue (429) or a store that is away (503) clears up by
  // itself: tell clients when to try again.
  if (status.code() == Code::kResourceExhausted || status.code() == Code::kUnavailable) {
    out.AddHeader("Retry-After", "1");
  }

  const auto index = static_cast<size_t>(status.code());
  if (index < rejected_.size() && rejected_[index] != nullptr) rejected_[index]->Inc();
  common::LogWarn(kComponent,
                  Printable(std::string(request.method) + " " + std::string(request.path) +
                            " refused: " + status.ToString()));
}

Status AdminApi::Route(const Request& request, Response& out) {
  const std::string_view path = request.path;

  if (path == "/healthz" || path == "/readyz") {
    if (!IsGetOrHead(request.method)) return MethodNotAllowed(request, "GET, HEAD", out);
    out.head = request.method == "HEAD";
    if (path == "/healthz") {
      out.body = "ok\n";
    } else if (!options_.store_healthy || options_.store_healthy()) {
      // Guests are served either way; a store that takes only some writes
      // says so (200: taking this node out would not help them).
      const std::string degraded = store_.DegradedReason();
      out.body = degraded.empty() ? "ready\n" : "degraded: " + degraded + "\n";
    } else {
      out.status = 503;
      out.body = "store unavailable\n";
    }
    return Status::Ok();
  }

  if (path == "/metrics") {
    if (!IsGetOrHead(request.method)) return MethodNotAllowed(request, "GET, HEAD", out);
    out.head = request.method == "HEAD";
    out.content_type = "text/plain; version=0.0.4";
    out.body = metrics_.RenderPrometheus();
    return Status::Ok();
  }
  if (path == "/v1/instances") {
    if (!IsGetOrHead(request.method)) return MethodNotAllowed(request, "GET, HEAD", out);
    return ListInstances(request, out);
  }
  if (path == "/v1/instances:import" || path == "/v1/import") {
    if (request.method != "POST") return MethodNotAllowed(request, "POST", out);
    return Import(request, out);
  }
  if (path.substr(0, kInstancesPrefix.size()) == kInstancesPrefix) {
    std::string_view rest = path.substr(kInstancesPrefix.size());
    const size_t slash = rest.find('/');
    std::string_view raw_id = rest.substr(0, slash);
    std::string_view sub =
        slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
    auto id = PercentDecode(raw_id);
    if (!id || !IsValidId(*id)) {
      return common::InvalidArgument(
          "bad instance id in the URL: ids are 1 to 128 characters of [A-Za-z0-9._:-]");
    }
    if (slash == std::string_view::npos) return RouteInstance(request, *id, out);
    if (sub == "/password") {
      if (!IsGetOrHead(request.method) && request.method != "DELETE") {
        return MethodNotAllowed(request, "GET, HEAD, DELETE", out);
      }
      return Password(request, *id, out);
    }
    if (sub == "/render") {
      if (!IsGetOrHead(request.method)) return MethodNotAllowed(request, "GET, HEAD", out);
      return Render(request, *id, out);
    }
  }
  return common::NotFound("no route for " + std::string(path));
}

Status AdminApi::RouteInstance(const Request& request, std::string_view id, Response& out) {
  const std::string_view method = request.method;
  if (!IsGetOrHead(method) && method != "PUT" && method != "PATCH" && method != "DELETE") {
    return MethodNotAllowed(request, kInstanceMethods, out);
  }
  if (Status s = NoQuery(request); !s.ok()) return s;
  if (IsGetOrHead(method)) return GetInstance(request, id, out);
  if (method == "PUT") return PutInstance(request, id, out);
  if (method == "PATCH") return PatchInstance(request, id, out);
  return DeleteInstance(request, id, out);
}

Status AdminApi::GetInstance(const Request& request, std::string_view id, Response& out) {
  auto if_none_match = ParseEtagHeader(request, "If-None-Match");
  if (!if_none_match.ok()) return if_none_match.status();
  if (request.Header("If-Match")) {
    return common::InvalidArgument("If-Match is for writes; GET takes If-None-Match");
  }
  auto snapshot = catalog_.Current();
  const catalog::Entry* entry = snapshot->FindById(id);
  if (entry == nullptr) return common::NotFound("no instance " + Quote(id));
  out.AddHeader("ETag", EtagFor(entry->revision));
  out.AddHeader(std::string(kIncarnationHeader),
                std::to_string(entry->instance->managed.incarnation));
  out.head = request.method == "HEAD";
  if (if_none_match->Matches(entry->revision)) {
    out.status = 304;
    return Status::Ok();
  }
  WriteJson(out, 200, model::ToJson(*entry->instance));
  return Status::Ok();
}

void AdminApi::Submit(store::Write write, std::shared_ptr<PendingWrite> pending, Response& out,
                      std::function<void(store::WriteOutcome&)> after_commit) {
  out.deferred = pending;
  SubmitPending(std::move(write), std::move(pending), std::move(after_commit));
}

void AdminApi::SubmitPending(store::Write write, std::shared_ptr<PendingWrite> pending,
                             std::function<void(store::WriteOutcome&)> after_commit) {
  writes_.Submit(std::move(write), [this, pending, after_commit = std::move(after_commit)](
                                       store::WriteOutcome outcome) {
    if (after_commit) after_commit(outcome);
    int64_t newest = 0;
    if (outcome.status.ok()) {
      for (const auto& m : outcome.mutations) {
        if (m.changed) newest = std::max(newest, m.revision);
      }
    }
    pending->outcome = std::move(outcome);
    if (newest == 0) {
      pending->MarkReady();
      return;
    }
    // Read-your-writes: answer once this node's catalog has the write.
    follower_.WhenApplied(newest, [pending](Status visible) {
      pending->visible = std::move(visible);
      pending->MarkReady();
    });
  });
}

common::Result<std::shared_ptr<const PendingWrite>> AdminApi::Finished(const Request& request) {
  auto pending = std::dynamic_pointer_cast<const PendingWrite>(request.resumed_from);
  if (!pending || !pending->ready()) {
    return common::Unavailable(
        "the write did not finish in time and may still be applied; GET the instance to see "
        "whether it did");
  }
  if (!pending->outcome.status.ok()) return pending->outcome.status;
  if (!pending->visible.ok()) return pending->visible;
  return pending;
}

namespace {

// Tells the store the record this node's catalog holds for the mutation's
// id, so the write need not parse the stored row when it is that one.
void HintCurrent(const catalog::Snapshot& snapshot, store::Mutation& m) {
  if (const catalog::Entry* e = snapshot.FindById(m.id)) {
    m.current_hint = e->instance;
    m.current_hint_revision = e->revision;
  }
}

// The refusals of an If-Match / If-None-Match write, in the store's words.
Status CheckConditions(std::string_view id, const store::StoredInstance* current,
                       const EtagCondition& if_match, const EtagCondition& if_none_match) {
  using Kind = EtagCondition::Kind;
  const std::string name = "instance " + std::string(id);
  if (if_none_match.kind == Kind::kAny && current != nullptr) {
    return common::FailedPrecondition(name + " already exists (revision " +
                                      std::to_string(current->revision) + ")");
  }
  if (if_match.kind == Kind::kAny && current == nullptr) {
    return common::FailedPrecondition("no instance " + Quote(id) + " (If-Match: *)");
  }
  if (if_match.kind == Kind::kRevision) {
    if (current == nullptr) {
      return common::FailedPrecondition(name + " does not exist (expected revision " +
                                        std::to_string(if_match.revision) + ")");
    }
    if (current->revision != if_match.revision) {
      return common::FailedPrecondition(name + " is at revision " +
                                        std::to_string(current->revision) + ", not " +
                                        std::to_string(if_match.revision));
    }
  }
  return Status::Ok();
}

}  // namespace

Status AdminApi::PutInstance(const Request& request, std::string_view id, Response& out) {
  if (request.resumed) {
    auto done = Finished(request);
    if (!done.ok()) return done.status();
    const store::MutationOutcome& m = (*done)->outcome.mutations.at(0);
    writes_total_.Inc();
    out.AddHeader("ETag", EtagFor(m.revision));
    out.AddHeader(std::string(kIncarnationHeader), std::to_string(m.incarnation));
    if (!m.existed) out.AddHeader("Location", std::string(kInstancesPrefix) + std::string(id));
    WriteJson(out, m.existed ? 200 : 201, model::ToJson(*(*done)->written));
    return Status::Ok();
  }
  // Before parsing: the size of the text bounds everything after it.
  if (Status s = WithinRecordBytes(request.body.size()); !s.ok()) return s;
  auto json = ParseJson(request.body);
  if (!json.ok()) return json.status();
  if (boost::json::object* object = json->if_object()) {
    if (const boost::json::value* body_id = object->if_contains("id")) {
      const boost::json::string* text = body_id->if_string();
      if (text == nullptr || *text != id) {
        return common::InvalidArgument("/id: must equal the id in the URL, " + Quote(id) +
                                       " (or be left out)");
      }
    } else {
      (*object)["id"] = id;
    }
  }
  auto instance = model::FromJson(*json);
  if (!instance.ok()) return instance.status();
  if (Status s = WithinLimits(*instance); !s.ok()) return s;

  auto if_match = ParseEtagHeader(request, "If-Match");
  if (!if_match.ok()) return if_match.status();
  auto if_none_match = ParseEtagHeader(request, "If-None-Match");
  if (!if_none_match.ok()) return if_none_match.status();
  using Kind = EtagCondition::Kind;
  if (if_match->kind != Kind::kAbsent && if_none_match->kind != Kind::kAbsent) {
    return common::InvalidArgument("send either If-Match or If-None-Match, not both");
  }
  if (if_none_match->kind == Kind::kRevision) {
    return common::InvalidArgument("If-None-Match: only * (create only) is supported on PUT");
  }

  auto pending = std::make_shared<PendingWrite>();
  model::Normalize(*instance);
  pending->written = std::make_shared<model::Instance>(std::move(*instance));
  store::Mutation mutation;
  mutation.id = std::string(id);
  mutation.mutate = [record = pending->written, id = std::string(id), im = *if_match,
                     inm = *if_none_match](const store::StoredInstance* current)
      -> common::Result<std::optional<model::Instance>> {
    if (Status s = CheckConditions(id, current, im, inm); !s.ok()) return s;
    return std::optional<model::Instance>(*record);
  };
  HintCurrent(*catalog_.Current(), mutation);
  store::Write write;
  write.mutations.push_back(std::move(mutation));
  Submit(std::move(write), std::move(pending), out);
  return Status::Ok();
}

Status AdminApi::PatchInstance(const Request& request, std::string_view id, Response& out) {
  if (request.resumed) {
    auto done = Finished(request);
    if (!done.ok()) return done.status();
    const store::MutationOutcome& m = (*done)->outcome.mutations.at(0);
    if (m.changed) writes_total_.Inc();
    out.AddHeader("ETag", EtagFor(m.revision));
    out.AddHeader(std::string(kIncarnationHeader), std::to_string(m.incarnation));
    WriteJson(out, 200, model::ToJson(*(*done)->written));
    return Status::Ok();
  }
  const std::string media_type = MediaType(request);
  // Anything else is refused rather than guessed at: a JSON Patch (RFC 6902,
  // application/json-patch+json) read as a merge patch would do something
  // entirely different, and curl -d sends form encoding by default.
  if (!media_type.empty() && media_type != "application/merge-patch+json" &&
      media_type != "application/json") {
    return common::InvalidArgument(
        "PATCH takes a JSON merge patch (RFC 7396): send Content-Type: "
        "application/merge-patch+json, not " +
        media_type);
  }
  if (Status s = WithinRecordBytes(request.body.size()); !s.ok()) return s;
  auto patch = ParseJson(request.body);
  if (!patch.ok()) return patch.status();
  const boost::json::object* object = patch->if_object();
  if (object == nullptr) {
    return common::InvalidArgument("a merge patch of an instance must be a JSON object");
  }
  if (const boost::json::value* patch_id = object->if_contains("id")) {
    const boost::json::string* text = patch_id->if_string();
    if (text == nullptr || *text != id) {
      return common::InvalidArgument("/id: cannot be changed (it is the URL's, " + Quote(id) +
                                     "); PUT the new id and DELETE the old one");
    }
  }
  auto if_match = ParseEtagHeader(request, "If-Match");
  if (!if_match.ok()) return if_match.status();
  if (request.Header("If-None-Match")) {
    return common::InvalidArgument("If-None-Match is not supported on PATCH; use If-Match");
  }

  // The patch applies to the record as stored when the write runs (inside
  // the store's transaction), never to an older copy: two concurrent PATCHes
  // of one instance both land, in some order.
  auto pending = std::make_shared<PendingWrite>();
  store::Mutation mutation;
  mutation.id = std::string(id);
  mutation.mutate = [this, pending, id = std::string(id), im = *if_match,
                     patch = std::move(*patch)](const store::StoredInstance* current)
      -> common::Result<std::optional<model::Instance>> {
    if (current == nullptr) return common::NotFound("no instance " + id);
    if (Status s = CheckConditions(id, current, im, EtagCondition{}); !s.ok()) return s;
    auto patched = model::FromJson(MergePatch(model::ToJson(current->instance), patch));
    if (!patched.ok()) return patched.status();
    // The record the patch leaves, not the patch, must be within the limits:
    // a patch of a record stored over a limit must bring it within.
    if (Status s = WithinLimits(*patched); !s.ok()) return s;
    model::Normalize(*patched);
    // Read by the resumed handler after MarkReady (see PendingWrite).
    pending->written = std::make_shared<model::Instance>(*patched);
    return std::optional<model::Instance>(std::move(*patched));
  };
  HintCurrent(*catalog_.Current(), mutation);
  store::Write write;
  write.mutations.push_back(std::move(mutation));
  Submit(std::move(write), std::move(pending), out);
  return Status::Ok();
}

Status AdminApi::DeleteInstance(const Request& request, std::string_view id, Response& out) {
  if (request.resumed) {
    auto done = Finished(request);
    if (!done.ok()) return done.status();
    writes_total_.Inc();
    out.status = 204;
    return Status::Ok();
  }
  auto if_match = ParseEtagHeader(request, "If-Match");
  if (!if_match.ok()) return if_match.status();
  if (request.Header("If-None-Match")) {
    return common::InvalidArgument("If-None-Match is not supported on DELETE; use If-Match");
  }
  store::Mutation mutation;
  mutation.id = std::string(id);
  mutation.mutate = [id = std::string(id), im = *if_match](const store::StoredInstance* current)
      -> common::Result<std::optional<model::Instance>> {
    if (current == nullptr && im.kind != EtagCondition::Kind::kAny) {
      return common::NotFound("no instance " + id);
    }
    if (Status s = CheckConditions(id, current, im, EtagCondition{}); !s.ok()) return s;
    return std::optional<model::Instance>();
  };
  HintCurrent(*catalog_.Current(), mutation);
  store::Write write;
  write.mutations.push_back(std::move(mutation));
  // A later instance with the same id must not inherit the guest's password:
  // cleared once the delete committed, on the write queue's thread.
  store::Store* store = &store_;
  Submit(std::move(write), std::make_shared<PendingWrite>(), out,
         [store, id = std::string(id)](store::WriteOutcome& outcome) {
           if (!outcome.status.ok() || outcome.mutations.empty() ||
               !outcome.mutations[0].changed) {
             return;
           }
           Status cleared = store->DeleteSecret(store::InstancePasswordSecret(id));
           if (!cleared.ok()) {
             common::LogWarn(kComponent, "instance " + id +
                                             " deleted but its password was not cleared: " +
                                             cleared.message());
           }
         });
  return Status::Ok();
}

// GET: {"password": "..."} or {"password": null}; DELETE clears it (Nova's
// DELETE os-server-password), so the guest may post a new one.
Status AdminApi::Password(const Request& request, std::string_view id, Response& out) {
  if (Status s = NoQuery(request); !s.ok()) return s;
  if (catalog_.Current()->FindById(id) == nullptr) {
    return common::NotFound("no instance " + Quote(id));
  }
  const std::string name = store::InstancePasswordSecret(id);
  if (request.method == "DELETE") {
    Status s = store_.DeleteSecret(name);
    if (!s.ok()) return s;
    writes_total_.Inc();
    out.status = 204;
    return Status::Ok();
  }
  auto stored = store_.GetSecret(name);
  if (!stored.ok()) return stored.status();
  boost::json::object body;
  if (stored->has_value()) {
    body["password"] = **stored;
  } else {
    body["password"] = nullptr;
  }
  out.head = request.method == "HEAD";
  WriteJson(out, 200, body);
  return Status::Ok();
}

Status AdminApi::ListInstances(const Request& request, Response& out) {
  auto params = ParseQuery(request.query);
  if (!params.ok()) return params.status();
  std::optional<std::string> network;
  std::optional<common::IpAddress> address;
  std::optional<int64_t> limit;
  for (const auto& [name, value] : *params) {
    const bool repeated = (name == "network" && network) || (name == "address" && address) ||
                          (name == "limit" && limit);
    if (repeated) return common::InvalidArgument("query parameter " + Quote(name) + " repeated");
    if (name == "network") {
      network = value;
    } else if (name == "address") {
      address = common::IpAddress::Parse(value);
      if (!address) {
        return common::InvalidArgument("address: " + Quote(value) + " is not an IP address");
      }
    } else if (name == "limit") {
      limit = ParsePositive(value);
      if (!limit) return common::InvalidArgument("limit: expected a positive integer");
    } else {
      return common::InvalidArgument("unknown query parameter " + Quote(name) +
                                     " (known: network, address, limit)");
    }
  }

  auto snapshot = catalog_.Current();
  boost::json::array items;
  if (network && address) {
    if (const model::Instance* found = snapshot->FindByAddress(*network, *address)) {
      if (const catalog::Entry* entry = snapshot->FindById(found->id)) {
        items.push_back(ListItem(*entry));
      }
    }
  } else {
    const std::string canonical = address ? address->ToString() : std::string();
    for (const catalog::Entry* entry : snapshot->EntriesById()) {
      if (limit && static_cast<int64_t>(items.size()) >= *limit) break;
      if (network && entry->instance->network != *network) continue;
      if (address && !HasCallerAddress(*entry->instance, canonical)) continue;
      items.push_back(ListItem(*entry));
    }
  }
  boost::json::object body;
  body["instances"] = std::move(items);
  WriteJson(out, 200, body);
  out.head = request.method == "HEAD";
  return Status::Ok();
}

Status AdminApi::Import(const Request& request, Response& out) {
  if (request.resumed) return FinishImport(request, out);
  Status s = StartImport(request, out);
  if (!s.ok()) StopStream(request);
  return s;
}

Status AdminApi::StartImport(const Request& request, Response& out) {
  if (Status s = NoQuery(request); !s.ok()) return s;
  if (request.body.size() > options_.max_import_bytes) {
    return Status(Code::kPayloadTooLarge, "import body is " + std::to_string(request.body.size()) +
                                              " bytes; the limit is " +
                                              std::to_string(options_.max_import_bytes) +
                                              " (split the file and import the parts one by one)");
  }

  // The lines, then their records parsed on a few threads (the JSON is most
  // of an import's cost), then checked in order: the first bad line reported
  // is the first in the file, whichever thread parsed it.
  struct Line {
    int number;
    std::string_view text;
    common::Result<model::Instance> parsed = common::Internal("not parsed");
    std::optional<model::Limit> exceeded;  // the limit `parsed` was refused for
  };
  std::vector<Line> body_lines;
  std::string_view rest = request.body;
  for (int line_number = 1; !rest.empty(); ++line_number) {
    const size_t newline = rest.find('\n');
    std::string_view line = rest.substr(0, newline);
    rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
    if (IsBlank(line)) continue;
    body_lines.push_back(Line{line_number, line, common::Internal("not parsed"), std::nullopt});
  }
  common::ParallelFor(
      body_lines.size(), options_.import_parse_threads,
      [&](size_t i) {
        Line& line = body_lines[i];
        if (Status s = model::CheckRecordBytes(line.text.size(), options_.limits); !s.ok()) {
          line.parsed = std::move(s);
          line.exceeded = model::Limit::kRecordBytes;
          return;
        }
        line.parsed = model::FromJsonText(line.text);
        model::Limit exceeded = model::Limit::kRecordBytes;
        if (!line.parsed.ok()) {
          line.parsed = common::InvalidArgument(line.parsed.status().message());
        } else if (Status s = model::CheckLimits(*line.parsed, options_.limits, &exceeded);
                   !s.ok()) {
          line.parsed = std::move(s);
          line.exceeded = exceeded;
        }
      },
      /*min_n=*/64, /*chunk=*/16);

  std::vector<model::Instance> instances;
  std::vector<int> lines;  // line number of instances[i]
  instances.reserve(body_lines.size());
  lines.reserve(body_lines.size());
  std::unordered_map<std::string, int> line_of_id;
  // (network, address) -> index into `instances`
  std::map<std::pair<std::string, std::string>, size_t> claimed;
  for (Line& line : body_lines) {
    const int line_number = line.number;
    const std::string where = "line " + std::to_string(line_number) + ": ";
    if (!line.parsed.ok()) {
      if (line.exceeded) limit_refusals_[static_cast<size_t>(*line.exceeded)]->Inc();
      return Status(line.parsed.status().code(), where + line.parsed.status().message());
    }
    auto& instance = line.parsed;
    auto [it, inserted] = line_of_id.emplace(instance->id, line_number);
    if (!inserted) {
      return common::InvalidArgument(where + "/id: " + Quote(instance->id) +
                                     " is already on line " + std::to_string(it->second));
    }
    for (const auto& address : model::CallerAddresses(*instance)) {
      auto [claim, fresh] =
          claimed.emplace(std::make_pair(instance->network, address), instances.size());
      if (!fresh) {
        return common::Conflict(where + "address " + address + " in network " +
                                Quote(instance->network) + " is also claimed by line " +
                                std::to_string(lines[claim->second]) + " (instance " +
                                Quote(instances[claim->second].id) + ")");
      }
    }
    instances.push_back(std::move(*instance));
    lines.push_back(line_number);
  }
  if (instances.empty()) return common::InvalidArgument("import: the body holds no instances");

  // Clashes with instances the import does not replace, reported by line.
  // Not for a later part of a stream: the catalog may not show the parts
  // before it yet (an address one of them gives up would look taken). The
  // store judges every part against the committed state in any case, and
  // FinishImport turns its refusal's index into the line.
  const auto stream = request.Header("X-OpenIMDS-Import-Stream");
  const auto part = request.Header("X-OpenIMDS-Import-Part");
  if (stream.has_value() != part.has_value()) {
    return common::InvalidArgument(
        "X-OpenIMDS-Import-Stream and X-OpenIMDS-Import-Part go together");
  }
  const bool later_part = part && *part != "1";
  auto snapshot = catalog_.Current();
  for (size_t i = 0; i < instances.size() && !later_part; ++i) {
    for (const auto& address : model::CallerAddresses(instances[i])) {
      auto ip = common::IpAddress::Parse(address);
      if (!ip) continue;
      const model::Instance* holder = snapshot->FindByAddress(instances[i].network, *ip);
      if (holder != nullptr && line_of_id.count(holder->id) == 0) {
        return common::Conflict("line " + std::to_string(lines[i]) + ": address " + address +
                                " in network " + Quote(instances[i].network) +
                                " is held by instance " + Quote(holder->id));
      }
    }
  }
  // One Write: the whole import commits or nothing does.
  auto pending = std::make_shared<PendingWrite>();
  pending->count = instances.size();
  pending->lines = std::move(lines);
  store::Write write;
  write.mutations.reserve(instances.size());
  for (model::Instance& in : instances) {
    store::Mutation m;
    m.id = in.id;
    // The parsed record itself is what the store writes and the catalog will
    // hold: no copy per instance.
    m.put = std::make_shared<model::Instance>(std::move(in));
    HintCurrent(*snapshot, m);
    write.mutations.push_back(std::move(m));
  }
  if (stream) return SubmitStreamPart(*stream, *part, std::move(write), std::move(pending), out);
  Submit(std::move(write), std::move(pending), out);
  return Status::Ok();
}

// Parts of a batched import. The CLI sends a large file as numbered parts on
// a few connections at once, so parts are parsed while earlier ones commit;
// the parts must still commit in order (a later line wins, an address one
// part gives up may be taken by the next) and none may commit after one was
// refused (the CLI reports "everything before the refused part is
// committed"). A part is handed to the write queue as soon as the part before
// it has been (parts that arrive early are parked until then), joined to the
// stream's store::WriteChain: the queue keeps their order, may commit several
// in one transaction (one fsync, one pass over the store's indexes for many
// parts), and the store applies none after a refused one.
struct AdminApi::ImportStream {
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
  // parked parts out; the caller refuses them once streams_mu_ is released.
  // Parts after `part` that were already handed to the store are refused
  // there (the store broke the chain); parts before it still commit.
  std::vector<std::shared_ptr<PendingWrite>> Stop(int64_t part) {
    if (refused == 0 || part < refused) refused = part;
    std::vector<std::shared_ptr<PendingWrite>> out;
    for (auto& entry : parked) out.push_back(std::move(entry.second.pending));
    parked.clear();
    return out;
  }
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

Status AdminApi::SubmitStreamPart(std::string_view stream_name, std::string_view part_text,
                                  store::Write write, std::shared_ptr<PendingWrite> pending,
                                  Response& out) {
  if (!ValidStreamName(stream_name)) {
    return common::InvalidArgument(
        "X-OpenIMDS-Import-Stream must be 1 to 64 letters, digits, '-' or '_'");
  }
  const std::optional<int64_t> parsed_part = ParsePart(part_text);
  if (!parsed_part) return common::InvalidArgument("X-OpenIMDS-Import-Part must be a number from 1");
  const int64_t part = *parsed_part;
  std::vector<std::function<void()>> later;
  {
    std::lock_guard lock(streams_mu_);
    const auto now = ImportStream::Clock::now();
    std::erase_if(streams_, [&](const auto& entry) {
      const ImportStream& s = *entry.second;
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
      it = streams_.emplace(std::string(stream_name), std::make_shared<ImportStream>()).first;
    }
    std::shared_ptr<ImportStream> stream = it->second;
    stream->touched = now;
    if (stream->refused != 0) return NotApplied(stream->refused);
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
    stream->parked.emplace(part, ImportStream::Parked{std::move(write), std::move(pending)});
    AdvanceStream(stream, later);
  }
  for (auto& fn : later) fn();
  return Status::Ok();
}

void AdminApi::StopStream(const Request& request) {
  auto name = request.Header("X-OpenIMDS-Import-Stream");
  auto part_text = request.Header("X-OpenIMDS-Import-Part");
  if (!name || !part_text || !ValidStreamName(*name)) return;
  const std::optional<int64_t> part = ParsePart(*part_text);
  if (!part) return;
  std::vector<std::shared_ptr<PendingWrite>> refused;
  int64_t first = 0;
  {
    std::lock_guard lock(streams_mu_);
    auto it = streams_.find(std::string(*name));
    if (it == streams_.end()) {
      // Part 1 refused before its stream began: the parts after it must
      // hear why they are not applied, not that the stream is unknown.
      if (*part != 1 || streams_.size() >= kMaxImportStreams) return;
      it = streams_.emplace(std::string(*name), std::make_shared<ImportStream>()).first;
    }
    ImportStream& stream = *it->second;
    stream.touched = ImportStream::Clock::now();
    refused = stream.Stop(*part);
    first = stream.refused;
  }
  RefuseParked(refused, first);
}

void AdminApi::ForgetParkedPart(const Request& request) {
  auto pending = std::dynamic_pointer_cast<const PendingWrite>(request.resumed_from);
  auto name = request.Header("X-OpenIMDS-Import-Stream");
  if (!pending || pending->ready() || !name) return;
  // Timed out while parked: it must not commit later, behind the client's
  // back, and nothing after it may either.
  std::vector<std::shared_ptr<PendingWrite>> refused;
  int64_t forgotten = 0;
  {
    std::lock_guard lock(streams_mu_);
    auto it = streams_.find(std::string(*name));
    if (it == streams_.end()) return;
    ImportStream& stream = *it->second;
    auto mine = std::find_if(stream.parked.begin(), stream.parked.end(),
                             [&](const auto& entry) { return entry.second.pending == pending; });
    if (mine == stream.parked.end()) return;  // already handed to the write queue
    forgotten = mine->first;
    stream.parked.erase(mine);  // answered 503 by its own handler
    refused = stream.Stop(forgotten);
  }
  RefuseParked(refused, forgotten);
}

void AdminApi::AdvanceStream(const std::shared_ptr<ImportStream>& stream,
                             std::vector<std::function<void()>>& later) {
  for (;;) {
    if (stream->refused != 0) return;
    auto next = stream->parked.find(stream->submitted + 1);
    if (next == stream->parked.end()) return;
    const int64_t part = next->first;
    auto parked = std::make_shared<ImportStream::Parked>(std::move(next->second));
    stream->parked.erase(next);
    stream->submitted = part;
    parked->write.chain = stream->chain;
    // Handed over in part order: `later` runs in order, after the lock.
    later.push_back([this, stream, part, parked] {
      SubmitPending(std::move(parked->write), parked->pending,
                    [this, stream, part](store::WriteOutcome& outcome) {
                      std::vector<std::shared_ptr<PendingWrite>> refused;
                      int64_t first = 0;
                      {
                        std::lock_guard lock(streams_mu_);
                        stream->finished = std::max(stream->finished, part);
                        stream->touched = ImportStream::Clock::now();
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

Status AdminApi::FinishImport(const Request& request, Response& out) {
  auto done = Finished(request);
  if (!done.ok()) {
    ForgetParkedPart(request);
    // The store names a refused mutation "instance I (ID): ..."; the client
    // knows it by its line.
    std::string message = done.status().message();
    auto pending = std::dynamic_pointer_cast<const PendingWrite>(request.resumed_from);
    size_t index = 0;
    const char* digits = message.data() + 9;
    if (pending && message.starts_with("instance ")) {
      auto [end, ec] = std::from_chars(digits, message.data() + message.size(), index);
      if (ec == std::errc() && end != digits && index < pending->lines.size() &&
          std::string_view(end, message.data() + message.size()).starts_with(" (")) {
        message = "line " + std::to_string(pending->lines[index]) + std::string(end);
      }
    }
    return Status(done.status().code(), "import: " + message);
  }
  const auto& mutations = (*done)->outcome.mutations;
  if (mutations.size() != (*done)->count || mutations.empty()) {
    return common::Internal("import: the store returned " + std::to_string(mutations.size()) +
                            " outcomes for " + std::to_string((*done)->count) + " instances");
  }
  int64_t first = 0;
  int64_t last = 0;
  for (const auto& m : mutations) {
    if (first == 0 || m.revision < first) first = m.revision;
    last = std::max(last, m.revision);
  }
  writes_total_.Inc();
  imported_total_.Inc(mutations.size());
  boost::json::object body;
  body["imported"] = mutations.size();
  body["revision_first"] = first;
  body["revision_last"] = last;
  WriteJson(out, 200, body);
  return Status::Ok();
}

Status AdminApi::Render(const Request& request, std::string_view id, Response& out) {
  auto params = ParseQuery(request.query);
  if (!params.ok()) return params.status();
  // Accepted for the CLI's --flavour and future flavours whose paths overlap;
  // today the path alone picks the flavour, exactly as it does for a guest.
  std::optional<std::string> flavour;
  std::optional<std::string> target;
  std::vector<std::pair<std::string, std::string>> headers;
  headers.emplace_back("Host", "169.254.169.254");
  for (const auto& [name, value] : *params) {
    if (name == "flavour" || name == "path") {
      auto& slot = name == "flavour" ? flavour : target;
      if (slot) return common::InvalidArgument("query parameter " + Quote(name) + " repeated");
      slot = value;
    } else if (name == "header") {
      const size_t colon = value.find(':');
      std::string_view header_name = Trim(std::string_view(value).substr(0, colon));
      if (colon == std::string::npos || header_name.empty() ||
          !std::all_of(header_name.begin(), header_name.end(), IsHeaderNameChar)) {
        return common::InvalidArgument(
            "header: expected \"Name: value\", e.g. "
            "\"Metadata-Flavor: Google\"");
      }
      headers.emplace_back(std::string(header_name),
                           std::string(Trim(std::string_view(value).substr(colon + 1))));
    } else {
      return common::InvalidArgument("unknown query parameter " + Quote(name) +
                                     " (known: flavour, path, header)");
    }
  }
  if (!target || target->empty() || target->front() != '/') {
    return common::InvalidArgument(
        "path: required, the path a guest would ask for, e.g. /latest/meta-data/instance-id");
  }

  auto snapshot = catalog_.Current();
  const catalog::Entry* entry = snapshot->FindById(id);
  if (entry == nullptr) return common::NotFound("no instance " + Quote(id));
  if (!options_.render_preview) {
    return common::Unavailable("render preview is not configured in this server");
  }

  // The synthetic request a guest of this instance would send. Its views point
  // into `target` and `headers`, which outlive the call.
  const model::Instance& instance = *entry->instance;
  Request synthetic;
  synthetic.method = "GET";
  synthetic.target = *target;
  const size_t question = target->find('?');
  synthetic.path = std::string_view(*target).substr(0, question);
  if (question != std::string::npos)
    synthetic.query = std::string_view(*target).substr(question + 1);
  for (const auto& [name, value] : headers) synthetic.headers.push_back({name, value});
  const auto addresses = model::CallerAddresses(instance);
  if (!addresses.empty()) {
    if (auto peer = common::IpAddress::Parse(addresses.front())) synthetic.peer = *peer;
  }
  synthetic.local = *common::IpAddress::Parse("169.254.169.254");
  synthetic.local_port = 80;
  synthetic.listener_network = instance.network;

  Response rendered;
  // A refusal (404, 401, ...) is part of what the guest would see: the
  // renderer has filled `rendered` with it, so pass it through as-is.
  Status status = options_.render_preview(instance, synthetic, rendered);
  if (!status.ok() && rendered.body.empty()) return status;
  rendered.ip_ttl.reset();  // meaningful on a guest socket only
  rendered.close = false;
  rendered.head = request.method == "HEAD";
  out = std::move(rendered);
  out.AddHeader("X-OpenIMDS-Render-Status", std::to_string(out.status));
  return Status::Ok();
}

size_t ReportInstancesOverLimits(const catalog::Catalog& catalog,
                                 const model::RecordLimits& limits,
                                 common::MetricsRegistry& metrics) {
  // On every core: at a million instances this walk is a good part of the
  // start-up (each record is a few cache misses away).
  auto snapshot = catalog.Current();
  std::vector<const model::Instance*> all;
  all.reserve(snapshot->size());
  snapshot->ForEach([&](const catalog::Entry& e) { all.push_back(e.instance.get()); });
  std::atomic<size_t> over_count{0};
  std::atomic<size_t> first_index{SIZE_MAX};
  common::ParallelFor(all.size(), std::max(1u, std::thread::hardware_concurrency()),
                      [&](size_t i) {
                        if (model::CheckLimits(*all[i], limits).ok()) return;
                        over_count.fetch_add(1, std::memory_order_relaxed);
                        size_t seen = first_index.load(std::memory_order_relaxed);
                        while (i < seen && !first_index.compare_exchange_weak(seen, i)) {
                        }
                      },
                      /*min_n=*/4096, /*chunk=*/1024);
  const size_t over = over_count.load();
  std::string first;
  if (over > 0) {
    const model::Instance& in = *all[first_index.load()];
    first = "instance " + in.id + ": " + model::CheckLimits(in, limits).message();
  }
  metrics.AddGauge("admin_instances_over_limits_at_start",
                   "Stored instances over a record limit when the server started (served as "
                   "stored; a write to one must bring it within the limits).",
                   [over] { return static_cast<double>(over); });
  if (over > 0) {
    common::LogWarn(kComponent,
                    Printable(std::to_string(over) +
                              " stored instances exceed the record limits and are served as "
                              "stored; a write to one must bring it within the limits (first: " +
                              first + ")"));
  }
  return over;
}

}  // namespace openimds::admin
