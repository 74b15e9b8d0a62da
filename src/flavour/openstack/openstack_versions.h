#pragma once

#include <array>
#include <string>
#include <string_view>

#include "common/clock.h"

namespace openimds::flavour::openstack {

// Nova's OPENSTACK_VERSIONS (nova/api/metadata/base.py), oldest first.
// "latest" means the last entry. openstack.md §1.2.
inline constexpr std::array<std::string_view, 10> kVersions = {
    "2012-08-10",  // FOLSOM: meta_data.json, user_data
    "2013-04-04",  // GRIZZLY: password, random_seed
    "2013-10-17",  // HAVANA: vendor_data.json
    "2015-10-15",  // LIBERTY: network_data.json, project_id
    "2016-06-30",  // NEWTON_ONE: devices
    "2016-10-06",  // NEWTON_TWO: vendor_data2.json
    "2017-02-22",  // OCATA: nic vlan in devices
    "2018-08-27",  // ROCKY: nic vf_trusted in devices
    "2020-10-14",  // VICTORIA: dedicated_cpus
    "2025-04-04",  // EPOXY: share devices (not modelled)
};

// Indexes into kVersions for the gates used by the renderers.
enum Version : int {
  kFolsom = 0,
  kGrizzly = 1,
  kHavana = 2,
  kLiberty = 3,
  kNewtonOne = 4,
  kNewtonTwo = 5,
  kOcata = 6,
  kRocky = 7,
  kVictoria = 8,
  kEpoxy = 9,
};
inline constexpr int kLatest = static_cast<int>(kVersions.size()) - 1;

// Index of a version name ("latest" → kLatest), or -1 if unknown.
int VersionIndex(std::string_view name);

// The body of GET /openstack: every version dated on or before today (UTC,
// from `clock`), then "latest", '\n'-joined without a trailing newline. Nova
// hides future versions in the listing but still serves them when asked.
std::string VersionListing(const common::Clock& clock);

}  // namespace openimds::flavour::openstack
