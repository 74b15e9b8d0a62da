#pragma once

#include <cstddef>
#include <string_view>

#include "common/status.h"
#include "model/instance.h"
#include "model/json_reader.h"
#include "model/record_limits.h"

namespace openimds::model {

// The checks of one CheckLimits call (record_limits.h), for the record's own
// fields and for its parts' (record_part.h). Each returns OK, or the refusal
// of the first offender: PayloadTooLarge "<pointer>: <size> <unit>; the limit
// is <limit>", with the limit that refused stored in `exceeded` when given.
// Internal to the model module.
class LimitChecker {
 public:
  LimitChecker(const RecordLimits& limits, Limit* exceeded)
      : limits_(limits), exceeded_(exceeded) {}

  size_t operator[](Limit limit) const { return limits_[limit]; }

  // The refusal for `actual` over `limit` at `at`; `what` prefixes the size
  // in the message ("key is ").
  common::Status Over(const json_reader::Path& at, std::string_view what, size_t actual,
                      Limit limit) const;

  // A text's size in bytes.
  common::Status Bytes(const json_reader::Path& at, std::string_view value,
                       Limit limit = Limit::kTextBytes) const {
    if (value.size() <= limits_[limit]) return common::Status::Ok();
    return Over(at, "", value.size(), limit);
  }

  // The number of entries of a list or map.
  common::Status Count(const json_reader::Path& at, size_t n,
                       Limit limit = Limit::kListItems) const {
    if (n <= limits_[limit]) return common::Status::Ok();
    return Over(at, "", n, limit);
  }

  // A list of text: its length, then each entry.
  template <typename List>
  common::Status TextList(const json_reader::Path& at, const List& list,
                          Limit count = Limit::kListItems,
                          Limit bytes = Limit::kTextBytes) const {
    if (common::Status s = Count(at, list.size(), count); !s.ok()) return s;
    for (size_t i = 0; i < list.size(); ++i) {
      if (common::Status s = Bytes(json_reader::Path(at, i), list[i], bytes); !s.ok()) return s;
    }
    return common::Status::Ok();
  }

  // A map of text to text: its size, then each key and value.
  common::Status TextMap(const json_reader::Path& at, const StringMap& map, Limit count) const;

 private:
  const RecordLimits& limits_;
  Limit* exceeded_;
};

}  // namespace openimds::model
