#include "model/limit_checker.h"

#include <string>

namespace openimds::model {

using common::Code;
using common::Status;
using json_reader::Path;

Status LimitChecker::Over(const Path& at, std::string_view what, size_t actual,
                          Limit limit) const {
  if (exceeded_ != nullptr) *exceeded_ = limit;
  std::string pointer = at.ToString();
  if (pointer.empty()) pointer = "/";
  return Status(Code::kPayloadTooLarge, pointer + ": " + std::string(what) +
                                            std::to_string(actual) + " " +
                                            std::string(InfoFor(limit).unit) +
                                            "; the limit is " + std::to_string(limits_[limit]));
}

Status LimitChecker::TextMap(const Path& at, const StringMap& map, Limit count) const {
  if (Status s = Count(at, map.size(), count); !s.ok()) return s;
  for (const auto& [key, value] : map) {
    const Path p(at, key);
    if (key.size() > limits_[Limit::kTextBytes]) {
      return Over(p, "key is ", key.size(), Limit::kTextBytes);
    }
    if (Status s = Bytes(p, value); !s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace openimds::model
