#include "flavour/ec2/ec2_versions.h"

#include <algorithm>

namespace openimds::flavour::ec2 {

int VersionIndex(std::string_view name) {
  if (name == "latest") return kLatestVersion;
  // The dated versions sort as plain strings ("1.0" < "2007-..."), so a binary
  // search over all but "latest" finds them.
  const auto first = kVersions.begin();
  const auto last = kVersions.end() - 1;
  const auto it = std::lower_bound(first, last, name);
  if (it == last || *it != name) return -1;
  return static_cast<int>(it - first);
}

}  // namespace openimds::flavour::ec2
