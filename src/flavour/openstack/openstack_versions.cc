#include "flavour/openstack/openstack_versions.h"

#include <chrono>

namespace openimds::flavour::openstack {

int VersionIndex(std::string_view name) {
  if (name == "latest") return kLatest;
  for (size_t i = 0; i < kVersions.size(); ++i) {
    if (kVersions[i] == name) return static_cast<int>(i);
  }
  return -1;
}

std::string VersionListing(const common::Clock& clock) {
  // "YYYY-MM-DD" of today in UTC; ISO dates compare as strings, as Nova does.
  const auto days = std::chrono::floor<std::chrono::days>(clock.Now());
  const std::chrono::year_month_day ymd{days};
  char today[16];
  std::snprintf(today, sizeof(today), "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  std::string out;
  for (std::string_view v : kVersions) {
    if (v > std::string_view(today)) continue;
    out.append(v);
    out.push_back('\n');
  }
  out.append("latest");
  return out;
}

}  // namespace openimds::flavour::openstack
