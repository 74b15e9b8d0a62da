#pragma once

#include "model/instance.h"

// Normalize() (instance_json.h) in the two steps FromJson runs apart.
// Internal to the model module.
namespace openimds::model {

// Everything Normalize() does except ordering the NICs, which FromJson does
// only after validating (so that messages point into the input as given).
void Canonicalise(Instance& instance);

}  // namespace openimds::model
