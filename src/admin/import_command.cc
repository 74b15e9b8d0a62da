#include "admin/admin_api.h"

#include <algorithm>
#include <charconv>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>

#include "admin/admin_http.h"
#include "admin/import_batch.h"
#include "common/ip_address.h"
#include "model/instance_json.h"

// POST /v1/instances:import: a body of records written in one transaction,
// or as the numbered parts of a stream (import_streams.h).
namespace openimds::admin {

using common::Code;
using common::Request;
using common::Response;
using common::Status;

Status AdminApi::Import(const Request& request, Response& out) {
  if (request.resumed) return FinishImport(request, out);
  Status s = StartImport(request, out);
  if (!s.ok()) streams_.Stop(request);
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

  std::optional<model::Limit> exceeded;
  auto batch = ParseImportBody(request.body, options_.limits, options_.import_parse_threads,
                               exceeded);
  if (!batch.ok()) {
    if (exceeded) limit_refusals_[static_cast<size_t>(*exceeded)]->Inc();
    return batch.status();
  }
  std::vector<std::shared_ptr<model::Instance>>& instances = batch->instances;
  std::vector<int>& lines = batch->lines;
  const std::unordered_map<std::string, int>& line_of_id = batch->line_of_id;

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
    for (const auto& address : model::CallerAddresses(*instances[i])) {
      auto ip = common::IpAddress::Parse(address);
      if (!ip) continue;
      const model::Instance* holder = snapshot->FindByAddress(instances[i]->network, *ip);
      if (holder != nullptr && line_of_id.count(holder->id) == 0) {
        return common::Conflict("line " + std::to_string(lines[i]) + ": address " + address +
                                " in network " + Quote(instances[i]->network) +
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
  for (std::shared_ptr<model::Instance>& in : instances) {
    store::Mutation m;
    m.id = in->id;
    // The parsed record itself is what the store writes and the catalog will
    // hold: no copy per instance.
    m.put = std::move(in);
    HintCurrent(*snapshot, m);
    write.mutations.push_back(std::move(m));
  }
  if (stream) {
    return streams_.SubmitPart(*stream, *part, std::move(write), std::move(pending), out);
  }
  Submit(std::move(write), std::move(pending), out);
  return Status::Ok();
}

Status AdminApi::FinishImport(const Request& request, Response& out) {
  auto done = FinishedWrite(request);
  if (!done.ok()) {
    streams_.ForgetParked(request);
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

}  // namespace openimds::admin
