#pragma once

#include <chrono>
#include <optional>
#include <vector>

#include "model/str.h"
#include "model/str_list.h"

namespace openimds::model {

using TimePoint = std::chrono::system_clock::time_point;

// Temporary role credentials as EC2 serves them.
struct Credentials {
  Str access_key_id;
  Str secret_access_key;
  Str token;
  TimePoint expiration{};
  TimePoint last_updated{};
  friend bool operator==(const Credentials&, const Credentials&) = default;
};

// EC2's platform events (docs/instance.md "Platform events";
// platform_events_json.h). Times are absolute; the JSON mapping also accepts
// a delay ({"in_seconds": N}) and turns it into an absolute time when
// parsing.

// A Spot interruption notice: spot/instance-action and spot/termination-time.
struct SpotInterruption {
  Str action;  // "terminate", "stop" or "hibernate"
  TimePoint time{};    // when the action happens (required)
  // When the notice becomes visible to the guest; unset (epoch): two minutes
  // before `time`, EC2's notice period.
  TimePoint notice_time{};
  friend bool operator==(const SpotInterruption&, const SpotInterruption&) = default;
};

// A scheduled maintenance event: events/maintenance/scheduled while active,
// events/maintenance/history once completed or canceled.
struct ScheduledEvent {
  enum class State { kActive, kCompleted, kCanceled };
  Str id;  // "instance-event-0d59937288b749b32"; unique per instance
  // "instance-reboot", "system-reboot", "system-maintenance",
  // "instance-retirement" or "instance-stop"
  Str code;
  State state = State::kActive;
  Str description;
  TimePoint not_before{};           // required
  TimePoint not_after{};            // optional; an active event is completed once it passes
  TimePoint not_before_deadline{};  // optional
  TimePoint notice_time{};          // visible from; unset: at once
  friend bool operator==(const ScheduledEvent&, const ScheduledEvent&) = default;
};

// One step of the Auto Scaling lifecycle: autoscaling/target-lifecycle-state.
struct LifecycleTransition {
  // "InService", "Detached", "Standby", "Terminated", "Warmed:Hibernated",
  // "Warmed:Running", "Warmed:Stopped" or "Warmed:Terminated"
  Str state;
  TimePoint at{};  // in effect from; unset: at once
  friend bool operator==(const LifecycleTransition&, const LifecycleTransition&) = default;
};

struct PlatformEvents {
  std::optional<SpotInterruption> spot;
  std::optional<TimePoint> rebalance_notice;   // events/recommendations/rebalance from then
  std::vector<ScheduledEvent> scheduled;       // ids unique
  std::vector<LifecycleTransition> lifecycle;  // in time order; the last one due applies
  bool empty() const {
    return !spot && !rebalance_notice && scheduled.empty() && lifecycle.empty();
  }
  friend bool operator==(const PlatformEvents&, const PlatformEvents&) = default;
};

// The part of the record only the EC2 flavour renders: the rest of EC2's
// instance metadata categories, the identity role's credentials and platform
// events (docs/instance.md "EC2 fields", "Platform events"). Empty strings and
// lists are absent in the EC2 tree (404), except where a default is named.
// The JSON mapping keeps them at the top level of the record.
struct Ec2Fields {
  Str ami_manifest_path;              // "" -> "(unknown)" (EBS-backed)
  StrList ancestor_ami_ids;
  StrList product_codes;     // Marketplace product codes
  StrList billing_products;  // identity document "billingProducts"
  Str instance_action;                // "" -> "none"
  Str instance_life_cycle;            // "" -> "on-demand"
  Str profile;                        // "" -> "default-hvm"
  Str placement_group;                // placement/group-name
  Str host_id;                        // placement/host-id (Dedicated Hosts)
  int partition_number = 0;                   // 1..7; 0: not in a partition group
  bool detailed_monitoring = false;           // dynamic/fws/instance-monitoring
  // The instance identity role's credentials:
  // identity-credentials/ec2/security-credentials/ec2-instance.
  std::optional<Credentials> identity_credentials;
  PlatformEvents events;

  friend bool operator==(const Ec2Fields&, const Ec2Fields&) = default;
};

// The EC2-only part of the record (record_part.h): the JSON members, checks
// and limits of Ec2Fields and of the NIC's EC2-only fields (Nic's
// ipv4_prefixes, ipv6_prefixes, ipv4_associations), in ec2_fields.cc.
struct RecordPart;
extern const RecordPart kEc2Part;

}  // namespace openimds::model
