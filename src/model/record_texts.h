#pragma once

#include <string_view>

#include "model/instance.h"
#include "model/record_limits.h"

namespace openimds::model {

// The record's top-level text fields, "name" to "architecture", in document
// order, each with the limit on its size: Validate() checks that each is one
// line of valid UTF-8, CheckLimits() its size. ("id" and "network" have
// rules of their own.) Internal to the model module.
struct RecordText {
  std::string_view name;
  Str Instance::*member;
  Limit limit;
};

inline constexpr RecordText kRecordTexts[] = {
    {"name", &Instance::name, Limit::kTextBytes},
    {"hostname", &Instance::hostname, Limit::kHostnameBytes},
    {"local_hostname", &Instance::local_hostname, Limit::kHostnameBytes},
    {"public_hostname", &Instance::public_hostname, Limit::kHostnameBytes},
    {"account_id", &Instance::account_id, Limit::kTextBytes},
    {"image_id", &Instance::image_id, Limit::kTextBytes},
    {"instance_type", &Instance::instance_type, Limit::kTextBytes},
    {"kernel_id", &Instance::kernel_id, Limit::kTextBytes},
    {"ramdisk_id", &Instance::ramdisk_id, Limit::kTextBytes},
    {"reservation_id", &Instance::reservation_id, Limit::kTextBytes},
    {"region", &Instance::region, Limit::kTextBytes},
    {"availability_zone", &Instance::availability_zone, Limit::kTextBytes},
    {"availability_zone_id", &Instance::availability_zone_id, Limit::kTextBytes},
    {"architecture", &Instance::architecture, Limit::kTextBytes},
};

}  // namespace openimds::model
