#include "model/instance_normalize.h"

#include "model/ec2_fields.h"
#include "model/guest_config_json.h"
#include "model/iam_json.h"
#include "model/instance_json.h"
#include "model/nic_json.h"
#include "model/time_json.h"

namespace openimds::model {

void Canonicalise(Instance& in) {
  for (Nic& nic : in.nics) CanonicaliseNic(nic);
  in.launch_time = TruncateToSeconds(in.launch_time);
  if (in.iam) TruncateCredentials(in.iam->credentials);
  CanonicaliseGuestConfig(in);
  CanonicaliseEc2Fields(in);
}

void Normalize(Instance& instance) {
  Canonicalise(instance);
  SortNics(instance.nics);
}

}  // namespace openimds::model
