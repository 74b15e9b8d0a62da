#include "admin/revision_headers.h"

#include "admin/admin_http.h"

namespace openimds::admin {

using common::Request;
using common::Status;

std::string EtagFor(int64_t revision) { return "\"" + std::to_string(revision) + "\""; }

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

}  // namespace openimds::admin
