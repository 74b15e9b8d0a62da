#include "model/block_devices_json.h"

#include <algorithm>

#include "model/json_reader.h"
#include "model/text_checks.h"

namespace openimds::model {

using common::Status;
using json_reader::Err;
using json_reader::Path;

Status ValidateBlockDevices(const StringMap& in_block_devices) {
  const Path block_devices("/block_devices");
  for (const auto& [key, value] : in_block_devices) {
    const Path at(block_devices, key);
    if (key.empty() || !std::all_of(key.begin(), key.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        })) {
      return Err(at, "key must be 1 or more characters of [a-z0-9]");
    }
    if (value.empty()) return Err(at, "empty device name");
    if (Status s = CheckText(at, value); !s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace openimds::model
