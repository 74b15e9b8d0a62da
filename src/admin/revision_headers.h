#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/http_message.h"
#include "common/result.h"
#include "common/status.h"
#include "store/store.h"

// A record's revision as HTTP carries it: the ETag of a GET or write, the
// If-Match / If-None-Match preconditions of a write, and the incarnation
// header. Internal to the admin module.
namespace openimds::admin {

// The record's incarnation (model::ServerManaged), read-only: shown beside
// the record, never in it, so a GET, edit, PUT round trip does not carry it.
inline constexpr std::string_view kIncarnationHeader = "X-OpenIMDS-Incarnation";

// "\"7\"" for revision 7.
std::string EtagFor(int64_t revision);

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

// The header `name` of `request`; InvalidArgument when it is sent twice or is
// neither "*" nor one revision.
common::Result<EtagCondition> ParseEtagHeader(const common::Request& request,
                                              std::string_view name);

// The refusals of an If-Match / If-None-Match write of instance `id`, whose
// stored record is `current` (null: none), in the store's words:
// FailedPrecondition when the condition does not hold.
common::Status CheckConditions(std::string_view id, const store::StoredInstance* current,
                               const EtagCondition& if_match, const EtagCondition& if_none_match);

}  // namespace openimds::admin
