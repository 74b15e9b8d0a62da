#pragma once

#include "common/status.h"
#include "model/instance.h"

// Validate() (instance_json.h) and the form of it that FromJson runs.
// Internal to the model module.
namespace openimds::model {

// Which parts of the canonical form ValidateRecord insists on: FromJson
// checks before it sorts the NICs, so that indexes in messages match its
// input.
struct CheckMode {
  bool nic_order = true;
};

// Every check of Validate(), in document order: the first offender is the
// one reported.
common::Status ValidateRecord(const Instance& instance, CheckMode mode);

}  // namespace openimds::model
