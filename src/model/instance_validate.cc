#include "model/instance_validate.h"

#include <string>

#include "model/block_devices_json.h"
#include "model/iam_json.h"
#include "model/instance_json.h"
#include "model/json_reader.h"
#include "model/metadata_options_json.h"
#include "model/nic_json.h"
#include "model/record_part.h"
#include "model/record_texts.h"
#include "model/request_limits_json.h"
#include "model/ssh_keys_json.h"
#include "model/tags_json.h"
#include "model/text_checks.h"
#include "model/time_json.h"

namespace openimds::model {

using common::Status;
using json_reader::Err;
using json_reader::Path;

Status ValidateRecord(const Instance& in, CheckMode mode) {
  if (in.id.empty() || in.id.size() > 128 || !AllOf(in.id, "._:-")) {
    return Err("/id", "must be 1..128 characters of [A-Za-z0-9._:-]");
  }
  if (in.network.empty() || in.network.size() > 64 || !AllOf(in.network, "._-")) {
    return Err("/network", "must be 1..64 characters of [A-Za-z0-9._-]");
  }
  for (const RecordText& text : kRecordTexts) {
    if (Status s = CheckText(Path(Path(), text.name), in.*text.member); !s.ok()) return s;
  }
  if (in.launch_index < 0) {
    return Err("/launch_index", std::to_string(in.launch_index) + " is negative");
  }
  if (Status s = CheckTime(Path("/launch_time"), in.launch_time); !s.ok()) return s;
  if (Status s = ValidateNics(in.nics, mode.nic_order); !s.ok()) return s;
  if (Status s = ValidateSshKeys(in.ssh_keys); !s.ok()) return s;
  if (Status s = ValidateTags(in.tags, in.options.tags_enabled); !s.ok()) return s;
  if (in.iam) {
    if (Status s = ValidateIam(*in.iam); !s.ok()) return s;
  }
  if (Status s = ValidateBlockDevices(in.block_devices); !s.ok()) return s;
  if (Status s = ValidateMetadataOptions(in.options); !s.ok()) return s;
  if (Status s = ValidateRequestLimits(*in.limits); !s.ok()) return s;
  for (const RecordPart* part : RecordParts()) {
    if (part->validate == nullptr) continue;
    if (Status s = part->validate(in); !s.ok()) return s;
  }
  return Status::Ok();
}

Status Validate(const Instance& instance) { return ValidateRecord(instance, CheckMode{}); }

}  // namespace openimds::model
