#include "model/tags_json.h"

#include "model/json_reader.h"
#include "model/text_checks.h"

namespace openimds::model {

using common::Status;
using json_reader::Err;
using json_reader::Path;

bool IsImdsTagKey(std::string_view key) {
  return !key.empty() && AllOf(key, "+-=._:@") && key != "." && key != ".." && key != "_index";
}

Status ValidateTags(const StringMap& in_tags, bool served_in_metadata) {
  const Path tags("/tags");
  for (const auto& [key, value] : in_tags) {
    const Path at(tags, key);
    if (key.empty()) return Err(at, "key is empty");
    if (Utf8Length(key) < 0) return Err(at, "key is not valid UTF-8");
    if (HasControl(key)) return Err(at, "key contains a control character");
    if (Utf8Length(value) < 0) return Err(at, "value is not valid UTF-8");
    if (served_in_metadata && !IsImdsTagKey(key)) {
      return Err(at,
                 "key cannot be served in instance metadata (only [a-zA-Z0-9+-=._:@], not \".\", "
                 "\"..\" or \"_index\") while metadata_options/instance_metadata_tags is enabled");
    }
  }
  return Status::Ok();
}

}  // namespace openimds::model
