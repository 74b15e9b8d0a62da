#include "model/instance_normalize.h"

#include "model/iam_json.h"
#include "model/instance_json.h"
#include "model/nic_json.h"
#include "model/record_part.h"
#include "model/time_json.h"

namespace openimds::model {

void Canonicalise(Instance& in) {
  for (Nic& nic : in.nics) CanonicaliseNic(nic);
  in.launch_time = TruncateToSeconds(in.launch_time);
  if (in.iam) TruncateCredentials(in.iam->credentials);
  for (const RecordPart* part : RecordParts()) {
    if (part->canonicalise != nullptr) part->canonicalise(in);
  }
}

void Normalize(Instance& instance) {
  Canonicalise(instance);
  SortNics(instance.nics);
}

}  // namespace openimds::model
