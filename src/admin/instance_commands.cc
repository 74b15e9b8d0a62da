#include "admin/admin_api.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "admin/admin_http.h"
#include "admin/merge_patch.h"
#include "admin/revision_headers.h"
#include "admin/url_parts.h"
#include "common/ip_address.h"
#include "common/log.h"
#include "model/instance_json.h"

// The routes of one instance (GET, PUT, PATCH, DELETE, its password, render
// preview) and the list.
namespace openimds::admin {
namespace {

using common::Request;
using common::Response;
using common::Status;

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

bool IsHeaderNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

}  // namespace

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

Status AdminApi::PutInstance(const Request& request, std::string_view id, Response& out) {
  if (request.resumed) {
    auto done = FinishedWrite(request);
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
    auto done = FinishedWrite(request);
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
    auto done = FinishedWrite(request);
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

}  // namespace openimds::admin
